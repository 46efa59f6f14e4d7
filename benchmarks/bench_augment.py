"""Images/s of cl_lib's batched SimCLR augmentation vs a per-sample torchvision v2 pipeline.

Both pipelines do the same work (random resized crop, flip, colour jitter with p = 0.8,
grayscale p = 0.2, blur p = 0.5 for the 96px preset, normalisation) on uint8 input; the
per-sample one is what a DataLoader worker runs, one image at a time. Run::

    python benchmarks/bench_augment.py                      # CPU (and CUDA when present)
    python benchmarks/bench_augment.py --preset imagenette-96 --batch 256 --threads 1

Prints one row per (pipeline, device) with images/s and the speed-up of the batched pipeline
over torchvision on the same device (and over torchvision on the CPU, the usual data-loader
setting). Timings are wall-clock of the process; on a shared machine read them as rough.
``--stages`` adds, on the CPU, the images/s of each stage of the batched pipeline in *process
CPU time* (user + sys, robust to other jobs on a shared machine): crop + flip, colour jitter
(:func:`cl_lib.augment.apply_jitter` on pre-drawn parameters), grayscale, blur, normalisation.
"""
from __future__ import annotations

import argparse
import time

import torch
import torchvision.transforms.v2 as T

from cl_lib import augment as A
from cl_lib.augment import SimCLRAugment, simclr_preset


def torchvision_pipeline(aug: SimCLRAugment) -> T.Compose:
    """The per-sample equivalent of ``aug`` in torchvision.transforms.v2."""
    steps = [
        T.RandomResizedCrop(aug.size, scale=aug.scale, ratio=aug.ratio,
                            interpolation=T.InterpolationMode.BILINEAR, antialias=False),
        T.RandomHorizontalFlip(aug.flip_p),
        T.RandomApply([T.ColorJitter(*aug.jitter)], p=aug.jitter_p),
        T.RandomGrayscale(aug.gray_p),
        T.ToDtype(torch.float32, scale=True),
    ]
    if aug.blur_p > 0:
        steps.append(T.RandomApply([T.GaussianBlur(aug.blur_kernel, aug.blur_sigma)], p=aug.blur_p))
    if aug.mean is not None:
        steps.append(T.Normalize(list(aug.mean), list(aug.std)))
    return T.Compose(steps)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(fn, n_images: int, device: torch.device, min_time: float) -> float:
    fn()  # warm-up (allocations, kernels, lazy imports)
    sync(device)
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return reps * n_images / elapsed


def cpu_images_per_second(fn, n_images: int, min_time: float) -> float:
    """As :func:`images_per_second`, in process CPU time (CPU only)."""
    fn()
    reps, start = 0, time.process_time()
    while True:
        fn()
        reps += 1
        elapsed = time.process_time() - start
        if elapsed >= min_time:
            return reps * n_images / elapsed


def stage_rows(aug: SimCLRAugment, data: torch.Tensor, min_time: float) -> list[tuple[str, float]]:
    """CPU images/s of each stage of ``aug``, each on the output of the stage before."""
    g = torch.Generator().manual_seed(0)
    B = data.shape[0]
    crop = lambda: A.random_resized_crop(data, aug.size, aug.scale, aug.ratio, g, flip_p=aug.flip_p)  # noqa: E731
    x = crop()
    params = A.sample_jitter_params(B, *aug.jitter, p=aug.jitter_p, generator=g)
    rows = [("crop + flip", cpu_images_per_second(crop, B, min_time)),
            ("colour jitter", cpu_images_per_second(lambda: A.apply_jitter(x, params), B, min_time)),
            ("grayscale", cpu_images_per_second(lambda: A.random_grayscale(x, aug.gray_p, g), B, min_time))]
    if aug.blur_p > 0:
        rows.append(("blur", cpu_images_per_second(
            lambda: A.random_gaussian_blur(x, aug.blur_kernel, aug.blur_sigma, aug.blur_p, g), B, min_time)))
    rows.append(("normalise", cpu_images_per_second(lambda: aug.eval_transform(x), B, min_time)))
    rows.append(("whole pipeline", cpu_images_per_second(lambda: aug(data, g), B, min_time)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cifar10", help="data set name of simclr_preset (cifar10, imagenette-96, ...)")
    ap.add_argument("--batch", type=int, default=512, help="batch size of the batched pipeline")
    ap.add_argument("--per-sample", type=int, default=256, help="images per timing round of the per-sample pipeline")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--devices", default=None, help="comma list, default: cpu[,cuda]")
    ap.add_argument("--stages", action="store_true", help="also time each stage on the CPU (CPU time)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    aug = simclr_preset(args.preset)
    tv = torchvision_pipeline(aug)
    side = {32: 32, 96: 96, 224: 256}.get(aug.size, aug.size)
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (args.batch, 3, side, side), dtype=torch.uint8, generator=g)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    print(f"preset {args.preset}: {aug}")
    print(f"input {side}x{side} uint8, batch {args.batch}, torch threads {torch.get_num_threads()}")
    rows, tv_cpu = [], None
    for name in devices:
        device = torch.device(name)
        x = data.to(device)
        gen = torch.Generator(device=device).manual_seed(0)
        batched = images_per_second(lambda: aug(x, gen), args.batch, device, args.min_time)
        xs = x[: args.per_sample]
        per_sample = images_per_second(lambda: [tv(img) for img in xs], xs.shape[0], device, args.min_time)
        if name == "cpu":
            tv_cpu = per_sample
        rows.append((name, batched, per_sample))
    print(f"{'device':8s} {'batched img/s':>14s} {'torchvision img/s':>18s} {'ratio':>7s} {'vs tv cpu':>9s}")
    for name, batched, per_sample in rows:
        vs_cpu = f"{batched / tv_cpu:9.1f}" if tv_cpu else f"{'-':>9s}"
        print(f"{name:8s} {batched:14.0f} {per_sample:18.0f} {batched / per_sample:7.1f} {vs_cpu}")
    if args.stages:
        print(f"\nbatched pipeline on the CPU, per stage (process CPU time):\n{'stage':16s} {'img/s':>10s}")
        for stage, speed in stage_rows(aug, data, args.min_time):
            print(f"{stage:16s} {speed:10.0f}")


if __name__ == "__main__":
    main()
