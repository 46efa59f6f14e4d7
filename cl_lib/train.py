r"""The trainer: one config dataclass, one ``train(config)`` function, one CLI.

    python -m cl_lib.train --dataset cifar10 --loss dhel --epochs 200 --batch-size 512 \
        --arch resnet18 --out runs/dhel-cifar10          # add --resume to continue a run
    python -m cl_lib.train --profile quick --out runs/quick   # CPU smoke run, ~30 s of CPU time
    torchrun --nproc_per_node=4 -m cl_lib.train ...           # multi-GPU (see cl_lib.distributed)

What one epoch does (SimCLR, Chen et al. 2020, Alg. 1): for each batch of $B$ images draw two
augmented views, embed both in one forward pass, $z = g(f(x))$, and minimise any ``cl_lib``
loss $\mathcal{L}(z^{(1)}, z^{(2)}, y)$. Labels $y$ go to the losses that use them (CLOA,
SupCon, NSCL); with ``label_fraction < 1`` a seeded random $1-$``label_fraction`` of the
training images get the label $-1$ ("unlabelled").

The learning rate follows a linear warm-up then a cosine decay, updated every step $s$
(Loshchilov & Hutter, 2017; Goyal et al., 2017 for the warm-up and the linear scaling rule):

$$\eta_s = \begin{cases} \eta \, \dfrac{s+1}{S_w} & s < S_w \\[4pt]
  \eta_\text{min} + \tfrac12 (\eta - \eta_\text{min})
  \Big(1 + \cos \pi \dfrac{s - S_w}{S - S_w}\Big) & s \ge S_w \end{cases},
  \qquad \eta = \texttt{lr} \cdot \frac{B}{256}.$$

Engineering, all optional and recorded in the results: bf16 autocast and channels_last on CUDA,
``torch.compile``, gradient clipping, an atomic checkpoint every k epochs, exact resume
(model, optimiser, step, RNG states -- the data order is a function of (seed, epoch)), and a
guard that stops on a NaN/Inf loss with :class:`NonFiniteLossError`, leaving the last good
checkpoint in place. After training: kNN and linear-probe accuracy of the backbone features and
geometry metrics of held-out embeddings (``cl_lib.evaluate``), written with hardware, versions
and timings to ``<out>/results.json`` (schema in ``book/results/README.md``).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from cl_lib import distributed
from cl_lib.data import balanced_subset
from cl_lib.io import hardware_info, library_commit, write_atomic
from cl_lib.evaluate import embedding_metrics, extract_features, knn_accuracy, linear_probe
from cl_lib.losses import get_loss
from cl_lib.models import build_model
from cl_lib.profile import get_profile, seed_everything

__all__ = ["TrainConfig", "TrainResult", "NonFiniteLossError", "PROFILE_PRESETS", "train",
           "train_step", "lr_at", "mask_labels", "build_optimizer", "make_augment", "config_dict",
           "library_commit", "hardware_info", "main"]

RESULTS_SCHEMA_VERSION = 1
# config fields that must not change between a run and its --resume (else a warning)
_RESUME_MUST_MATCH = ("dataset", "subset", "augment", "augment_kwargs", "image_size", "arch", "width", "proj_dim", "proj_hidden_dim", "proj_layers",
                      "loss", "loss_kwargs", "label_fraction", "epochs", "batch_size", "optimizer", "lr",
                      "momentum", "weight_decay", "warmup_epochs", "min_lr_ratio", "seed")


@dataclass
class TrainConfig:
    """Everything a run needs. Defaults are the full-profile CIFAR-10 setting; the ``quick``
    preset (:data:`PROFILE_PRESETS`) shrinks it to a CPU smoke run."""
    # data
    dataset: str = "cifar10"               # name for cl_lib.data.load_dataset, or "imagefolder:<path>"
    data_root: str | None = None           # default: $CL_LIB_DATA
    cache_dir: str | None = None
    subset: int | None = None              # at most this many training images (class-balanced, seeded)
    test_subset: int | None = None         # ... and test images for evaluation
    augment: str | None = None             # SimCLRAugment preset; None = chosen from the image size
    augment_kwargs: dict = field(default_factory=dict)  # overrides of the preset's SimCLRAugment
    #   arguments, e.g. seed 001's weak recipe {"jitter": [0.2, 0.2, 0.2, 0.1], "scale": [0.8, 1.0]}
    image_size: int | None = None          # side of the views the network sees (crops and test
    #   images are resized to it, bilinear); None = the stored images' own size
    # model
    arch: str = "resnet18"                 # see cl_lib.models.ARCHS
    width: int = 32                        # small_cnn only
    proj_dim: int = 128
    proj_hidden_dim: int | None = None     # None = backbone feature width
    proj_layers: int = 2
    # loss
    loss: str | Callable = "infonce"       # cl_lib.losses name, or a callable(z1, z2, labels)
    loss_kwargs: dict = field(default_factory=dict)   # e.g. {"tau": 0.2}
    label_fraction: float = 1.0            # fraction of training labels the loss may see
    # optimisation
    epochs: int = 200
    batch_size: int = 512                  # global batch (split over GPUs under torchrun)
    optimizer: str = "sgd"                 # "sgd" (momentum) or "adamw"
    lr: float | None = None                # per 256 images; None = 0.06 (sgd) / 1e-3 (adamw)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 10.0
    min_lr_ratio: float = 0.0              # eta_min / eta
    grad_clip: float | None = None         # max global grad norm
    # speed
    device: str | None = None              # None = CUDA in the full profile if available, else CPU
    bf16: bool | None = None               # None = on for CUDA
    channels_last: bool | None = None      # None = on for CUDA
    compile: bool = False
    sync_bn: bool = True                   # SyncBatchNorm under torchrun on GPUs (global BN statistics)
    # evaluation
    eval_every: int = 0                    # kNN every k epochs (0: only at the end)
    knn_k: int = 200
    knn_t: float = 0.1
    linear_probe: bool = True
    probe_method: str = "lbfgs"            # "lbfgs" (full batch) or "adam"
    probe_steps: int = 200
    metrics: bool = True
    metrics_points: int = 2048             # held-out images for the geometry metrics
    eval_batch_size: int = 1024
    # bookkeeping
    seed: int = 0
    out_dir: str | None = None             # checkpoint.pt and results.json go here
    checkpoint_every: int = 1
    resume: bool = False                   # continue from <out_dir>/checkpoint.pt if present
    stop_after_epochs: int | None = None   # end this call early (schedule still spans `epochs`)
    progress: bool | None = None           # tqdm bar; None = only on a terminal
    quiet: bool = False                    # no per-epoch lines
    profile: str | None = None             # recorded only (set by the CLI)


@dataclass
class TrainResult:
    model: nn.Module             # the trained ContrastiveModel (unwrapped, on its device)
    history: list[dict]          # one dict per epoch
    results: dict                # what results.json holds


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; training stopped and the last good checkpoint was kept."""


# ---------------------------------------------------------------------------------- presets
# Profile presets sit between TrainConfig defaults and the user's config file / flags.
PROFILE_PRESETS: dict[str, dict] = {
    "quick": dict(arch="small_cnn", width=16, proj_dim=64, proj_hidden_dim=128, subset=2048,
                  test_subset=1000, epochs=1, batch_size=256, warmup_epochs=0.0,
                  probe_steps=100, eval_batch_size=512, metrics_points=256),
    "full": dict(),
}


# ---------------------------------------------------------------------------------- helpers
def _validate(cfg: TrainConfig) -> None:
    checks = [
        (cfg.epochs >= 1, f"epochs must be >= 1, got {cfg.epochs}"),
        (cfg.batch_size >= 2, f"batch_size must be >= 2, got {cfg.batch_size}"),
        (0.0 <= cfg.label_fraction <= 1.0, f"label_fraction must be in [0, 1], got {cfg.label_fraction}"),
        (cfg.optimizer in ("sgd", "adamw"), f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}"),
        (cfg.lr is None or cfg.lr > 0, f"lr must be > 0, got {cfg.lr}"),
        (cfg.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {cfg.warmup_epochs}"),
        (0.0 <= cfg.min_lr_ratio <= 1.0, f"min_lr_ratio must be in [0, 1], got {cfg.min_lr_ratio}"),
        (cfg.grad_clip is None or cfg.grad_clip > 0, f"grad_clip must be > 0, got {cfg.grad_clip}"),
        (cfg.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {cfg.checkpoint_every}"),
        (cfg.eval_every >= 0, f"eval_every must be >= 0, got {cfg.eval_every}"),
        (cfg.image_size is None or cfg.image_size >= 1, f"image_size must be >= 1, got {cfg.image_size}"),
        (isinstance(cfg.augment_kwargs, dict),
         f"augment_kwargs must be a dict of SimCLRAugment arguments, got {cfg.augment_kwargs!r}"),
        ("size" not in cfg.augment_kwargs, "set the view size with image_size, not augment_kwargs['size']"),
        (cfg.stop_after_epochs is None or cfg.stop_after_epochs >= 1,
         f"stop_after_epochs must be >= 1, got {cfg.stop_after_epochs}"),
        (not cfg.resume or cfg.out_dir, "resume=True needs out_dir (where checkpoint.pt lives)"),
        (isinstance(cfg.loss, str) or callable(cfg.loss), f"loss must be a name or a callable, got {cfg.loss!r}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int,
          min_lr_ratio: float = 0.0) -> float:
    """Linear warm-up over ``warmup_steps`` then cosine decay to ``min_lr_ratio * base_lr``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    min_lr = min_lr_ratio * base_lr
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def mask_labels(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Copy of ``labels`` where a seeded random ``1 - fraction`` of the entries are -1."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    labels = labels.clone()
    n_hidden = int(round((1.0 - fraction) * labels.numel()))
    hidden = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))[:n_hidden]
    labels[hidden.to(labels.device)] = -1
    return labels


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD+momentum or AdamW; no weight decay on biases and BatchNorm parameters (1-D tensors),
    the usual choice for SimCLR-style training."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=0.0, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=0.0)


def _build_loss(cfg: TrainConfig, num_classes: int) -> Callable:
    if callable(cfg.loss):
        return cfg.loss
    kwargs = dict(cfg.loss_kwargs)
    if cfg.loss == "cloa" and "anchors" not in kwargs:
        kwargs.setdefault("num_classes", num_classes)
        kwargs.setdefault("seed", cfg.seed)
    return get_loss(cfg.loss, **kwargs)


def make_augment(cfg: TrainConfig, image_size: int):
    """The SimCLR augmentation of a run: the preset of ``cfg.augment`` (a data set name), else of
    the data set itself (an ``imagefolder:`` data set gets ImageNet statistics and the recipe for
    its size), with views of side ``image_size`` and ``cfg.augment_kwargs`` replacing any
    :class:`~cl_lib.augment.SimCLRAugment` argument (lists are fine: JSON has no tuples)."""
    import inspect

    from cl_lib.augment import DATASET_STATS, SimCLRAugment, simclr_preset

    allowed = set(inspect.signature(SimCLRAugment).parameters) - {"size"}
    unknown = set(cfg.augment_kwargs) - allowed
    if unknown:
        raise ValueError(f"augment_kwargs has unknown SimCLRAugment arguments {sorted(unknown)}; "
                         f"choose from {sorted(allowed)} (the view size is image_size)")
    overrides = dict(cfg.augment_kwargs)
    name = cfg.augment or cfg.dataset
    if not name.lower().startswith("imagefolder:"):
        return simclr_preset(name, size=image_size, **overrides)
    mean, std = DATASET_STATS["imagenet"]
    kw = dict(size=image_size, mean=mean, std=std)
    if image_size >= 64:  # else the 32x32 recipe (colour strength 0.5, no blur)
        kw.update(jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)
    return SimCLRAugment(**{**kw, **overrides})


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def config_dict(cfg: TrainConfig) -> dict:
    """The config as a JSON-able dict (a callable loss is recorded by its name)."""
    d = dataclasses.asdict(cfg)
    if callable(cfg.loss):
        d["loss"] = getattr(cfg.loss, "__name__", repr(cfg.loss))
    return d


def _gather_labels(labels: torch.Tensor | None) -> torch.Tensor | None:
    """Under torchrun: every rank's labels, in rank order (they need no gradient)."""
    if labels is None or not distributed.is_distributed():
        return labels
    parts = [torch.empty_like(labels) for _ in range(distributed.world_size())]
    torch.distributed.all_gather(parts, labels.contiguous())
    return torch.cat(parts)


def train_step(model: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer,
               views: list[torch.Tensor], labels: torch.Tensor | None, bf16: bool = False,
               channels_last: bool = False, grad_clip: float | None = None) -> torch.Tensor:
    """One optimisation step on a batch of two views; returns the (detached) loss.

    Both views go through the network in one forward pass (so BatchNorm sees all $2B$ images);
    the loss itself runs in float32 outside autocast.
    """
    x = torch.cat(views)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        z = model(x)
    z1, z2 = z.float().chunk(2)
    # under torchrun: the global batch from all GPUs, differentiably (identity on one process)
    z1, z2 = distributed.gather_with_grad(z1), distributed.gather_with_grad(z2)
    labels = _gather_labels(labels.to(z.device) if labels is not None else None)
    if not bool(torch.isfinite(z1).all() & torch.isfinite(z2).all()):
        # a diverged network (e.g. NaN weights after a step with Inf gradients): report a NaN
        # loss so train()'s guard stops with NonFiniteLossError, instead of the loss's ValueError
        # on non-finite input. Checked on the gathered batch, so every rank stops alike.
        return torch.tensor(float("nan"))
    loss = loss_fn(z1, z2, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def _evaluate(model, cfg, augment, train_x, train_y, test_x, test_y, num_classes, device,
              channels_last, full: bool) -> dict:
    """kNN and (``cfg.metrics``) the held-out geometry metrics at every evaluation; the linear
    probe only at the end of training (``full``)."""
    kw = dict(batch_size=cfg.eval_batch_size, device=device, preprocess=augment.eval_transform,
              channels_last=channels_last)
    h_train = extract_features(model.backbone, train_x, **kw)
    h_test = extract_features(model.backbone, test_x, **kw)
    out = {"knn_acc": knn_accuracy(h_train, train_y, h_test, test_y, k=cfg.knn_k, t=cfg.knn_t,
                                   num_classes=num_classes)}
    if full and cfg.linear_probe:
        probe = linear_probe(h_train, train_y, h_test, test_y, num_classes=num_classes,
                             method=cfg.probe_method, steps=cfg.probe_steps, seed=cfg.seed)
        out["linear_probe_acc"], out["linear_probe_train_acc"] = probe["acc"], probe["train_acc"]
    if cfg.metrics:  # cheap: 2 x metrics_points forward passes and O(n^2) metrics on n points
        # splits are stored sorted by class: a class-balanced subset, not the first n images
        idx = balanced_subset(test_y.cpu(), min(cfg.metrics_points, test_x.shape[0]), seed=cfg.seed)
        was_training = model.training
        model.eval()
        gen = torch.Generator().manual_seed(cfg.seed + 1)  # the same held-out views every run
        views = [augment(test_x[idx.to(test_x.device)].to(device), gen) for _ in range(2)]
        z1, z2 = (extract_features(model, v, batch_size=cfg.eval_batch_size, device=device,
                                   preprocess=lambda x: x, channels_last=channels_last) for v in views)
        model.train(was_training)
        out["metrics"] = embedding_metrics(z1, z2, features=h_test[idx.to(h_test.device)])
    return out


# ------------------------------------------------------------------------------------ train
def train(config: TrainConfig) -> TrainResult:
    """Train a contrastive model as ``config`` says; see the module docstring.

    Returns a :class:`TrainResult` (model, per-epoch history, results dict). With ``out_dir``
    set, also writes ``checkpoint.pt`` (every ``checkpoint_every`` epochs and at the end) and
    ``results.json``. Raises :class:`NonFiniteLossError` on a NaN/Inf loss.
    """
    from cl_lib.data import gpu_loader, load_dataset
    cfg = config
    _validate(cfg)
    wall_start = time.time()
    started_utc = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    is_dist = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if is_dist:
        device = distributed.setup()
    elif cfg.device:
        device = torch.device(cfg.device)
    else:  # as cl_lib.default_device(), but for this run's profile (the CLI's --profile)
        full = (cfg.profile or get_profile()) == "full"
        device = torch.device("cuda" if full and torch.cuda.is_available() else "cpu")
    world, rank = distributed.world_size(), distributed.rank()
    main_proc = rank == 0
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of processes {world}")
    use_bf16 = device.type == "cuda" if cfg.bf16 is None else cfg.bf16
    channels_last = device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
    seed_everything(cfg.seed + rank)  # rank-dependent augmentations; DDP syncs the initial weights
    say = (lambda *a: print(*a, flush=True)) if (main_proc and not cfg.quiet) else (lambda *a: None)

    # ---- data: uint8 tensors, resident on the device
    data_kw = dict(root=cfg.data_root, cache_dir=cfg.cache_dir, seed=cfg.seed)
    train_x, train_y, classes = load_dataset(cfg.dataset, "train", **data_kw)
    test_x, test_y, _ = load_dataset(cfg.dataset, "test", **data_kw)
    # subsets are upper bounds: a data set smaller than the preset's subset is used whole
    if cfg.subset and cfg.subset < train_y.numel():
        keep = balanced_subset(train_y, cfg.subset, seed=cfg.seed)
        train_x, train_y = train_x[keep], train_y[keep]
    if cfg.test_subset and cfg.test_subset < test_y.numel():
        keep = balanced_subset(test_y, cfg.test_subset, seed=cfg.seed)
        test_x, test_y = test_x[keep], test_y[keep]
    num_classes, image_size = len(classes), cfg.image_size or int(train_x.shape[-1])
    train_x, train_y = train_x.to(device), train_y.to(device)
    loss_labels = mask_labels(train_y, cfg.label_fraction, seed=cfg.seed)
    n_per_rank = train_x.shape[0] // world
    local_batch = cfg.batch_size // world
    steps_per_epoch = n_per_rank // local_batch
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {train_x.shape[0]} training images")
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
    base_lr = (cfg.lr or (0.06 if cfg.optimizer == "sgd" else 1e-3)) * cfg.batch_size / 256

    # ---- model, loss, optimiser
    augment = make_augment(cfg, image_size)
    model = build_model(cfg.arch, proj_dim=cfg.proj_dim, proj_hidden_dim=cfg.proj_hidden_dim,
                        proj_layers=cfg.proj_layers, image_size=image_size,
                        in_channels=int(train_x.shape[1]), width=cfg.width).to(device)
    if is_dist and cfg.sync_bn and device.type == "cuda":  # SyncBatchNorm is GPU-only
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = _build_loss(cfg, num_classes)
    optimizer = build_optimizer(model, cfg)

    # ---- resume
    out_dir = Path(cfg.out_dir) if cfg.out_dir else None
    ckpt_path = out_dir / "checkpoint.pt" if out_dir else None
    if out_dir and main_proc:
        out_dir.mkdir(parents=True, exist_ok=True)
    start_epoch, history = 0, []
    if cfg.resume and ckpt_path.exists():
        # CPU: torch/cuda.set_rng_state need CPU ByteTensors (map_location=cuda breaks resume);
        # load_state_dict copies the weights and optimiser state to the parameters' device
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        changed = [k for k in _RESUME_MUST_MATCH if state["config"].get(k) != config_dict(cfg)[k]]
        if changed:
            warnings.warn(f"resuming with a different {', '.join(changed)} than the checkpoint was "
                          f"trained with: the run will not be the same as an uninterrupted one")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = state["epoch"], state["history"]
        _set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
        say(f"resumed from {ckpt_path.name} after epoch {start_epoch}")
    elif cfg.resume:
        say(f"no checkpoint in {out_dir.name}/ yet: starting from scratch")
    last_saved = start_epoch if start_epoch else None  # epoch of the last good checkpoint

    def save_checkpoint(epoch: int) -> None:
        rng = [_rng_state()]
        if is_dist:  # every rank's RNG, so augmentations resume exactly on each GPU
            rng = [None] * world
            torch.distributed.all_gather_object(rng, _rng_state())
        if main_proc:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                     "step": epoch * steps_per_epoch, "history": history, "rng": rng,
                     "config": config_dict(cfg)}
            write_atomic(ckpt_path, lambda p: torch.save(state, p))

    step_model = model
    if is_dist:
        step_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        step_model = torch.compile(step_model)
    show_bar = (sys.stderr.isatty() and not cfg.quiet) if cfg.progress is None else cfg.progress
    stop_epoch = min(cfg.epochs, start_epoch + cfg.stop_after_epochs) if cfg.stop_after_epochs else cfg.epochs
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    # ---- the loop
    for epoch in range(start_epoch, stop_epoch):
        model.train()
        if is_dist:  # a global shuffle (seed, epoch), then this rank's equal share of it
            perm = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
            mine = perm[rank::world][:n_per_rank].to(device)
            x_ep, y_ep, shuffle = train_x[mine], loss_labels[mine], False
        else:
            x_ep, y_ep, shuffle = train_x, loss_labels, True
        loader = gpu_loader(x_ep, y_ep, batch_size=local_batch, augment=augment, n_views=2,
                            shuffle=shuffle, drop_last=True, seed=cfg.seed + 7919 * rank,
                            device=device, epoch=epoch)  # batches depend only on (seed, epoch, batch)
        if show_bar and main_proc:
            from tqdm.auto import tqdm
            loader = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
        t0, loss_sum, n_steps, lr = time.perf_counter(), 0.0, 0, base_lr
        for i, (views, labels) in enumerate(loader):
            step = epoch * steps_per_epoch + i
            lr = lr_at(step, total_steps, base_lr, warmup_steps, cfg.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = float(train_step(step_model, loss_fn, optimizer, views, labels, use_bf16,
                                    channels_last, cfg.grad_clip))
            if not math.isfinite(loss):
                last = (f"the last good checkpoint (after epoch {last_saved}) is {ckpt_path.name} in "
                        f"out_dir" if last_saved is not None else "no checkpoint was written")
                raise NonFiniteLossError(
                    f"loss became {loss} at epoch {epoch + 1}, step {i + 1}/{steps_per_epoch} (lr={lr:.3g}); "
                    f"training stopped and {last}. Try a lower lr, grad_clip, or bf16=False.")
            loss_sum, n_steps = loss_sum + loss, n_steps + 1
            if show_bar and main_proc:
                loader.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "loss": loss_sum / max(1, n_steps), "lr": lr,
                  "images_per_s": n_steps * cfg.batch_size / seconds, "epoch_time_s": seconds}
        if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and epoch + 1 < cfg.epochs and main_proc:
            # kNN accuracy and the geometry metrics (record["metrics"]) along training
            record.update(_evaluate(model, cfg, augment, train_x, train_y, test_x, test_y,
                                    num_classes, device, channels_last, full=False))
        history.append(record)
        say(f"epoch {epoch + 1}/{cfg.epochs}  loss {record['loss']:.4f}  lr {lr:.4g}  "
            f"{record['images_per_s']:.0f} img/s" + (f"  kNN {record['knn_acc']:.3f}" if "knn_acc" in record else ""))
        if ckpt_path and ((epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == stop_epoch):
            save_checkpoint(epoch + 1)
            last_saved = epoch + 1
        distributed.barrier()

    # ---- final evaluation and the results record
    finished = bool(history) and history[-1]["epoch"] == cfg.epochs
    final = {}
    if main_proc and finished:
        final = _evaluate(model, cfg, augment, train_x, train_y, test_x, test_y, num_classes,
                          device, channels_last, full=True)
    commit, dirty = library_commit()
    speeds = [h["images_per_s"] for h in history]
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "config": config_dict(cfg),
        "profile": cfg.profile or get_profile(),
        "dataset": {"name": cfg.dataset, "train_size": int(train_x.shape[0]),
                    "test_size": int(test_x.shape[0]), "num_classes": num_classes,
                    "image_shape": list(train_x.shape[1:])},
        "model": {"arch": cfg.arch, "num_params": sum(p.numel() for p in model.parameters()),
                  "feature_dim": model.feature_dim, "proj_dim": cfg.proj_dim},
        "hardware": hardware_info(device),
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "library_commit": commit,
        "library_dirty": dirty,
        "date_utc": started_utc,
        "wall_time_s": time.time() - wall_start,
        "finished": finished,
        "epochs_completed": history[-1]["epoch"] if history else 0,
        "history": history,
        "final": {k: v for k, v in final.items() if k != "metrics"},
        "metrics": final.get("metrics", {}),
        "images_per_s": float(np.median(speeds[1:] if len(speeds) > 1 else speeds)) if speeds else None,
        "peak_gpu_memory_gb": (round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
                               if device.type == "cuda" else None),
        "speed": {"bf16": use_bf16, "channels_last": channels_last, "compile": cfg.compile},
        "peak_lr": base_lr,  # lr actually used at the end of warm-up: lr (or its default) * batch_size / 256
        "steps_per_epoch": steps_per_epoch,
    }
    if final:
        say("final  " + "  ".join(f"{k} {v:.4f}" for k, v in results["final"].items()))
    if out_dir and main_proc:
        write_atomic(out_dir / "results.json",
                      lambda p: p.write_text(json.dumps(results, indent=2, default=str) + "\n"))
    if is_dist:
        distributed.cleanup()
    return TrainResult(model=model, history=history, results=results)


# -------------------------------------------------------------------------------------- CLI
_CLI_OWN = {"profile", "out_dir", "resume", "quiet"}  # flags with their own definitions below


def _flag_type(tp):
    """The argparse type of a TrainConfig field annotation (``int | None`` -> int that also
    accepts "none", ``bool`` -> true/false, ``dict`` -> JSON)."""
    optional = False
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = str if any(a is str for a in args) else args[0]
    convert = json.loads if (tp is dict or typing.get_origin(tp) is dict) else _parse_bool if tp is bool else tp
    if not optional:
        return convert

    def convert_or_none(s: str):
        return None if s.lower() in ("none", "null") else convert(s)
    convert_or_none.__name__ = getattr(convert, "__name__", "value")  # for argparse's error messages
    return convert_or_none


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cl_lib.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="JSON file of TrainConfig fields (flags override it)")
    p.add_argument("--profile", choices=list(PROFILE_PRESETS), default=get_profile(),
                   help="size preset (default: $CL_BOOK_PROFILE or quick)")
    p.add_argument("--out", dest="out_dir", default=argparse.SUPPRESS,
                   help="output directory for checkpoint.pt and results.json")
    p.add_argument("--resume", action="store_true", default=argparse.SUPPRESS,
                   help="continue from <out>/checkpoint.pt if it exists")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no per-epoch lines, no progress bar")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in _CLI_OWN:
            continue
        default = f.default if f.default is not dataclasses.MISSING else "{}"
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_flag_type(hints[f.name]),
                       default=argparse.SUPPRESS, help=f"TrainConfig.{f.name} (default: {default})")
    return p


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """TrainConfig defaults < profile preset < --config file < explicit flags."""
    args = vars(build_parser().parse_args(argv))
    values = dict(PROFILE_PRESETS[args["profile"]], profile=args.pop("profile"))
    config_file = args.pop("config", None)
    if config_file:
        loaded = json.loads(Path(config_file).read_text())
        unknown = set(loaded) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise ValueError(f"unknown TrainConfig fields in {config_file}: {sorted(unknown)}")
        values.update(loaded)
    values.update(args)  # only the flags actually given (the others are argparse.SUPPRESS-ed)
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> TrainResult:
    cfg = config_from_args(argv)
    return train(cfg)


if __name__ == "__main__":
    main()
