"""Shared pieces of the benchmark scripts: provenance, timing, data, torchvision
baseline.

Every benchmark writes one JSON file whose top level holds ``benchmark``, ``complete``
(False while the script is still running or was cut off: each measurement is saved as
soon as it is done), ``provenance`` (hardware via :func:`cl_lib.io.hardware_info`,
torch/torchvision versions, library commit, UTC date, wall time, torch threads),
``config`` (the arguments) and ``data`` (where the images came from).
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch

# the scripts run as `python benchmarks/x.py` from anywhere: without an installed cl_lib
# (or one on PYTHONPATH), import the repository's own
try:
    import cl_lib  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torchvision  # noqa: E402
import torchvision.transforms.v2 as T  # noqa: E402

from cl_lib.augment import SimCLRAugment  # noqa: E402
from cl_lib.io import hardware_info, library_commit, write_json  # noqa: E402

# Dense bf16 tensor-core rate (FLOP/s, no sparsity) from NVIDIA's datasheets, by a
# substring of torch.cuda.get_device_name(); the benchmarks also measure a large bf16
# matmul on the device, which is the ceiling a real program can reach (about 790 TFLOP/s
# on an H200 SXM).
DATASHEET_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def add_common_args(parser, default_budget: float) -> None:
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="default: cuda when available, else cpu",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=default_budget,
        help="seconds the whole script may take (measurements share it)",
    )
    parser.add_argument(
        "--out", default=None, help="write the results to this JSON file"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: 1 on cpu, torch's default on cuda)",
    )


def setup(args) -> torch.device:
    """Resolve ``--device`` and threads; returns the device."""
    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device")
    device = torch.device(name)
    threads = args.threads if args.threads else (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def provenance(device: torch.device, started: float) -> dict:
    """Hardware, versions, commit, date and wall time so far."""
    commit, dirty = library_commit()
    return {
        "hardware": hardware_info(device),
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": sys.version.split()[0],
        "library_commit": commit,
        "library_dirty": dirty,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": round(time.perf_counter() - started, 2),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        # other jobs on the machine slow wall-clock rates; the CPU-time rates less so
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


class Recorder:
    """Holds a benchmark's results and rewrites its JSON after every measurement, so a
    run cut off by a time limit still leaves what it measured (with ``complete:
    false``)."""

    def __init__(self, benchmark: str, args, device: torch.device, out: str | None):
        self.started = time.perf_counter()
        self.deadline = self.started + float(args.budget_s)
        self.device, self.out = device, out
        self.doc = {
            "benchmark": benchmark,
            "complete": False,
            "provenance": {},
            "config": {k: v for k, v in vars(args).items() if k != "out"},
            "data": {},
            "notes": [],
        }

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def save(self, complete: bool = False) -> None:
        self.doc["complete"] = complete
        self.doc["provenance"] = provenance(self.device, self.started)
        if self.out:
            write_json(self.doc, self.out)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_seconds() -> float:
    """CPU seconds (user + sys) used so far by this process and its live child processes
    (e.g. DataLoader workers), read from /proc on Linux; this process alone elsewhere.

    On a CPU shared with other jobs, work per CPU second is a steadier measure than work
    per wall-clock second."""
    me = os.getpid()
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:  # the process ended meanwhile
                continue
            pid, ppid = int(entry.name), int(fields[1])
            if pid == me or ppid == me:
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return total
    except OSError:
        return time.process_time()


def measure(
    fn: Callable[[], object],
    items: int,
    device: torch.device,
    seconds: float,
    warmup: int = 1,
    min_reps: int = 2,
) -> dict:
    """Call ``fn`` ``warmup`` times, then repeatedly for about ``seconds`` (at least
    ``min_reps`` times); ``items`` = items one call processes. Returns items/s by wall
    clock and by CPU time (:func:`cpu_seconds`: less sensitive to other jobs on a shared
    CPU; meaningful on the CPU only), the number of calls, and the seconds timed."""
    for _ in range(warmup):
        fn()
    sync(device)
    reps, t0, c0 = 0, time.perf_counter(), cpu_seconds()
    while True:
        fn()
        reps += 1
        sync(device)
        wall = time.perf_counter() - t0
        if reps >= min_reps and wall >= seconds:
            break
    cpu = cpu_seconds() - c0
    return {
        "items_per_s": reps * items / wall,
        "items_per_cpu_s": reps * items / max(cpu, 1e-9),
        "ms_per_call": 1000 * wall / reps,
        "calls": reps,
        "seconds": round(wall, 3),
    }


def load_images(
    split: str = "test",
    n: int | None = None,
    seed: int = 0,
    dataset: str = "cifar10",
    side: int = 32,
) -> tuple[torch.Tensor, dict]:
    """``(uint8 images (N, 3, side, side), note)`` from :func:`cl_lib.data.load_dataset`
    (cached after the first decode), or random uint8 images when the data set is absent.
    """
    try:
        from cl_lib.data import ARCHIVES, data_dir, load_dataset

        base = data_dir()
        archive = base / ARCHIVES[dataset][0] if base is not None else None
        if archive is None or not archive.is_file():
            # without the archive load_dataset would try a download (can hang offline)
            name = ARCHIVES[dataset][0]
            raise FileNotFoundError(f"no {name} in $CL_LIB_DATA ({base})")
        t0 = time.perf_counter()
        images, _, _ = load_dataset(dataset, split=split)
        note = {
            "source": f"{dataset} {split} split via cl_lib.data.load_dataset",
            "load_s": round(time.perf_counter() - t0, 2),
        }
    except (
        Exception
    ) as err:  # no archive, no network: content does not change the timings
        g = torch.Generator().manual_seed(seed)
        images = torch.randint(
            0, 256, (n or 10000, 3, side, side), dtype=torch.uint8, generator=g
        )
        note = {
            "source": f"random uint8 images ({dataset} unavailable: "
            f"{type(err).__name__}: {str(err)[:120]})"
        }
    if n is not None:
        images = images[:n]
    note["shape"] = list(images.shape)
    return images.contiguous(), note


def torchvision_pipeline(aug: SimCLRAugment) -> T.Compose:
    """The per-image equivalent of ``aug`` in torchvision.transforms.v2 (what a
    DataLoader worker runs, one uint8 image (3, H, W) at a time)."""
    steps = [
        T.RandomResizedCrop(
            aug.size,
            scale=aug.scale,
            ratio=aug.ratio,
            interpolation=T.InterpolationMode.BILINEAR,
            antialias=False,
        ),
        T.RandomHorizontalFlip(aug.flip_p),
        T.RandomApply([T.ColorJitter(*aug.jitter)], p=aug.jitter_p),
        T.RandomGrayscale(aug.gray_p),
        T.ToDtype(torch.float32, scale=True),
    ]
    if aug.blur_p > 0:
        steps.append(
            T.RandomApply(
                [T.GaussianBlur(aug.blur_kernel, aug.blur_sigma)], p=aug.blur_p
            )
        )
    if aug.mean is not None:
        steps.append(T.Normalize(list(aug.mean), list(aug.std)))
    return T.Compose(steps)


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"
