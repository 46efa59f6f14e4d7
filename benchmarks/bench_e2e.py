"""End-to-end training views/s: the GPU-resident uint8 loader + batched augmentation
against a torchvision DataLoader over per-image transforms.v2, feeding the same model on
the same device.

    python benchmarks/bench_e2e.py --device cpu --budget-s 120 --out e2e.json
    python benchmarks/bench_e2e.py --device cuda --budget-s 35             # batch 512

Model and step: ResNet-18, CIFAR stem (``build_model("cifar_resnet18")``), InfoNCE, SGD,
:func:`cl_lib.train.train_step` with the trainer's device defaults (bf16 autocast +
channels_last on CUDA, neither on the CPU; ``--compile`` adds torch.compile). Data: the
CIFAR-10 test split (10,000 uint8 images; the content does not change the timings), or
random images when the archive is absent (said in ``data``).

Pipelines, each measured in steady state (warm-up batches and worker start-up untimed):

    gpu_resident   cl_lib.data.gpu_loader: the split stays on the device as uint8;
                   each batch is indexed there and augmented by SimCLRAugment at once
    dataloader     torch.utils.data.DataLoader over a Dataset whose __getitem__ returns
                   two torchvision transforms.v2 views of one uint8 image (no JPEG
                   decode: the baseline gets decoded images), num_workers = all cores,
                   pin_memory on CUDA, batches copied with non_blocking=True

Each pipeline is timed three ways: ``end_to_end`` (loader + train step), ``loader_only``
(batches produced and on the device, no model), and the model alone on fixed views
(``model_only``). ``stages`` gives a time budget per 1,000 views: JPEG decode (CPU,
libjpeg via torchvision.io.decode_jpeg, per image), per-image augmentation (CPU, one
core), batched augmentation (device), host-to-device copy of float views (CUDA),
forward+backward+optimiser of the model, and the loss alone (forward+backward on fixed
embeddings).

Every rate is given per wall-clock second (``views_per_s``) and per CPU second of this
process and its DataLoader workers (``views_per_cpu_s``: on a CPU shared with other jobs
the steadier measure). ``stages`` uses CPU seconds on the CPU, wall clock on CUDA.

JSON keys read by other tools (see run_all.py): ``gpu_resident_views_per_s`` (end-to-end
views/s of the GPU-resident pipeline, wall clock), ``dataloader_views_per_s``,
``speedup_vs_dataloader`` (and ``speedup_vs_dataloader_cpu_time``), ``batch_size``,
``device``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import tarfile
import time

import torch

from _common import (
    Recorder,
    add_common_args,
    cpu_seconds,
    fmt_rate,
    load_images,
    measure,
    setup,
    sync,
    torchvision_pipeline,
)
from cl_lib.augment import simclr_preset
from cl_lib.data import data_dir, gpu_loader
from cl_lib.losses import get_loss
from cl_lib.models import build_model
from cl_lib.train import TrainConfig, build_optimizer, train_step

ARCH = "cifar_resnet18"


class TwoViewDataset(torch.utils.data.Dataset):
    """Two independently augmented views of one uint8 image, per item (the usual SimCLR
    Dataset wrapper a DataLoader worker runs)."""

    def __init__(self, images: torch.Tensor, transform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        img = self.images[i]
        return self.transform(img), self.transform(img)


class Trainer:
    """A model, optimiser and loss with the trainer's device defaults;
    ``step(views)``."""

    def __init__(self, device: torch.device, batch_size: int, compile_: bool):
        torch.manual_seed(0)
        self.bf16 = self.channels_last = device.type == "cuda"
        model = build_model(ARCH, image_size=32).to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(model, TrainConfig())
        for group in self.optimizer.param_groups:
            group["lr"] = 0.06 * batch_size / 256
        self.model = torch.compile(model) if compile_ else model
        self.loss_fn = get_loss("infonce")

    def step(self, views) -> torch.Tensor:
        return train_step(
            self.model,
            self.loss_fn,
            self.optimizer,
            views,
            None,
            bf16=self.bf16,
            channels_last=self.channels_last,
        )


def cycle(make_iter):
    """Endless batches from fresh iterators (a new epoch when one runs out)."""
    while True:
        yield from make_iter()


def timed_stream(
    batches, consume, views_per_batch: int, device, seconds: float, warmup: int
) -> dict:
    """Pull ``warmup`` batches untimed, then pull + ``consume`` batches for about
    ``seconds``."""
    for _ in range(warmup):
        consume(next(batches))
    sync(device)
    n, t0, c0 = 0, time.perf_counter(), cpu_seconds()
    while True:
        consume(next(batches))
        n += 1
        if n >= 2 and time.perf_counter() - t0 >= seconds:
            break
    sync(device)
    wall = time.perf_counter() - t0
    return {
        "views_per_s": n * views_per_batch / wall,
        "views_per_cpu_s": n * views_per_batch / max(cpu_seconds() - c0, 1e-9),
        "batches": n,
        "seconds": round(wall, 3),
    }


def jpeg_sample(n: int) -> list[bytes]:
    """The first ``n`` JPEG files of the CIFAR-10 archive (empty when it is absent)."""
    base = data_dir()
    path = base / "cifar10-jpeg.tar.gz" if base is not None else None
    if path is None or not path.is_file():
        return []
    out = []
    with tarfile.open(fileobj=gzip.open(path, "rb"), mode="r|") as tar:
        for member in tar:
            if member.isfile() and member.name.lower().endswith((".jpg", ".jpeg")):
                out.append(tar.extractfile(member).read())
                if len(out) >= n:
                    break
    return out


def stage_budget(device, images, trainer, batch_size, seconds, model_rate) -> dict:
    """Milliseconds per 1,000 views of each stage of an epoch (see the module
    docstring)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    cpu = torch.device("cpu")
    share = seconds / 5
    out = {}

    def per_1000(r: dict) -> float:  # ms per 1,000 items; CPU seconds on the CPU
        rate = r["items_per_cpu_s"] if device.type == "cpu" else r["items_per_s"]
        return 1e6 / rate

    jpegs = jpeg_sample(512)
    if jpegs:
        data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in jpegs]
        r = measure(
            lambda: [decode_jpeg(d, mode=ImageReadMode.RGB) for d in data],
            len(data),
            cpu,
            share,
        )
        out["decode_jpeg_cpu_per_image"] = per_1000(r)
    aug = simclr_preset("cifar10")
    tv = torchvision_pipeline(aug)
    xs = images[:256]
    r = measure(lambda: [tv(img) for img in xs], xs.shape[0], cpu, share)
    out["augment_per_image_cpu_1core"] = per_1000(r)
    x = images[:batch_size].to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    r = measure(lambda: aug(x, gen), x.shape[0], device, share)
    out["augment_batched_device"] = per_1000(r)
    if device.type == "cuda":
        host = torch.randn(2 * batch_size, 3, 32, 32).pin_memory()
        r = measure(
            lambda: host.to(device, non_blocking=True), host.shape[0], device, share
        )
        out["copy_float_views_host_to_device"] = per_1000(r)
    out["model_step_device"] = 1e6 / model_rate  # measured before, as model_only
    g = torch.Generator(device="cpu").manual_seed(0)
    z = [
        torch.randn(batch_size, 128, generator=g).to(device).requires_grad_()
        for _ in range(2)
    ]
    r = measure(lambda: trainer.loss_fn(*z).backward(), 2 * batch_size, device, share)
    out["loss_forward_backward_device"] = per_1000(r)
    return {k: round(v, 3) for k, v in out.items()}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p, default_budget=120)
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per step (2 views each); default 512 on cuda, 16 on cpu",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader workers (default: all cores)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--no-stages", action="store_true", help="skip the per-stage time budget"
    )
    args = p.parse_args(argv)
    device = setup(args)
    args.batch_size = args.batch_size or (512 if device.type == "cuda" else 16)
    args.workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    rec = Recorder("end_to_end", args, device, args.out)
    doc = rec.doc
    doc.update(
        model=ARCH,
        device=device.type,
        batch_size=args.batch_size,
        trainer_options={
            "bf16": device.type == "cuda",
            "channels_last": device.type == "cuda",
            "compile": args.compile,
        },
        gpu_resident_views_per_s=None,
        dataloader_views_per_s=None,
        speedup_vs_dataloader=None,
        pipelines={},
    )
    images, doc["data"] = load_images("test")
    rec.save()
    labels = torch.zeros(images.shape[0], dtype=torch.long)
    B, views_per_batch = args.batch_size, 2 * args.batch_size
    aug = simclr_preset("cifar10")
    trainer = Trainer(device, B, args.compile)
    warm = 3 if device.type == "cuda" else 1
    n_parts = 5 + (0 if args.no_stages else 1)  # measurements left, for the time shares

    def share(done: int) -> float:
        return max(0.5, (rec.left() - 3) / (n_parts - done))

    print(
        f"{ARCH}, batch {B} x 2 views on {device.type} (bf16+channels_last: "
        f"{trainer.bf16}), DataLoader workers {args.workers}, torch threads "
        f"{torch.get_num_threads()}, budget {args.budget_s:.0f} s"
    )

    # 1. the GPU-resident pipeline, end to end (the number run_all.py exposes)
    loader = gpu_loader(images, labels, B, aug, device=device, seed=0)
    stream = cycle(lambda: iter(loader))
    r = timed_stream(
        stream, lambda b: trainer.step(b[0]), views_per_batch, device, share(0), warm
    )
    doc["pipelines"]["gpu_resident"] = {"end_to_end": r}
    doc["gpu_resident_views_per_s"] = r["views_per_s"]
    rec.save()
    print(f"  gpu_resident end to end: {fmt_rate(r['views_per_s'])} views/s")

    # 2. the DataLoader pipeline, end to end, then its loader alone (same workers)
    ds = TwoViewDataset(images, torchvision_pipeline(aug))
    dl = torch.utils.data.DataLoader(
        ds,
        batch_size=B,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(0),
    )

    def to_device(batch):
        return [v.to(device, non_blocking=True) for v in batch]

    t0 = time.perf_counter()
    stream = cycle(lambda: iter(dl))
    next(stream)  # starts the workers
    doc["pipelines"]["dataloader"] = {
        "worker_start_s": round(time.perf_counter() - t0, 2)
    }
    # the workers fill a queue of prefetch_factor (2) batches each while idle: drain it
    # first, or the first seconds time the queue, not the pipeline
    # (on a CPU the model is far slower than the loader: the queue is always full)
    drain = 2 * args.workers + warm if device.type == "cuda" else warm
    r = timed_stream(
        stream,
        lambda b: trainer.step(to_device(b)),
        views_per_batch,
        device,
        share(1),
        drain,
    )
    doc["pipelines"]["dataloader"]["end_to_end"] = r
    doc["dataloader_views_per_s"] = r["views_per_s"]
    doc["speedup_vs_dataloader"] = doc["gpu_resident_views_per_s"] / r["views_per_s"]
    doc["speedup_vs_dataloader_cpu_time"] = (
        doc["pipelines"]["gpu_resident"]["end_to_end"]["views_per_cpu_s"]
        / r["views_per_cpu_s"]
    )
    rec.save()
    print(
        f"  dataloader   end to end: {fmt_rate(r['views_per_s'])} views/s  "
        f"-> GPU-resident is {doc['speedup_vs_dataloader']:.2f}x"
    )
    r = timed_stream(stream, to_device, views_per_batch, device, share(2), drain)
    doc["pipelines"]["dataloader"]["loader_only"] = r
    del stream, dl  # stops the workers
    rec.save()
    print(f"  dataloader   loader only: {fmt_rate(r['views_per_s'])} views/s")

    # 3. the GPU-resident loader alone, and the model alone on fixed views
    stream = cycle(lambda: iter(loader))
    r = timed_stream(stream, lambda b: None, views_per_batch, device, share(3), warm)
    doc["pipelines"]["gpu_resident"]["loader_only"] = r
    print(f"  gpu_resident loader only: {fmt_rate(r['views_per_s'])} views/s")
    g = torch.Generator(device="cpu").manual_seed(0)
    views = [torch.randn(B, 3, 32, 32, generator=g).to(device) for _ in range(2)]
    m = measure(
        lambda: trainer.step(views), views_per_batch, device, share(4), warmup=warm
    )
    doc["model_only"] = {
        "views_per_s": m["items_per_s"],
        "views_per_cpu_s": m["items_per_cpu_s"],
        "steps": m["calls"],
        "seconds": m["seconds"],
    }
    rec.save()
    print(
        f"  model alone (fixed views): {fmt_rate(m['items_per_s'])} views/s "
        f"({fmt_rate(m['items_per_cpu_s'])} per CPU second)"
    )
    model_rate = m["items_per_cpu_s"] if device.type == "cpu" else m["items_per_s"]

    # 4. where the time of an epoch goes
    if not args.no_stages:
        doc["stages_clock"] = "CPU seconds" if device.type == "cpu" else "wall clock"
        doc["stages_ms_per_1000_views"] = st = stage_budget(
            device, images, trainer, B, share(5), model_rate
        )
        print(
            "  ms per 1,000 views: " + ", ".join(f"{k} {v:.1f}" for k, v in st.items())
        )
    rec.save(complete=True)
    return doc


if __name__ == "__main__":
    main()
