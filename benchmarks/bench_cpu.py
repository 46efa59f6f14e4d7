"""Training throughput of the CPU tiers' network on a CPU, before and after the CPU
speed options, measured in one run so that the ratios hold on any machine.

    python benchmarks/bench_cpu.py --threads 2 --out benchmarks/results/cpu_step.json
    python benchmarks/bench_cpu.py --arch small_resnet --width 16   # the cpu-long network

What is timed is what one training step of ``cl_lib.train`` does: the uint8 batch is
drawn by the trainer's loader (``cl_lib.data.gpu_loader``: batched SimCLR augmentation
of two views), then ``cl_lib.train.train_step`` (forward, loss, backward, SGD) --
``--arch`` (``small_cnn`` or ``small_resnet``) of width ``--width``, batch
``--batch-size``, InfoNCE. Images are random uint8 (the arithmetic does not depend on
the pixels), so the script needs no data set. Variants, each cumulative over the one
before:

    baseline       float32, NCHW, eager, glibc's default allocator (the trainer as it
                   ran the cpu-study tier)
    allocator      + freed memory kept in the process (cl_lib.profile.keep_cpu_memory:
                   no page faults for each step's fresh activations)
    channels_last  + NHWC layout (oneDNN's preferred convolution layout)
    bf16           + bfloat16 autocast (AMX / AVX-512 BF16 units where the CPU has them)
    compile        + torch.compile of the model

Every variant runs in a fresh process (the allocator setting cannot be undone in one),
rounds alternate the variants (A B C ... A B C ...), and the ratio to the baseline is
taken round by round, so a machine whose speed drifts still gives steady ratios. Per
variant: images/s by wall clock (median over rounds), CPU seconds per image split into
user and system time, and the median ratio to the baseline.

JSON (``--out``): ``variants[<name>]`` = {images_per_s, ratio_vs_baseline, user_ms_per_image,
sys_ms_per_image, rounds: [...]}, plus ``provenance`` (hardware, torch, commit, date) and
``config``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {  # name: (keep_memory, channels_last, bf16, compile)
    "baseline": (False, False, False, False),
    "allocator": (True, False, False, False),
    "channels_last": (True, True, False, False),
    "bf16": (True, True, True, False),
    "compile": (True, True, True, True),
}


def child(args) -> dict:
    """One variant in this process: warm-up steps, then ``args.steps`` timed steps."""
    import torch

    torch.set_num_threads(args.threads)
    keep, channels_last, bf16, compiled = VARIANTS[args.child]
    from cl_lib.profile import keep_cpu_memory

    if keep:
        keep_cpu_memory()
    from cl_lib.augment import simclr_preset
    from cl_lib.data import gpu_loader
    from cl_lib.losses import get_loss
    from cl_lib.models import build_model
    from cl_lib.train import TrainConfig, build_optimizer, train_step

    torch.manual_seed(0)
    n = args.batch_size * (args.steps + args.warmup)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    y = torch.zeros(n, dtype=torch.long)
    model = build_model(args.arch, width=args.width, proj_dim=64, proj_hidden_dim=128)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    cfg = TrainConfig(arch=args.arch, width=args.width, batch_size=args.batch_size)
    opt = build_optimizer(model, cfg)
    step_model = torch.compile(model) if compiled else model
    loss = get_loss("infonce", tau=0.5)
    batches = gpu_loader(
        x,
        y,
        batch_size=args.batch_size,
        augment=simclr_preset("cifar10", size=32),
        shuffle=True,
        seed=0,
        device=torch.device("cpu"),
        epoch=0,
    )
    usage = lambda: resource.getrusage(resource.RUSAGE_SELF)
    for i, (views, labels) in enumerate(batches):
        if i == args.warmup:
            t0, r0 = time.perf_counter(), usage()
        train_step(step_model, loss, opt, views, labels, bf16, channels_last, None)
    wall, r1 = time.perf_counter() - t0, usage()
    images = args.batch_size * args.steps
    return {
        "images_per_s": images / wall,
        "user_ms_per_image": 1000 * (r1.ru_utime - r0.ru_utime) / images,
        "sys_ms_per_image": 1000 * (r1.ru_stime - r0.ru_stime) / images,
        "minor_faults_per_step": (r1.ru_minflt - r0.ru_minflt) / args.steps,
    }


def run_variant(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", name]
    for k in ("arch", "width", "batch_size", "steps", "warmup", "threads"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"variant {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=("small_cnn", "small_resnet"), default="small_cnn")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return {}
    started = time.perf_counter()
    names = args.variants or list(VARIANTS)
    if names[0] != "baseline":
        names = ["baseline"] + [n for n in names if n != "baseline"]
    rounds: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            rounds[name].append(run_variant(name, args))
            m = rounds[name][-1]
            print(
                f"round {r + 1} {name:14s} {m['images_per_s']:7.0f} images/s  "
                f"user {m['user_ms_per_image']:.2f} ms  sys "
                f"{m['sys_ms_per_image']:.2f} ms per image",
                flush=True,
            )
    med = statistics.median
    base = rounds["baseline"]
    variants = {}
    for name in names:
        ratios = [
            m["images_per_s"] / b["images_per_s"] for m, b in zip(rounds[name], base)
        ]
        variants[name] = {
            "images_per_s": round(med(m["images_per_s"] for m in rounds[name]), 1),
            "ratio_vs_baseline": round(med(ratios), 3),
            "user_ms_per_image": round(
                med(m["user_ms_per_image"] for m in rounds[name]), 3
            ),
            "sys_ms_per_image": round(
                med(m["sys_ms_per_image"] for m in rounds[name]), 3
            ),
            "rounds": rounds[name],
        }
    sys.path.insert(0, str(HERE.parent))
    import torch

    from cl_lib.io import hardware_info, library_commit, write_json

    commit, dirty = library_commit()
    doc = {
        "benchmark": "cpu_step",
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "child")},
        "variants": variants,
        "provenance": {
            "hardware": hardware_info(torch.device("cpu")),
            "torch": str(torch.__version__),
            "library_commit": commit,
            "library_dirty": dirty,
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wall_s": round(time.perf_counter() - started, 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
    }
    print(
        f"{'variant':14s} {'images/s':>9s} {'x baseline':>10s} {'user':>6s} {'sys':>6s}"
    )
    for name, v in variants.items():
        print(
            f"{name:14s} {v['images_per_s']:9.0f} {v['ratio_vs_baseline']:10.2f} "
            f"{v['user_ms_per_image']:6.2f} {v['sys_ms_per_image']:6.2f}"
        )
    if args.out:
        write_json(doc, args.out)
    return doc


if __name__ == "__main__":
    main()
