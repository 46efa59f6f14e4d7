"""Throughput of one trainer step (cl_lib.train.train_step) with and without the speed options.

    python benchmarks/bench_train.py                          # ResNet-18, CIFAR size, batch 256
    python benchmarks/bench_train.py --arch resnet50 --batch-size 512 --steps 30
    python benchmarks/bench_train.py --json bench.json        # also save the numbers

Variants, all measured in the same run on the same synthetic batch (random pre-augmented views,
so only the model + loss + optimiser step is timed, not data loading or augmentation):

    baseline        fp32, NCHW memory layout, eager
    channels_last   NHWC layout (faster convolutions on tensor cores)
    bf16            bfloat16 autocast
    cl+bf16         both
    cl+bf16+compile both + torch.compile (compile time is excluded: it happens in warm-up)

Reported as images/s (source images, each with two views) and as the ratio to the baseline.
bf16 and compile are the CUDA options of the trainer; on a CPU only baseline and channels_last
run unless ``--all`` is given (CPU bf16 autocast and compilation are slow and not what the
trainer uses there).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from cl_lib.losses import get_loss
from cl_lib.models import build_model
from cl_lib.train import TrainConfig, build_optimizer, train_step

VARIANTS = {  # name: (channels_last, bf16, compile)
    "baseline": (False, False, False),
    "channels_last": (True, False, False),
    "bf16": (False, True, False),
    "cl+bf16": (True, True, False),
    "cl+bf16+compile": (True, True, True),
}


def bench_variant(args, device: torch.device, channels_last: bool, bf16: bool, compile_: bool) -> dict:
    torch.manual_seed(0)
    model = build_model(args.arch, proj_dim=128, image_size=args.image_size, width=args.width).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, TrainConfig())
    for group in optimizer.param_groups:
        group["lr"] = 1e-3
    step_model = torch.compile(model) if compile_ else model
    loss_fn = get_loss(args.loss)
    g = torch.Generator(device="cpu").manual_seed(0)
    views = [torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=g).to(device)
             for _ in range(2)]

    def run(n: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(n):
            train_step(step_model, loss_fn, optimizer, views, None, bf16=bf16, channels_last=channels_last)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    run(args.warmup)  # cuDNN autotuning, compilation, allocator warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = run(args.steps)
    out = {"ms_per_step": 1000 * seconds / args.steps, "images_per_s": args.steps * args.batch_size / seconds}
    if device.type == "cuda":
        out["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--width", type=int, default=32, help="small_cnn width")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--loss", default="infonce")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--all", action="store_true", help="also run bf16/compile on a CPU")
    p.add_argument("--json", help="write the results to this JSON file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args.arch}, batch {args.batch_size} x 2 views, {args.image_size}px, loss {args.loss}, "
          f"{args.steps} timed steps on {name} (torch {torch.__version__})")
    results = {}
    for variant, (cl, bf16, comp) in VARIANTS.items():
        if device.type != "cuda" and (bf16 or comp) and not args.all:
            print(f"  {variant:<16} skipped on CPU (CUDA option; --all runs it anyway)")
            continue
        try:
            results[variant] = bench_variant(args, device, cl, bf16, comp)
        except Exception as err:  # e.g. no compiler toolchain for torch.compile
            print(f"  {variant:<16} failed: {type(err).__name__}: {str(err).splitlines()[0][:100]}")
            continue
        r = results[variant]
        ratio = r["images_per_s"] / results["baseline"]["images_per_s"]
        mem = f"  peak {r['peak_memory_gb']:.2f} GiB" if "peak_memory_gb" in r else ""
        print(f"  {variant:<16} {r['ms_per_step']:8.1f} ms/step  {r['images_per_s']:9.0f} img/s  "
              f"x{ratio:.2f} vs baseline{mem}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "device": name, "torch_version": str(torch.__version__),
                       "results": results}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
