"""Run the three benchmarks within one time budget and write their JSON files into a
folder.

    python benchmarks/run_all.py --device cuda --budget-s 90 --out-dir OUT
    python benchmarks/run_all.py --device cpu --budget-s 300 --out-dir DIR

Files written into ``--out-dir`` (at most three; the device type is part of each name):

    e2e_<device>.json      bench_e2e.py: end-to-end views/s, GPU-resident vs DataLoader
    train_<device>.json    bench_train.py: step variants fp32/bf16/channels_last/compile
    augment_<device>.json  bench_augment.py: batched vs per-image augmentation

KEY FOR OTHER TOOLS (e.g. ``python -m cl_lib.campaign``, which estimates run times from
it)::

    json.load(open(f"{out_dir}/e2e_{device}.json"))["gpu_resident_views_per_s"]

is the end-to-end training throughput -- augmented views per second, 2 views per image,
so images/s is half of it -- of ResNet-18 (CIFAR stem) at ``["batch_size"]`` (512 on
CUDA) with the GPU-resident uint8 loader + batched augmentation and the trainer's device
defaults (bf16 + channels_last on CUDA, no torch.compile: a compiled run is at least as
fast, so estimates from it are conservative). It is None if the benchmark was cut off
before measuring it. The same dict is printed as the last line of this script's output,
prefixed ``RESULT``, and :func:`gpu_resident_views_per_s` reads it back.

Each benchmark runs in its own process with a share of the budget and is stopped if it
runs past its share (plus a short grace); each saves after every measurement, so a
cut-off benchmark still leaves its finished measurements (``"complete": false``). The
end-to-end benchmark runs first, so its key exists even when a later one is cut off.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (file stem, script, share of the budget); start-up of each process comes out of its
# share (torch.compile's warm-up in bench_train can take most of a minute on a GPU)
BENCHMARKS = (
    ("e2e", "bench_e2e.py", 0.32),
    ("train", "bench_train.py", 0.48),
    ("augment", "bench_augment.py", 0.20),
)
KEY = "gpu_resident_views_per_s"


def gpu_resident_views_per_s(out_dir: str | Path, device: str = "cuda") -> float | None:
    """The end-to-end views/s of the GPU-resident pipeline stored in ``out_dir`` (None
    if absent)."""
    path = Path(out_dir) / f"e2e_{device}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get(KEY)


def run_with_limit(cmd: list[str], seconds: float) -> str:
    """Run ``cmd`` in its own process group (same session); past ``seconds``, kill the
    whole group -- DataLoader workers and compiler processes included.

    Returns:
        a status string: "ok", "exit code N" or "stopped at the time limit ...".
    """
    # unbuffered: a caller streaming our output sees each line as it comes, and a killed
    # benchmark's last lines are not lost in a buffer
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, preexec_fn=os.setpgrp, env=env)
    try:
        rc = proc.wait(timeout=seconds)
        return "ok" if rc == 0 else f"exit code {rc}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "stopped at the time limit (partial results)"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="default: cuda when available, else cpu",
    )
    p.add_argument("--budget-s", type=float, default=90.0, help="seconds for all three")
    p.add_argument(
        "--out-dir", required=True, help="folder for the (at most 3) JSON files"
    )
    p.add_argument(
        "--only", default=None, help="comma list of e2e,train,augment (default all)"
    )
    args = p.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [
        b for b in BENCHMARKS if args.only is None or b[0] in args.only.split(",")
    ]
    total_share = sum(b[2] for b in chosen)
    start = time.perf_counter()
    deadline = start + args.budget_s
    status = {}
    for stem, script, part in chosen:
        left = deadline - time.perf_counter()
        own = args.budget_s * part / total_share
        if left < 8:
            status[stem] = "not run: budget spent"
            continue
        # the script's own budget excludes ~5-8 s of process and CUDA start-up
        budget = max(3.0, min(own, left) - 8)
        out = out_dir / f"{stem}_{args.device}.json"
        cmd = [
            sys.executable,
            str(HERE / script),
            "--device",
            args.device,
            "--budget-s",
            f"{budget:.1f}",
            "--out",
            str(out),
        ]
        print(f"== {stem}: {' '.join(cmd[1:])}", flush=True)
        status[stem] = run_with_limit(cmd, max(5.0, min(left - 1, own + 15)))
    result = {
        "device": args.device,
        "out_dir": str(out_dir),
        "status": status,
        KEY: gpu_resident_views_per_s(out_dir, args.device),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
