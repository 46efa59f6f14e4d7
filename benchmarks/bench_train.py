"""Step time of the trainer (cl_lib.train.train_step) under its speed options, and how
close the measured FLOP rate comes to the device's limit.

    python benchmarks/bench_train.py --device cpu --budget-s 60 --out train.json
    python benchmarks/bench_train.py --device cuda --budget-s 40        # batch 512

Model: ResNet-18 with the CIFAR stem (``build_model("cifar_resnet18")``), 32 px,
InfoNCE, SGD with momentum; each step sees ``--batch-size`` images x 2 views of random
pre-augmented data, so only model + loss + optimiser are timed. Variants, measured in
the same run:

    fp32            float32, NCHW layout, eager (the baseline)
    channels_last   NHWC memory layout (the layout tensor-core convolutions want)
    bf16            bfloat16 autocast
    cl+bf16         both (the trainer's CUDA default)
    cl+bf16+compile both + torch.compile (compile time is reported apart)

On a CPU only fp32 and channels_last run unless ``--all`` (CPU bf16 autocast and
compilation are not what the trainer uses there). Reported per variant: ms/step,
views/s, ratio to fp32, peak CUDA memory, and achieved FLOP/s = views/s x (forward +
backward FLOPs of one view, counted by torch.utils.flop_counter on this model; a
multiply-add counts as 2 FLOPs), as a share of

    * the measured rate of a large dense matmul on the same device (bf16 8192^3 on CUDA,
      float32 1024^3 on the CPU) -- what this program could reach at best, and
    * on known GPUs, the datasheet's dense bf16 rate (H100/H200: 989 TFLOP/s).

On the CPU, ratios, FLOP rates and shares use CPU seconds (steadier than wall clock on a
machine shared with other jobs; ``clock`` says which).

JSON: ``variants[<name>]`` = {ms_per_step, views_per_s, ratio_vs_fp32, peak_memory_gib,
tflops, share_of_matmul_peak, share_of_datasheet_bf16}; ``flops_per_view`` {forward,
forward_backward}; ``matmul_peak_flops``; ``datasheet_bf16_flops``; ``skipped``; while a
variant runs, ``in_progress`` names it (left in the file if the run is cut off).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import (
    DATASHEET_BF16_FLOPS,
    Recorder,
    add_common_args,
    measure,
    setup,
    sync,
)
from cl_lib.losses import get_loss
from cl_lib.models import build_model
from cl_lib.train import TrainConfig, build_optimizer, train_step

ARCH = "cifar_resnet18"
VARIANTS = {  # name: (channels_last, bf16, compile)
    "fp32": (False, False, False),
    "channels_last": (True, False, False),
    "bf16": (False, True, False),
    "cl+bf16": (True, True, False),
    "cl+bf16+compile": (True, True, True),
}


def flops_per_view(image_size: int = 32) -> dict:
    """Forward and forward+backward FLOPs of one view through the model (counted on the
    CPU with a batch of 4; convolutions and matmuls, multiply-add = 2 FLOPs)."""
    model = build_model(ARCH, image_size=image_size)
    x = torch.randn(4, 3, image_size, image_size)
    with FlopCounterMode(display=False) as fwd:
        model(x)
    with FlopCounterMode(display=False) as both:
        model(x).float().pow(2).sum().backward()
    return {
        "forward": fwd.get_total_flops() / 4,
        "forward_backward": both.get_total_flops() / 4,
    }


def matmul_peak(device: torch.device, seconds: float) -> dict:
    """FLOP/s of a large dense matmul: bf16 8192^3 on CUDA, float32 1024^3 on the
    CPU."""
    n, dtype = (
        (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    )
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    r = measure(lambda: a @ b, 1, device, seconds, warmup=3, min_reps=5)
    return {
        "flops": 2 * n**3 * r["items_per_s"],
        "flops_per_cpu_s": 2 * n**3 * r["items_per_cpu_s"],
        "n": n,
        "dtype": str(dtype).replace("torch.", ""),
    }


def bench_variant(args, device, channels_last, bf16, compile_, seconds) -> dict:
    torch.manual_seed(0)
    model = build_model(ARCH, image_size=32).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, TrainConfig())
    for group in optimizer.param_groups:
        group["lr"] = (
            0.06 * args.batch_size / 256
        )  # the trainer's SGD rate; any rate costs the same
    step_model = torch.compile(model) if compile_ else model
    loss_fn = get_loss("infonce")
    g = torch.Generator(device="cpu").manual_seed(0)
    views = [
        torch.randn(args.batch_size, 3, 32, 32, generator=g).to(device)
        for _ in range(2)
    ]

    def step():
        train_step(
            step_model,
            loss_fn,
            optimizer,
            views,
            None,
            bf16=bf16,
            channels_last=channels_last,
        )

    t0 = time.perf_counter()
    for _ in range(args.warmup):  # cuDNN autotuning, compilation, allocator warm-up
        step()
    sync(device)
    warmup_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    r = measure(step, 2 * args.batch_size, device, seconds, warmup=0, min_reps=2)
    out = {
        "ms_per_step": r["ms_per_call"],
        "views_per_s": r["items_per_s"],
        "views_per_cpu_s": r["items_per_cpu_s"],
        "steps": r["calls"],
        "warmup_s": round(warmup_s, 2),
    }
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p, default_budget=60)
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per step (2 views each); default 512 on cuda, 16 on cpu",
    )
    p.add_argument(
        "--warmup", type=int, default=None, help="untimed steps (default 3 cuda, 1 cpu)"
    )
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list")
    p.add_argument("--all", action="store_true", help="also run bf16/compile on a CPU")
    args = p.parse_args(argv)
    device = setup(args)
    args.batch_size = args.batch_size or (512 if device.type == "cuda" else 16)
    args.warmup = (
        args.warmup if args.warmup is not None else (3 if device.type == "cuda" else 1)
    )
    rec = Recorder("train_step", args, device, args.out)
    rec.doc["model"] = ARCH
    rec.doc["clock"] = (
        "ratios, TFLOP/s and shares per CPU second (one thread)"
        if device.type == "cpu"
        else "wall clock"
    )
    rec.doc["flops_per_view"] = fpv = flops_per_view()
    rec.doc["matmul_peak_flops"] = peak = matmul_peak(
        device, min(3.0, 0.05 * args.budget_s)
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    sheet = next((v for k, v in DATASHEET_BF16_FLOPS.items() if k in name), None)
    rec.doc["datasheet_bf16_flops"] = sheet
    rec.doc["variants"], rec.doc["skipped"] = {}, {}
    print(
        f"{ARCH}, batch {args.batch_size} x 2 views, 32 px, on {name}, torch threads "
        f"{torch.get_num_threads()}; forward+backward "
        f"{fpv['forward_backward'] / 1e9:.2f} GFLOP per view "
        f"(forward {fpv['forward'] / 1e9:.2f}); {peak['dtype']} matmul "
        f"{peak['flops'] / 1e12:.2f} TFLOP/s "
        f"({peak['flops_per_cpu_s'] / 1e12:.2f} per CPU second)"
        + (f"; datasheet bf16 {sheet / 1e12:.0f} TFLOP/s" if sheet else "")
    )
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    todo = [
        v
        for v in wanted
        if v in VARIANTS
        and (device.type == "cuda" or args.all or not any(VARIANTS[v][1:]))
    ]
    for v in wanted:
        if v not in todo:
            rec.doc["skipped"][v] = (
                "unknown variant"
                if v not in VARIANTS
                else "CUDA option (--all runs it on a CPU)"
            )
    rec.save()
    for i, variant in enumerate(todo):
        cl, bf16, comp = VARIANTS[variant]
        # compilation happens in warm-up and can take a minute: time the others first
        seconds = max(0.5, (rec.left() - 2) / (len(todo) - i) / 2)
        rec.doc["in_progress"] = variant  # stays in the file if the run is cut off here
        rec.save()
        try:
            r = bench_variant(args, device, cl, bf16, comp, seconds)
        except Exception as err:  # e.g. no C++ toolchain for torch.compile
            why = f"failed: {type(err).__name__}: {str(err)[:200]}"
            rec.doc["skipped"][variant] = why
            print(f"  {variant:<16} {why.splitlines()[0][:120]}")
            rec.save()
            continue
        base = rec.doc["variants"].get("fp32", r)
        # on a shared CPU, rates per CPU second; on a GPU, per wall-clock second
        key = "views_per_cpu_s" if device.type == "cpu" else "views_per_s"
        r["ratio_vs_fp32"] = r[key] / base[key]
        r["tflops"] = r[key] * fpv["forward_backward"] / 1e12
        peak_flops = peak["flops_per_cpu_s" if device.type == "cpu" else "flops"]
        r["share_of_matmul_peak"] = r["tflops"] * 1e12 / peak_flops
        r["share_of_datasheet_bf16"] = r["tflops"] * 1e12 / sheet if sheet else None
        rec.doc["variants"][variant] = r
        rec.save()
        mem = f"  peak {r['peak_memory_gib']:.2f} GiB" if "peak_memory_gib" in r else ""
        print(
            f"  {variant:<16} {r['ms_per_step']:8.1f} ms/step "
            f"{r['views_per_s']:9.0f} views/s  "
            f"x{r['ratio_vs_fp32']:.2f} vs fp32  {r['tflops']:.3f} TFLOP/s = "
            f"{100 * r['share_of_matmul_peak']:.1f}% of the matmul rate{mem}"
            + (f" (warm-up incl. compile {r['warmup_s']:.0f} s)" if comp else "")
        )
    rec.doc.pop("in_progress", None)
    rec.save(complete=True)
    return rec.doc


if __name__ == "__main__":
    main()
