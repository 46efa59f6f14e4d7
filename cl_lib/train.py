r"""The trainer: one config dataclass, one ``train(config)`` function, one CLI.

    cl-train --dataset cifar10 --loss dhel --epochs 200 --batch-size 512 \
        --arch resnet18 --out runs/dhel-cifar10    # add --resume to continue a run
    cl-train --profile quick --out runs/quick      # CPU smoke run, ~30 s of CPU time
    cl-train --profile quick --epochs 0 --out runs/init   # the untrained network
    torchrun --nproc_per_node=4 -m cl_lib.train ...  # multi-GPU (cl_lib.distributed)

What one epoch does (SimCLR, Chen et al. 2020, Alg. 1): for each batch of $B$ images
draw two augmented views, embed both in one forward pass, $z = g(f(x))$, and minimise
any ``cl_lib`` loss $\mathcal{L}(z^{(1)}, z^{(2)}, y)$. Labels $y$ go to the losses that
use them (CLOA, SupCon, NSCL); with ``label_fraction < 1`` a seeded random
$1-$``label_fraction`` of the training images get the label $-1$ ("unlabelled").

The learning rate follows a linear warm-up then a cosine decay, updated every step $s$
(Loshchilov & Hutter, 2017; Goyal et al., 2017 for the warm-up and the linear scaling
rule):

$$\eta_s = \begin{cases} \eta \, \dfrac{s+1}{S_w} & s < S_w \\[4pt]
  \eta_\text{min} + \tfrac12 (\eta - \eta_\text{min})
  \Big(1 + \cos \pi \dfrac{s - S_w}{S - S_w}\Big) & s \ge S_w \end{cases},
  \qquad \eta = \texttt{lr} \cdot \frac{B}{256}.$$

Optimisers: SGD with momentum (default), AdamW, or LARS (:class:`LARS`, You et al.
2017, as in the simclr-pytorch code that Koromilas et al. 2024 trained DHEL/KCL with).

The step never waits for the GPU: the running loss is summed on the device and read
back only every ``check_every`` steps (and at the end of an epoch), where a NaN/Inf loss
stops training with :class:`NonFiniteLossError`, leaving the last good checkpoint in
place. Engineering, all optional and recorded in the results: bf16 autocast and
channels_last on CUDA,
``torch.compile``, gradient clipping, an atomic checkpoint every k epochs and exact
resume (model, optimiser, step, RNG states -- the data order is a function of (seed,
epoch)). ``train(config, callbacks=[...])`` calls each callback after every epoch (e.g.
to record the geometry along training). After training: kNN and linear-probe accuracy of
the backbone features and geometry metrics of held-out embeddings
(:func:`cl_lib.evaluate.heldout_metrics`), written with hardware, versions and timings
to ``<out>/results.json`` (schema in ``book/results/README.md``). ``epochs=0`` evaluates
the untrained network the same way.
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
import sys
import time
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from cl_lib import checks, distributed
from cl_lib.data import DATASETS, balanced_subset, gpu_loader, load_dataset
from cl_lib.evaluate import extract_features, heldout_metrics
from cl_lib.io import hardware_info, library_commit, save_atomic, write_json
from cl_lib.losses import LOSS_NAMES, get_loss, needs_labels
from cl_lib.models import ARCHS, build_model
from cl_lib.profile import get_profile, mix_seed, seed_everything

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "NonFiniteLossError",
    "ConfigError",
    "LARS",
    "PROFILE_PRESETS",
    "train",
    "recalibrate_batchnorm",
    "train_step",
    "lr_at",
    "mask_labels",
    "build_optimizer",
    "make_augment",
    "config_dict",
    "validate_config",
    "config_from_args",
    "build_parser",
    "main",
]

RESULTS_SCHEMA_VERSION = 1
# config fields that must not change between a run and its --resume (else a warning)
_RESUME_MUST_MATCH = (
    "dataset",
    "subset",
    "augment",
    "augment_kwargs",
    "image_size",
    "arch",
    "width",
    "proj_dim",
    "proj_hidden_dim",
    "proj_layers",
    "loss",
    "loss_kwargs",
    "label_fraction",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "min_lr_ratio",
    "seed",
)
# lr per 256 images when TrainConfig.lr is None; LARS: 4.0 at batch 1024 (DHEL/KCL)
DEFAULT_LR = {"sgd": 0.06, "adamw": 1e-3, "lars": 1.0}


@dataclass
class TrainConfig:
    """Everything a run needs. Defaults are the full-profile CIFAR-10 setting; the
    ``quick`` preset (:data:`PROFILE_PRESETS`) shrinks it to a CPU smoke run."""

    # data
    dataset: str = "cifar10"  # cl_lib.data.DATASETS name or "imagefolder:<path>"
    data_root: str | None = None  # default: $CL_LIB_DATA
    cache_dir: str | None = None
    subset: int | None = None  # at most this many training images (balanced, seeded)
    test_subset: int | None = None  # ... and test images for evaluation
    augment: str | None = None  # SimCLRAugment preset; None = from the image size
    # overrides of the preset's SimCLRAugment arguments, e.g. the weak recipe of
    # Li & Pimentel-Alarcón 2024: {"jitter": [0.2, 0.2, 0.2, 0.1], "scale": [0.8, 1.0]}
    augment_kwargs: dict = field(default_factory=dict)
    image_size: int | None = None  # side of the views the network sees (crops and test
    #   images are resized to it, bilinear); None = the stored images' own size
    # model
    arch: str = "resnet18"  # see cl_lib.models.ARCHS
    width: int = 32  # small_cnn only
    proj_dim: int = 128
    proj_hidden_dim: int | None = None  # None = backbone feature width
    proj_layers: int = 2
    # loss
    loss: str | Callable = "infonce"  # a cl_lib.losses name, or loss(z1, z2, labels)
    loss_kwargs: dict = field(default_factory=dict)  # e.g. {"tau": 0.2}
    label_fraction: float = 1.0  # fraction of training labels the loss may see
    # optimisation
    epochs: int = 200
    batch_size: int = 512  # global batch (split over GPUs under torchrun)
    optimizer: str = "sgd"  # "sgd" (momentum), "adamw" or "lars" (see LARS)
    lr: float | None = None  # per 256 images; None = DEFAULT_LR[optimizer]
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 10.0
    min_lr_ratio: float = 0.0  # eta_min / eta
    grad_clip: float | None = None  # max global grad norm
    # speed
    device: str | None = None  # None = CUDA in the full profile if available, else CPU
    bf16: bool | None = None  # None = on for CUDA
    channels_last: bool | None = None  # None = on for CUDA
    compile: bool = False
    check_every: int = 20  # read the running loss back (finite?) every k steps
    sync_bn: bool = True  # SyncBatchNorm under torchrun on GPUs (global stats)
    # evaluation
    eval_every: int = 0  # kNN every k epochs (0: only at the end)
    # epochs=0 only: re-estimate BatchNorm's statistics on the clean training images
    # before evaluating (weights unchanged). Without it an untrained network is
    # evaluated with its initial statistics (mean 0, variance 1), a weaker reference.
    bn_recalibrate: bool = False
    knn_k: int = 200
    knn_t: float = 0.1
    linear_probe: bool = True
    probe_method: str = "lbfgs"  # "lbfgs" (full batch) or "adam"
    probe_steps: int = 200
    metrics: bool = True
    metrics_points: int = 2048  # held-out images for the geometry metrics
    eval_batch_size: int = 1024
    # bookkeeping
    seed: int = 0
    out_dir: str | None = None  # checkpoint.pt and results.json go here
    checkpoint_every: int = 1
    resume: bool = False  # continue from <out_dir>/checkpoint.pt if present
    stop_after_epochs: int | None = None  # end this call early (schedule: `epochs`)
    progress: bool | None = None  # tqdm bar; None = only on a terminal
    quiet: bool = False  # no per-epoch lines
    profile: str | None = None  # recorded only (set by the CLI)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: nn.Module  # the trained ContrastiveModel (unwrapped, on its device)
    history: list[dict]  # one dict per epoch
    results: dict  # what results.json holds
    # the run's data, augmentation and optimiser
    state: "TrainState | None" = field(default=None, repr=False)


class ConfigError(ValueError):
    """A config the trainer rejects before it loads any data (CLI exit status 2)."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; training stopped and the last good checkpoint was
    kept.

    Attributes: ``epoch`` (1-based), ``step`` (1-based step of that epoch at which the
    running loss was found non-finite: at most ``check_every`` steps after the bad one)
    and ``checkpoint_epoch`` (epoch of the last good checkpoint, or None).
    """

    def __init__(
        self,
        message: str,
        epoch: int = 0,
        step: int = 0,
        checkpoint_epoch: int | None = None,
    ):
        super().__init__(message)
        self.epoch, self.step, self.checkpoint_epoch = epoch, step, checkpoint_epoch


# ----------------------------------------------------------------------------------
# presets Profile presets sit between TrainConfig defaults and the user's config file /
# flags.
PROFILE_PRESETS: dict[str, dict] = {
    "quick": dict(
        arch="small_cnn",
        width=16,
        proj_dim=64,
        proj_hidden_dim=128,
        subset=2048,
        test_subset=1000,
        epochs=1,
        batch_size=256,
        warmup_epochs=0.0,
        probe_steps=100,
        eval_batch_size=512,
        metrics_points=256,
    ),
    "full": dict(),
}


# ----------------------------------------------------------------------------------
# helpers
def validate_config(cfg: TrainConfig) -> None:
    """Reject a bad config before any data is loaded.

    Args:
        cfg: the run's config.

    Raises:
        ConfigError: (a ``ValueError``) with one line saying which field is wrong and
            why.

    Returns:
        None.
    """

    def positive_or_none(v):
        return v is None or v >= 1

    checks = [
        (cfg.epochs >= 0, f"epochs must be >= 0, got {cfg.epochs}"),
        (
            not cfg.bn_recalibrate or cfg.epochs == 0,
            "bn_recalibrate is for the untrained network (epochs=0): a trained "
            f"network's BatchNorm statistics come from its training, got epochs "
            f"{cfg.epochs}",
        ),
        (cfg.batch_size >= 2, f"batch_size must be >= 2, got {cfg.batch_size}"),
        (cfg.width >= 1, f"width must be >= 1, got {cfg.width}"),
        (cfg.proj_dim >= 1, f"proj_dim must be >= 1, got {cfg.proj_dim}"),
        (
            positive_or_none(cfg.subset),
            f"subset must be >= 1 or none, got {cfg.subset}",
        ),
        (
            positive_or_none(cfg.test_subset),
            f"test_subset must be >= 1 or none, got {cfg.test_subset}",
        ),
        (
            cfg.subset is None or cfg.batch_size <= cfg.subset,
            f"batch_size {cfg.batch_size} exceeds the training subset of "
            f"{cfg.subset} images",
        ),
        (
            0.0 <= cfg.label_fraction <= 1.0,
            f"label_fraction must be in [0, 1], got {cfg.label_fraction}",
        ),
        (
            cfg.optimizer in DEFAULT_LR,
            f"optimizer must be one of {sorted(DEFAULT_LR)}, got {cfg.optimizer!r}",
        ),
        (
            cfg.lr is None or (math.isfinite(cfg.lr) and cfg.lr > 0),
            f"lr must be a finite number > 0, got {cfg.lr}",
        ),
        (cfg.weight_decay >= 0, f"weight_decay must be >= 0, got {cfg.weight_decay}"),
        (
            cfg.warmup_epochs >= 0,
            f"warmup_epochs must be >= 0, got {cfg.warmup_epochs}",
        ),
        (
            0.0 <= cfg.min_lr_ratio <= 1.0,
            f"min_lr_ratio must be in [0, 1], got {cfg.min_lr_ratio}",
        ),
        (
            cfg.grad_clip is None or cfg.grad_clip > 0,
            f"grad_clip must be > 0, got {cfg.grad_clip}",
        ),
        (cfg.check_every >= 1, f"check_every must be >= 1, got {cfg.check_every}"),
        (
            cfg.checkpoint_every >= 1,
            f"checkpoint_every must be >= 1, got {cfg.checkpoint_every}",
        ),
        (cfg.eval_every >= 0, f"eval_every must be >= 0, got {cfg.eval_every}"),
        (
            cfg.image_size is None or cfg.image_size >= 1,
            f"image_size must be >= 1, got {cfg.image_size}",
        ),
        (
            isinstance(cfg.augment_kwargs, dict),
            f"augment_kwargs must be a JSON object of SimCLRAugment arguments, "
            f"got {cfg.augment_kwargs!r}",
        ),
        (
            "size" not in cfg.augment_kwargs,
            "set the view size with image_size, not augment_kwargs['size']",
        ),
        (
            cfg.stop_after_epochs is None or cfg.stop_after_epochs >= 1,
            f"stop_after_epochs must be >= 1, got {cfg.stop_after_epochs}",
        ),
        (
            not cfg.resume or cfg.out_dir,
            "resume=True needs out_dir (where checkpoint.pt lives)",
        ),
        (cfg.arch in ARCHS, f"unknown arch {cfg.arch!r}; choose one of {list(ARCHS)}"),
        (
            cfg.dataset.startswith("imagefolder:")
            or cfg.dataset.strip().lower() in DATASETS,
            f"unknown dataset {cfg.dataset!r}; choose one of {list(DATASETS)} "
            f"or 'imagefolder:<path>'",
        ),
        (
            isinstance(cfg.loss, str) or callable(cfg.loss),
            f"loss must be a name or a callable, got {cfg.loss!r}",
        ),
        (
            isinstance(cfg.loss_kwargs, dict),
            f"loss_kwargs must be a JSON object, got {cfg.loss_kwargs!r}",
        ),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    if callable(cfg.loss):
        return
    if cfg.loss not in LOSS_NAMES:
        raise ConfigError(
            f"unknown loss {cfg.loss!r}; choose one of {list(LOSS_NAMES)}"
        )
    if needs_labels(cfg.loss) and cfg.label_fraction == 0:
        raise ConfigError(f"loss {cfg.loss!r} needs labels, but label_fraction is 0")
    try:  # the loss checks its own keyword arguments (placeholder class count for CLOA)
        get_loss(cfg.loss, **_loss_kwargs(cfg, num_classes=2))
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"loss_kwargs {cfg.loss_kwargs} for loss {cfg.loss!r}: {err}"
        ) from None
    if cfg.augment_kwargs:  # unknown SimCLRAugment arguments
        try:
            make_augment(cfg, cfg.image_size or 32)
        except ValueError as err:
            raise ConfigError(str(err)) from None


def lr_at(
    step: int,
    total_steps: int,
    base_lr: float,
    warmup_steps: int,
    min_lr_ratio: float = 0.0,
) -> float:
    r"""Linear warm-up over ``warmup_steps``, then cosine decay to
    ``min_lr_ratio * base_lr``.

    Args:
        step: 0-based step; total_steps: S; base_lr: $\eta$; warmup_steps: $S_w$;
        min_lr_ratio: $\eta_\text{min} / \eta$.

    Returns:
        The learning rate of ``step``.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    min_lr = min_lr_ratio * base_lr
    return min_lr + 0.5 * (base_lr - min_lr) * (
        1.0 + math.cos(math.pi * min(1.0, progress))
    )


def mask_labels(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Copy of ``labels`` where a seeded random ``1 - fraction`` of the entries are -1.

    Args:
        labels: (N,) labels; fraction: share kept; seed: which ones.

    Returns:
        (N,) labels with -1 for the hidden ones (on the same device).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    labels = labels.clone()
    n_hidden = int(round((1.0 - fraction) * labels.numel()))
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randperm(labels.numel(), generator=gen)[:n_hidden]
    labels[hidden.to(labels.device)] = -1
    return labels


def make_augment(cfg: TrainConfig, image_size: int):
    """The SimCLR augmentation of a run: the preset of ``cfg.augment`` (a data set
    name), else of the data set itself (an ``imagefolder:`` data set gets ImageNet
    statistics and the recipe for its size), with views of side ``image_size`` and
    ``cfg.augment_kwargs`` replacing any :class:`~cl_lib.augment.SimCLRAugment` argument
    (lists are fine: JSON has no tuples).

    Args:
        cfg: ``augment``, ``dataset``, ``augment_kwargs`` are read; image_size: view
            side S.

    Returns:
        A :class:`~cl_lib.augment.SimCLRAugment`: (B, C, H, W) uint8 -> (B, C, S, S)
        float.
    """
    import inspect

    from cl_lib.augment import DATASET_STATS, SimCLRAugment, simclr_preset

    allowed = set(inspect.signature(SimCLRAugment).parameters) - {"size"}
    unknown = set(cfg.augment_kwargs) - allowed
    if unknown:
        raise ValueError(
            f"augment_kwargs has unknown SimCLRAugment arguments {sorted(unknown)}; "
            f"choose from {sorted(allowed)} (the view size is image_size)"
        )
    overrides = dict(cfg.augment_kwargs)
    name = cfg.augment or cfg.dataset
    if not name.lower().startswith("imagefolder:"):
        return simclr_preset(name, size=image_size, **overrides)
    mean, std = DATASET_STATS["imagenet"]
    kw = dict(size=image_size, mean=mean, std=std)
    if image_size >= 64:  # else the 32x32 recipe (colour strength 0.5, no blur)
        kw.update(jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)
    return SimCLRAugment(**{**kw, **overrides})


class LARS(torch.optim.SGD):
    r"""SGD with momentum on gradients rescaled per tensor by the LARS trust ratio (You,
    Gitman & Ginsburg 2017), as in the simclr-pytorch code (Atanov) that Koromilas et
    al. 2024 trained DHEL and KCL with. For each parameter tensor $w$ of a group with
    ``lars=True``:

    $$g \leftarrow g + \lambda w, \qquad
      g \leftarrow \eta_\text{trust} \frac{\lVert w \rVert}{\lVert g \rVert} \, g
      \quad (\text{if } \lVert w \rVert > 0 \text{ and } \lVert g \rVert > 0),$$

    then the plain SGD-with-momentum update with the scheduled learning rate. Groups
    with ``lars=False`` (biases and BatchNorm parameters in :func:`build_optimizer`) get
    neither weight decay nor adaptation, as in that code. The ratio is computed with
    ``torch.where`` on the device: no host synchronisation.

    Args:
        params: parameters or groups (a group may set ``lars`` and ``weight_decay``).
        lr: learning rate (the trainer overwrites it every step).
        momentum: SGD momentum (0.9 in simclr-pytorch).
        weight_decay: $\lambda$ of groups that do not set their own.
        trust_coefficient: $\eta_\text{trust}$ (0.001 in simclr-pytorch).
    """

    def __init__(
        self,
        params,
        lr: float = 0.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
    ):
        if not trust_coefficient > 0:
            raise ValueError(f"trust_coefficient must be > 0, got {trust_coefficient}")
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.trust_coefficient = trust_coefficient
        for group in self.param_groups:
            group.setdefault("lars", True)

    @torch.no_grad()
    def step(self, closure=None):
        decays = [group["weight_decay"] for group in self.param_groups]
        for group, decay in zip(self.param_groups, decays):
            for p in group["params"]:
                if p.grad is None or not group["lars"]:
                    continue
                g = p.grad.add_(p, alpha=decay) if decay else p.grad
                w_norm, g_norm = (
                    torch.linalg.vector_norm(p),
                    torch.linalg.vector_norm(g),
                )
                ratio = self.trust_coefficient * w_norm / g_norm
                g.mul_(
                    torch.where(
                        (w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio)
                    )
                )
            group["weight_decay"] = 0.0  # applied above; SGD must not add it again
        try:
            return super().step(closure)
        finally:
            for group, decay in zip(self.param_groups, decays):
                group["weight_decay"] = decay


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD+momentum, AdamW or :class:`LARS`; no weight decay (and for LARS no
    adaptation) on biases and BatchNorm parameters (1-D tensors), the usual choice for
    SimCLR-style training.

    Args:
        model: the network to optimise.
        cfg: ``optimizer``, ``momentum``, ``weight_decay`` are read.

    Returns:
        The optimiser, with learning rate 0 (the trainer sets it every step).
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=0.0, momentum=cfg.momentum)
    if cfg.optimizer == "lars":
        groups[1]["lars"] = False
        return LARS(groups, lr=0.0, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=0.0)


def _loss_kwargs(cfg: TrainConfig, num_classes: int) -> dict:
    kwargs = dict(cfg.loss_kwargs)
    if cfg.loss == "cloa" and "anchors" not in kwargs:
        kwargs.setdefault("num_classes", num_classes)
        kwargs.setdefault("seed", cfg.seed)
    return kwargs


def _build_loss(cfg: TrainConfig, num_classes: int) -> Callable:
    return (
        cfg.loss
        if callable(cfg.loss)
        else get_loss(cfg.loss, **_loss_kwargs(cfg, num_classes))
    )


def _rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def config_dict(cfg: TrainConfig) -> dict:
    """The config as a JSON-able dict (a callable loss is recorded by its name).

    Args:
        cfg: the config.

    Returns:
        A dict of its fields.
    """
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


def train_step(
    model: nn.Module,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    views: list[torch.Tensor],
    labels: torch.Tensor | None,
    bf16: bool = False,
    channels_last: bool = False,
    grad_clip: float | None = None,
) -> torch.Tensor:
    """One optimisation step on a batch of two views, without a host synchronisation.

    Both views go through the network in one forward pass (so BatchNorm sees all $2B$
    images); the loss itself runs in float32 outside autocast.

    Args:
        model: the (possibly DDP-wrapped or compiled) network, (2B, C, H, W) -> (2B, D).
        loss_fn: ``loss_fn(z1 (B, D), z2 (B, D), labels (B,) or None) -> scalar``.
        optimizer: steps once.
        views: two (B, C, H, W) float tensors on the model's device.
        labels: (B,) labels (-1 = unlabelled) or None.
        bf16, channels_last, grad_clip: speed and stability options of
            :class:`TrainConfig`.

    Returns:
        The detached scalar loss, on the device; NaN when the network's output was not
        finite (a diverged network), so that the trainer's periodic check stops the run.
    """
    x = torch.cat(views)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        z = model(x)
    z1, z2 = z.float().chunk(2)
    # under torchrun: the global batch from all GPUs, differentiably (identity on one
    # process)
    z1, z2 = distributed.gather_with_grad(z1), distributed.gather_with_grad(z2)
    labels = _gather_labels(labels.to(z.device) if labels is not None else None)
    # NaN embeddings would make the loss raise on its input check; instead they become
    # zeros here and the step's loss is reported as NaN, all on the device (no host
    # sync)
    bad = ~(torch.isfinite(z1).all() & torch.isfinite(z2).all())  # same on every rank
    z1, z2 = (torch.where(bad, torch.zeros_like(v), v) for v in (z1, z2))
    with checks.no_value_reads():  # shapes are checked; values only every K steps
        loss = loss_fn(z1, z2, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return torch.where(bad, torch.full_like(loss, float("nan")), loss.detach())


@dataclass
class TrainState:
    """Everything a run holds while it trains; what callbacks receive.

    Data: ``train_x`` (N, C, H, W) uint8 on the device, ``train_y`` (N,),
        ``loss_labels`` (N,)
    (masked, -1 = unlabelled), ``test_x`` (M, C, H, W) uint8 on the CPU, ``test_y``
    (M,). ``history``: one record per finished epoch; ``epoch``: epochs finished so far.
    """

    config: TrainConfig
    device: torch.device
    world: int = 1
    rank: int = 0
    bf16: bool = False
    channels_last: bool = False
    started_utc: str = ""
    wall_start: float = 0.0
    train_x: torch.Tensor | None = None
    train_y: torch.Tensor | None = None
    loss_labels: torch.Tensor | None = None
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    num_classes: int = 0
    image_size: int = 0
    steps_per_epoch: int = 0
    base_lr: float = 0.0
    augment: Callable | None = None
    model: nn.Module | None = None
    step_model: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    loss_fn: Callable | None = None
    history: list = field(default_factory=list)
    epoch: int = 0
    last_saved: int | None = None
    # (library commit, differs from it?) of the code this process imported
    commit: tuple = ("unknown", None)

    @property
    def main_process(self) -> bool:
        return self.rank == 0

    @property
    def checkpoint_path(self) -> Path | None:
        return (
            Path(self.config.out_dir) / "checkpoint.pt" if self.config.out_dir else None
        )

    def say(self, *args) -> None:
        if self.main_process and not self.config.quiet:
            print(*args, flush=True)

    def evaluate(self, full: bool = False) -> dict:
        """kNN accuracy and (``config.metrics``) the held-out geometry under
        ``"metrics"``; with ``full``, the linear probe too
        (:func:`cl_lib.evaluate.heldout_metrics`).
        """
        return _evaluate(self, full)


Callback = Callable[[int, nn.Module, TrainState], None]


@torch.no_grad()
def _heldout_projections(state: TrainState, idx: torch.Tensor, h_test: torch.Tensor):
    """Projections of the clean held-out images ``idx`` and of two augmented views."""
    cfg, model, device = state.config, state.model, state.device
    was_training = model.training
    model.eval()
    z = model.projector(h_test[idx.to(h_test.device)])
    # the same views every run
    gen = torch.Generator().manual_seed(mix_seed(cfg.seed, 1))
    images = state.test_x[idx.to(state.test_x.device)].to(device)
    views = tuple(
        extract_features(
            model,
            state.augment(images, gen),
            device=device,
            batch_size=cfg.eval_batch_size,
            preprocess=lambda x: x,
            channels_last=state.channels_last,
        )
        for _ in range(2)
    )
    model.train(was_training)
    return z, views


def _evaluate(state: TrainState, full: bool) -> dict:
    cfg, model = state.config, state.model
    kw = dict(
        batch_size=cfg.eval_batch_size,
        device=state.device,
        preprocess=state.augment.eval_transform,
        channels_last=state.channels_last,
    )
    h_train = extract_features(model.backbone, state.train_x, **kw)
    h_test = extract_features(model.backbone, state.test_x, **kw)
    geometry = {}
    if cfg.metrics:  # splits are stored sorted by class: a class-balanced subset
        n = min(cfg.metrics_points, state.test_x.shape[0])
        idx = balanced_subset(state.test_y.cpu(), n, seed=cfg.seed)
        z, views = _heldout_projections(state, idx, h_test)
        geometry = dict(z=z, views=views, features=h_test[idx.to(h_test.device)])
    probe = (
        dict(method=cfg.probe_method, steps=cfg.probe_steps, seed=cfg.seed)
        if full and cfg.linear_probe
        else None
    )
    out = heldout_metrics(
        **geometry,
        bank=h_train,
        bank_labels=state.train_y,
        query=h_test,
        labels=state.test_y,
        knn_k=cfg.knn_k,
        knn_t=cfg.knn_t,
        probe=probe,
        num_classes=state.num_classes,
    )
    accuracies = {
        k: out.pop(k)
        for k in ("knn_acc", "linear_probe_acc", "linear_probe_train_acc")
        if k in out
    }
    return {**accuracies, "metrics": out} if cfg.metrics else accuracies


# ------------------------------------------------------------------------------ the
# stages
def _under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _setup(cfg: TrainConfig) -> TrainState:
    """Device (joining torchrun's process group if WORLD_SIZE > 1), precision, seeds."""
    if _under_torchrun():
        device = distributed.setup()
    elif cfg.device:
        device = torch.device(cfg.device)
    # as cl_lib.default_device(), but for this run's profile (the CLI's --profile)
    else:
        full = (cfg.profile or get_profile()) == "full"
        device = torch.device("cuda" if full and torch.cuda.is_available() else "cpu")
    state = TrainState(
        config=cfg,
        device=device,
        world=distributed.world_size(),
        rank=distributed.rank(),
        bf16=device.type == "cuda" if cfg.bf16 is None else cfg.bf16,
        channels_last=(
            device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
        ),
        started_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        wall_start=time.time(),
    )
    if cfg.batch_size % state.world:
        raise ConfigError(
            f"batch_size {cfg.batch_size} must be divisible by the number of "
            f"processes {state.world}"
        )
    seed_everything(mix_seed(cfg.seed, state.rank) % 2**32)  # DDP syncs initial weights
    return state


def _load_data(state: TrainState) -> None:
    """uint8 splits (class-balanced subsets); the training split moves to the device."""
    cfg = state.config
    kw = dict(root=cfg.data_root, cache_dir=cfg.cache_dir, seed=cfg.seed)
    train_x, train_y, classes = load_dataset(cfg.dataset, "train", **kw)
    test_x, test_y, _ = load_dataset(cfg.dataset, "test", **kw)
    # subsets are upper bounds: a data set smaller than the preset's subset is used
    # whole
    if cfg.subset and cfg.subset < train_y.numel():
        keep = balanced_subset(train_y, cfg.subset, seed=cfg.seed)
        train_x, train_y = train_x[keep], train_y[keep]
    if cfg.test_subset and cfg.test_subset < test_y.numel():
        keep = balanced_subset(test_y, cfg.test_subset, seed=cfg.seed)
        test_x, test_y = test_x[keep], test_y[keep]
    state.steps_per_epoch = (
        train_x.shape[0] // state.world // (cfg.batch_size // state.world)
    )
    if state.steps_per_epoch < 1:
        raise ConfigError(
            f"batch_size {cfg.batch_size} exceeds the {train_x.shape[0]} "
            f"training images"
        )
    state.train_x, state.train_y = train_x.to(state.device), train_y.to(state.device)
    state.loss_labels = mask_labels(state.train_y, cfg.label_fraction, seed=cfg.seed)
    state.test_x, state.test_y = test_x, test_y
    state.num_classes = len(classes)
    state.image_size = cfg.image_size or int(train_x.shape[-1])
    lr = cfg.lr or DEFAULT_LR[cfg.optimizer]
    state.base_lr = lr * cfg.batch_size / 256  # the linear scaling rule


def _build(state: TrainState) -> None:
    """Augmentation, model (+ SyncBatchNorm, channels_last, DDP, compile), loss,
    optimiser."""
    cfg, device = state.config, state.device
    state.augment = make_augment(cfg, state.image_size)
    model = build_model(
        cfg.arch,
        proj_dim=cfg.proj_dim,
        proj_hidden_dim=cfg.proj_hidden_dim,
        proj_layers=cfg.proj_layers,
        image_size=state.image_size,
        in_channels=int(state.train_x.shape[1]),
        width=cfg.width,
    ).to(device)
    is_dist = distributed.is_distributed()
    if is_dist and cfg.sync_bn and device.type == "cuda":  # SyncBatchNorm is GPU-only
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if state.channels_last:
        model = model.to(memory_format=torch.channels_last)
    state.model, state.step_model = model, model
    state.loss_fn = _build_loss(cfg, state.num_classes)
    state.optimizer = build_optimizer(model, cfg)
    if is_dist:
        ids = [device.index] if device.type == "cuda" else None
        state.step_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:
        state.step_model = torch.compile(state.step_model)


def _resume(state: TrainState) -> None:
    """With ``resume``: weights, optimiser, history, RNG states from the checkpoint."""
    cfg, path = state.config, state.checkpoint_path
    if path is not None and state.main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
    if not cfg.resume:
        return
    if not path.exists():
        state.say(f"no checkpoint in {path.parent.name}/ yet: starting from scratch")
        return
    # CPU: torch/cuda.set_rng_state need CPU ByteTensors (map_location=cuda breaks
    # resume); load_state_dict copies the weights and optimiser state to the parameters'
    # device
    saved = torch.load(path, map_location="cpu", weights_only=False)
    changed = [
        k for k in _RESUME_MUST_MATCH if saved["config"].get(k) != config_dict(cfg)[k]
    ]
    if changed:
        warnings.warn(
            f"resuming with a different {', '.join(changed)} than the checkpoint was "
            f"trained with: the run will not be the same as an uninterrupted one"
        )
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.epoch, state.history, state.last_saved = (
        saved["epoch"],
        saved["history"],
        saved["epoch"],
    )
    rng = saved["rng"]
    _set_rng_state(rng[state.rank] if state.rank < len(rng) else rng[0])
    state.say(f"resumed from {path.name} after epoch {state.epoch}")


def _save_checkpoint(state: TrainState) -> None:
    rng = [_rng_state()]
    if distributed.is_distributed():  # every rank's RNG: augmentations resume exactly
        rng = [None] * state.world
        torch.distributed.all_gather_object(rng, _rng_state())
    if state.main_process:
        save_atomic(
            {
                "model": state.model.state_dict(),
                "optimizer": state.optimizer.state_dict(),
                "epoch": state.epoch,
                "step": state.epoch * state.steps_per_epoch,
                "history": state.history,
                "rng": rng,
                "config": config_dict(state.config),
            },
            state.checkpoint_path,
        )
    state.last_saved = state.epoch


def _epoch_loader(state: TrainState, epoch: int):
    """This rank's batches of ``epoch``; a function of (seed, rank, epoch, batch)."""
    cfg, x, y, shuffle = state.config, state.train_x, state.loss_labels, True
    # a global shuffle (seed, epoch), then this rank's equal share of it
    if state.world > 1:
        perm = torch.randperm(
            x.shape[0],
            generator=torch.Generator().manual_seed(mix_seed(cfg.seed, epoch)),
        )
        n_per_rank = x.shape[0] // state.world
        mine = perm[state.rank :: state.world][:n_per_rank].to(state.device)
        x, y, shuffle = x[mine], y[mine], False
    return gpu_loader(
        x,
        y,
        batch_size=cfg.batch_size // state.world,
        augment=state.augment,
        shuffle=shuffle,
        seed=mix_seed(cfg.seed, state.rank),
        device=state.device,
        epoch=epoch,
    )


def _nonfinite(state: TrainState, epoch: int, step: int, value: float, lr: float):
    last = state.last_saved
    where = (
        f"the last good checkpoint (after epoch {last}) is checkpoint.pt in out_dir"
        if last is not None
        else "no checkpoint was written"
    )
    k = state.config.check_every
    return NonFiniteLossError(
        f"loss became {value} at epoch {epoch + 1}, "
        f"by step {step}/{state.steps_per_epoch} "
        f"(checked every {k} steps; lr={lr:.3g}); training stopped and {where}. "
        f"Try a lower lr, grad_clip, or bf16=False.",
        epoch + 1,
        step,
        last,
    )


def _run_epoch(state: TrainState, epoch: int) -> dict:
    """One epoch of sync-free steps; the running loss is read back every ``check_every``
    steps (progress bar, NaN/Inf check) and at the end. Returns the epoch's record."""
    cfg, spe = state.config, state.steps_per_epoch
    state.model.train()
    bar = None
    if state.main_process and (
        sys.stderr.isatty() and not cfg.quiet if cfg.progress is None else cfg.progress
    ):
        from tqdm.auto import tqdm

        bar = tqdm(total=spe, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
    t0, lr, checked = time.perf_counter(), state.base_lr, 0
    loss_sum = torch.zeros((), device=state.device)
    warmup = int(round(cfg.warmup_epochs * spe))
    for i, (views, labels) in enumerate(_epoch_loader(state, epoch)):
        lr = lr_at(
            epoch * spe + i, cfg.epochs * spe, state.base_lr, warmup, cfg.min_lr_ratio
        )
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        loss_sum += train_step(
            state.step_model,
            state.loss_fn,
            state.optimizer,
            views,
            labels,
            state.bf16,
            state.channels_last,
            cfg.grad_clip,
        )
        if (i + 1) % cfg.check_every == 0 or i + 1 == spe:
            mean_loss = float(loss_sum) / (i + 1)  # the only host sync of the loop
            if not math.isfinite(mean_loss):
                raise _nonfinite(state, epoch, i + 1, mean_loss, lr)
            if bar is not None:
                bar.update(i + 1 - checked)
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.3g}")
            checked = i + 1
    if bar is not None:
        bar.close()
    if state.device.type == "cuda":
        torch.cuda.synchronize(state.device)
    seconds = time.perf_counter() - t0
    return {
        "epoch": epoch + 1,
        "loss": float(loss_sum) / spe,
        "lr": lr,
        "images_per_s": spe * cfg.batch_size / seconds,
        "epoch_time_s": seconds,
    }


def _run_epochs(state: TrainState, callbacks: Sequence[Callback]) -> None:
    """Epochs ``state.epoch + 1 ..`` up to ``epochs`` (or ``stop_after_epochs`` more):
    train, evaluate every ``eval_every``, call the callbacks, checkpoint."""
    cfg = state.config
    stop = (
        cfg.epochs
        if not cfg.stop_after_epochs
        else min(cfg.epochs, state.epoch + cfg.stop_after_epochs)
    )
    if state.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(state.device)
    for epoch in range(state.epoch, stop):
        record = _run_epoch(state, epoch)
        # kNN and geometry along training
        if (
            cfg.eval_every
            and (epoch + 1) % cfg.eval_every == 0
            and epoch + 1 < cfg.epochs
            and state.main_process
        ):
            record.update(state.evaluate(full=False))
        state.history.append(record)
        state.epoch = epoch + 1
        knn = f"  kNN {record['knn_acc']:.3f}" if "knn_acc" in record else ""
        state.say(
            f"epoch {epoch + 1}/{cfg.epochs}  loss {record['loss']:.4f}  "
            f"lr {record['lr']:.4g}  {record['images_per_s']:.0f} img/s{knn}"
        )
        if state.main_process:
            for callback in callbacks:
                callback(state.epoch, state.model, state)
        if state.checkpoint_path and (
            state.epoch % cfg.checkpoint_every == 0 or state.epoch == stop
        ):
            _save_checkpoint(state)
        distributed.barrier()


def _final_record(state: TrainState) -> dict:
    """Final evaluation (main process, finished runs only) and the results dict, written
    atomically to ``<out_dir>/results.json``."""
    cfg, model, device, history = state.config, state.model, state.device, state.history
    finished = state.epoch == cfg.epochs
    final = state.evaluate(full=True) if state.main_process and finished else {}
    commit, dirty = state.commit
    speeds = [h["images_per_s"] for h in history]
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "config": config_dict(cfg),
        "profile": cfg.profile or get_profile(),
        "dataset": {
            "name": cfg.dataset,
            "train_size": int(state.train_x.shape[0]),
            "test_size": int(state.test_x.shape[0]),
            "num_classes": state.num_classes,
            "image_shape": list(state.train_x.shape[1:]),
        },
        "model": {
            "arch": cfg.arch,
            "num_params": sum(p.numel() for p in model.parameters()),
            "feature_dim": model.feature_dim,
            "proj_dim": cfg.proj_dim,
        },
        "hardware": hardware_info(device),
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "library_commit": commit,
        "library_dirty": dirty,
        "date_utc": state.started_utc,
        "wall_time_s": time.time() - state.wall_start,
        "finished": finished,
        "epochs_completed": state.epoch,
        "history": history,
        "final": {k: v for k, v in final.items() if k != "metrics"},
        "metrics": final.get("metrics", {}),
        "images_per_s": (
            float(np.median(speeds[1:] if len(speeds) > 1 else speeds))
            if speeds
            else None
        ),
        "peak_gpu_memory_gb": (
            round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
            if device.type == "cuda"
            else None
        ),
        "speed": {
            "bf16": state.bf16,
            "channels_last": state.channels_last,
            "compile": cfg.compile,
        },
        # the lr after warm-up: lr (or its default) * batch / 256
        "peak_lr": state.base_lr,
        "steps_per_epoch": state.steps_per_epoch,
    }
    if final:
        state.say(
            "final  " + "  ".join(f"{k} {v:.4f}" for k, v in results["final"].items())
        )
    if cfg.out_dir and state.main_process:
        write_json(results, Path(cfg.out_dir) / "results.json")
    return results


# ------------------------------------------------------------------------------------
# train
@torch.no_grad()
def recalibrate_batchnorm(state: TrainState) -> int:
    """Re-estimate every BatchNorm's running mean and variance on the clean training
    images (the evaluation preprocessing, no augmentation), weights unchanged: the
    cumulative average over batches of ``eval_batch_size`` in train mode, as
    ``torch.optim.swa_utils.update_bn`` does. The untrained reference of the book's
    tables is evaluated both with and without it.

    Returns:
        The number of BatchNorm layers re-estimated.
    """
    cfg, model = state.config, state.model
    prep = state.augment.eval_transform
    # the stored splits are sorted by class: shuffled (seeded), or each batch's
    # variance would be a within-class one
    gen = torch.Generator().manual_seed(mix_seed(cfg.seed, 2))
    order = torch.randperm(state.train_x.shape[0], generator=gen)

    def batches():
        for i in range(0, order.numel(), cfg.eval_batch_size):
            idx = order[i : i + cfg.eval_batch_size].to(state.train_x.device)
            x = prep(state.train_x[idx].to(state.device))
            if state.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x

    torch.optim.swa_utils.update_bn(batches(), model, device=state.device)
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def train(config: TrainConfig, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train a contrastive model as ``config`` says; see the module docstring.

    Args:
        config: the run (``epochs=0`` only evaluates the initial network).
        callbacks: each is called as ``callback(epoch, model, state)`` on the main
            process after every finished epoch (after its record is in
            ``state.history``, before the checkpoint): ``epoch`` counts finished epochs
            from 1, ``model`` is the unwrapped :class:`~cl_lib.models.ContrastiveModel`
            in train mode, ``state`` the :class:`TrainState` (data, augmentation,
            ``state.evaluate()``). A callback must not draw from the global RNGs (exact
            resume) and should leave the model in train mode.

    Returns:
        A :class:`TrainResult` (model, per-epoch history, results dict, state). With
        ``out_dir``, also writes ``checkpoint.pt`` (every ``checkpoint_every`` epochs
        and at the end) and ``results.json``.

    Raises:
        ConfigError: a bad config, before any data is loaded (or a batch larger than the
            data).
        NonFiniteLossError: the loss became NaN/Inf (found within ``check_every``
            steps).
    """
    validate_config(config)
    try:  # torchrun's process group is destroyed on every exit path
        state = _setup(config)
        # the code this process imported, identified now: a later edit of the working
        # tree does not change what runs
        state.commit = library_commit(only_loaded=True)
        _load_data(state)
        _build(state)
        _resume(state)
        _run_epochs(state, callbacks)
        if config.bn_recalibrate:
            recalibrate_batchnorm(state)
        results = _final_record(state)
    finally:
        if _under_torchrun():
            distributed.cleanup()
    return TrainResult(
        model=state.model, history=state.history, results=results, state=state
    )


# --------------------------------------------------------------------------------------
# CLI
# flags with their own definitions below
_CLI_OWN = {
    "profile",
    "out_dir",
    "resume",
    "quiet",
}
PROG = "cl-train"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (``cl-train: error: ...``),
    exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _json_object(s: str) -> dict:
    try:
        value = json.loads(s)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"malformed JSON {s!r} ({err.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {s!r}")
    return value


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _flag_type(tp):
    """The argparse type of a TrainConfig field annotation (``int | None`` -> int that
    also accepts "none", ``bool`` -> true/false, ``dict`` -> a JSON object)."""
    optional = False
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = str if any(a is str for a in args) else args[0]
    is_dict = tp is dict or typing.get_origin(tp) is dict
    convert = _json_object if is_dict else _parse_bool if tp is bool else tp
    if not optional:
        return convert

    def convert_or_none(s: str):
        return None if s.lower() in ("none", "null") else convert(s)

    # for argparse's messages
    convert_or_none.__name__ = getattr(convert, "__name__", "value")
    return convert_or_none


def build_parser() -> argparse.ArgumentParser:
    """The CLI: one flag per :class:`TrainConfig` field (``--batch-size``), plus
    ``--config``, ``--profile``, ``--out``, ``--resume`` and ``--quiet``.

    Returns:
        The ``argparse`` parser (errors: one line, exit status 2).
    """
    p = _Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--config",
        default=None,
        help="JSON file of TrainConfig fields (flags override it)",
    )
    p.add_argument(
        "--profile",
        choices=list(PROFILE_PRESETS),
        default=get_profile(),
        help="size preset (default: $CL_BOOK_PROFILE or quick)",
    )
    p.add_argument(
        "--out",
        dest="out_dir",
        default=argparse.SUPPRESS,
        help="output directory for checkpoint.pt and results.json",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        default=argparse.SUPPRESS,
        help="continue from <out>/checkpoint.pt if it exists",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no per-epoch lines, no progress bar",
    )
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in _CLI_OWN:
            continue
        default = f.default if f.default is not dataclasses.MISSING else "{}"
        p.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_flag_type(hints[f.name]),
            default=argparse.SUPPRESS,
            help=f"TrainConfig.{f.name} (default: {default})",
        )
    return p


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """TrainConfig defaults < profile preset < ``--config`` file < explicit flags.

    Args:
        argv: the command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The config (not yet validated: see :func:`validate_config`).

    Raises:
        ConfigError: the ``--config`` file is unreadable or has unknown fields.
        SystemExit: (status 2) a malformed flag.
    """
    args = vars(build_parser().parse_args(argv))
    values = dict(PROFILE_PRESETS[args["profile"]], profile=args.pop("profile"))
    config_file = args.pop("config", None)
    if config_file:
        try:
            loaded = json.loads(Path(config_file).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read --config {config_file}: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config {config_file} must hold a JSON object")
        unknown = set(loaded) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise ConfigError(
                f"unknown TrainConfig fields in {config_file}: {sorted(unknown)}"
            )
        values.update(loaded)
    # only the flags actually given (the others are argparse.SUPPRESS-ed)
    values.update(args)
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    """``cl-train`` / ``python -m cl_lib.train``: train as the flags say.

    A bad config is rejected before any data is loaded, with one line on stderr
    (``cl-train: error: epochs must be >= 0, got -3``) and exit status 2.

    Returns:
        0 on success (the exit status).
    """
    try:
        cfg = config_from_args(argv)
        validate_config(cfg)
        train(cfg)
    except ConfigError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
