"""Views/s of cl_lib's batched SimCLR augmentation vs torchvision's per-image
transforms.v2.

Both pipelines do the same work on uint8 input (random resized crop, flip, colour jitter
with p = 0.8, grayscale p = 0.2, blur p = 0.5 for the 96 px preset, normalisation); the
per-image one is what a DataLoader worker runs, one image at a time, on the CPU. Run::

    python benchmarks/bench_augment.py --device cpu --budget-s 60 --out aug.json
    python benchmarks/bench_augment.py --device cuda --budget-s 20 --stages

Prints, for 32 px (CIFAR-10 preset) and 96 px (Imagenette-96 preset), the views/s of the
batched pipeline on ``--device`` and of torchvision per image on the CPU (one process),
and their ratio. On the CPU the default is one torch thread for both (so the ratio
compares equal resources; a DataLoader would give each of its workers one core the same
way), and the ratio is also given in process CPU time, robust to other jobs on a shared
machine. ``--stages`` adds the CPU-time views/s of each stage of the batched pipeline
(on the CPU).

JSON (``--out``): ``results[<preset>]`` = {``batched``, ``torchvision_per_image``:
measurement dicts with ``items_per_s`` (views/s) ...; ``ratio``; ``ratio_cpu_time`` (CPU
only); ``stages_views_per_cpu_s`` (with ``--stages``)}.
"""

from __future__ import annotations

import argparse

import torch

from _common import (
    Recorder,
    add_common_args,
    fmt_rate,
    load_images,
    measure,
    setup,
    torchvision_pipeline,
)
from cl_lib import augment as A
from cl_lib.augment import SimCLRAugment, simclr_preset

PRESETS = {
    "cifar10": ("cifar10", "test", 32),
    "imagenette-96": ("imagenette-96", "val", 96),
}


def stage_rates(aug: SimCLRAugment, data: torch.Tensor, seconds: float) -> dict:
    """CPU-time views/s of each stage of ``aug``, each on the output of the stage
    before."""
    g = torch.Generator().manual_seed(0)
    n = data.shape[0]
    cpu = torch.device("cpu")
    x = A.random_resized_crop(
        data, aug.size, aug.scale, aug.ratio, g, flip_p=aug.flip_p
    )
    params = A.sample_jitter_params(n, *aug.jitter, p=aug.jitter_p, generator=g)
    stages = {
        "crop + flip": lambda: A.random_resized_crop(
            data, aug.size, aug.scale, aug.ratio, g, flip_p=aug.flip_p
        ),
        "colour jitter": lambda: A.apply_jitter(x, params),
        "grayscale": lambda: A.random_grayscale(x, aug.gray_p, g),
        "normalise": lambda: aug.eval_transform(x),
    }
    if aug.blur_p > 0:
        stages["blur"] = lambda: A.random_gaussian_blur(
            x, aug.blur_kernel, aug.blur_sigma, aug.blur_p, g
        )
    out = {}
    for name, fn in stages.items():
        out[name] = round(
            measure(fn, n, cpu, seconds / len(stages))["items_per_cpu_s"], 1
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p, default_budget=60)
    p.add_argument(
        "--presets",
        default="cifar10,imagenette-96",
        help=f"comma list of {sorted(PRESETS)}",
    )
    p.add_argument("--batch", type=int, default=512, help="images per batched call")
    p.add_argument(
        "--fixed-batch",
        action="store_true",
        help="on a CPU, --batch at every size (default: scaled to 32 px's pixel count)",
    )
    p.add_argument(
        "--per-image",
        type=int,
        default=128,
        help="images per timing round of the per-image pipeline",
    )
    p.add_argument(
        "--stages", action="store_true", help="also time each batched stage (CPU)"
    )
    args = p.parse_args(argv)
    device = setup(args)
    rec = Recorder("augment", args, device, args.out)
    presets = [s.strip() for s in args.presets.split(",") if s.strip()]
    for name in presets:
        if name not in PRESETS:
            raise SystemExit(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    rec.doc["results"] = {}
    rec.save()
    per_preset = 3 if args.stages else 2  # batched, per image (, stages)
    n_measurements = per_preset * len(presets)
    print(
        f"augmentation on {device.type}, torch threads {torch.get_num_threads()}, "
        f"budget {args.budget_s:.0f} s"
    )
    for i, name in enumerate(presets):
        dataset, split, side = PRESETS[name]
        images, note = load_images(
            split, n=max(args.batch, args.per_image), dataset=dataset, side=side
        )
        rec.doc["data"][name] = note
        aug = simclr_preset(name)
        tv = torchvision_pipeline(aug)
        slice_s = max(0.5, (rec.left() - 2) / (n_measurements - per_preset * i))
        # on a CPU, batches of the pixel count of --batch at 32 px (a 96 px batch of 512
        # takes seconds per call there); on a GPU, --batch at every size
        batch = args.batch
        if device.type == "cpu" and not args.fixed_batch:
            batch = max(32, args.batch * 32 * 32 // (side * side))
        x = images[:batch].to(device)
        gen = torch.Generator(device=device).manual_seed(0)
        batched = measure(lambda: aug(x, gen), x.shape[0], device, slice_s)
        torch.manual_seed(0)
        xs = images[: args.per_image]
        per_image = measure(
            lambda: [tv(img) for img in xs], xs.shape[0], torch.device("cpu"), slice_s
        )
        row = {
            "view_side": aug.size,
            "batch": batch,
            "augment": repr(aug),
            "batched": batched,
            "torchvision_per_image": per_image,
            "ratio": batched["items_per_s"] / per_image["items_per_s"],
        }
        if device.type == "cpu":
            row["ratio_cpu_time"] = (
                batched["items_per_cpu_s"] / per_image["items_per_cpu_s"]
            )
        if args.stages:
            row["stages_views_per_cpu_s"] = stage_rates(aug, images[:batch], slice_s)
        rec.doc["results"][name] = row
        rec.save()
        extra = (
            f", {row['ratio_cpu_time']:.1f}x in CPU time"
            if "ratio_cpu_time" in row
            else ""
        )
        print(
            f"  {name:14s} {aug.size:3d}px  batched on {device.type}: "
            f"{fmt_rate(batched['items_per_s'])} views/s   "
            "torchvision per image (CPU): "
            f"{fmt_rate(per_image['items_per_s'])} views/s   "
            f"ratio {row['ratio']:.1f}x{extra}"
        )
        if args.stages:
            print(
                "      batched stages (views per CPU second): "
                + ", ".join(
                    f"{k} {fmt_rate(v)}"
                    for k, v in row["stages_views_per_cpu_s"].items()
                )
            )
    rec.save(complete=True)
    return rec.doc


if __name__ == "__main__":
    main()
