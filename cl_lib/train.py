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

The learning rate (linear warm-up, then cosine decay; :func:`cl_lib.optim.lr_at`)
is set every step; optimisers: SGD with momentum (default), AdamW or LARS
(:mod:`cl_lib.optim`). The config, its checks and the flags live in :mod:`cl_lib.config`
(every bad value is refused before any data loads, exit status 2); the names of both
modules are importable from here too.

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
the untrained network the same way; ``cl-eval CHECKPOINT`` (:mod:`cl_lib.eval_cmd`)
re-evaluates a saved checkpoint.

CLI exit status: 0 done; 2 a bad config (one line, before any data loads); 1 missing
data, a non-finite loss or an interrupted run (one line naming the file or checkpoint).
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from cl_lib import checks, distributed
from cl_lib.config import (
    DEFAULT_LR,
    PROFILE_PRESETS,
    PROG,
    ConfigError,
    TrainConfig,
    build_parser,
    config_dict,
    config_from_args,
    loss_kwargs,
    make_augment,
    validate_config,
)
from cl_lib.data import balanced_subset, gpu_loader, load_splits
from cl_lib.evaluate import embed_heldout, extract_features, heldout_metrics
from cl_lib.io import hardware_info, library_commit, save_atomic, write_json
from cl_lib.losses import get_loss
from cl_lib.models import build_model
from cl_lib.optim import LARS, build_optimizer, lr_at
from cl_lib.profile import get_profile, keep_cpu_memory, mix_seed, seed_everything

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "NonFiniteLossError",
    "RunInterrupted",
    "ConfigError",
    "LARS",
    "DEFAULT_LR",
    "PROFILE_PRESETS",
    "train",
    "recalibrate_batchnorm",
    "restore",
    "results_dict",
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


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: nn.Module  # the trained ContrastiveModel (unwrapped, on its device)
    history: list[dict]  # one dict per epoch
    results: dict  # what results.json holds
    # the run's data, augmentation and optimiser
    state: "TrainState | None" = field(default=None, repr=False)


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


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (a ``KeyboardInterrupt``, so code that catches that still
    does); its message says what was finished and where the last checkpoint is.

    Attributes: ``epoch`` (epochs finished) and ``checkpoint`` (the path of the last
    checkpoint written, or None).
    """

    def __init__(self, message: str, epoch: int = 0, checkpoint: Path | None = None):
        super().__init__(message)
        self.epoch, self.checkpoint = epoch, checkpoint


def mask_labels(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Copy of ``labels`` where a seeded random ``1 - fraction`` of the entries are -1.

    Args:
        labels: (N,) labels.
        fraction: the share kept, in [0, 1].
        seed: which ones are hidden.

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


def _build_loss(cfg: TrainConfig, num_classes: int) -> Callable:
    return (
        cfg.loss
        if callable(cfg.loss)
        else get_loss(cfg.loss, **loss_kwargs(cfg, num_classes))
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
    # glibc keeps freed activations for the next step (see profile.keep_cpu_memory)
    cpu_memory_kept: bool = False
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
    # backbone features (train, test) of the final evaluation, for what comes after it
    # (cl_lib.experiments.results.retrieval_snapshot) without a second pass
    final_features: tuple | None = None
    last_saved: int | None = None
    # (library commit, differs from it?) of the code this process imported
    commit: tuple = ("unknown", None)
    # the commit of the code that trained the epochs before a resume, where it differs
    commit_at_start: str | None = None

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

        Args:
            full: the final evaluation (adds the linear probe, and the per-image
                correctness ``knn_correct`` / ``linear_probe_correct`` when
                :func:`~cl_lib.evaluate.heldout_metrics` gives it).

        Returns:
            The accuracies, and the geometry under ``"metrics"``.
        """
        return _evaluate(self, full)


Callback = Callable[[int, nn.Module, TrainState], None]


@torch.no_grad()
def _heldout_projections(state: TrainState, idx: torch.Tensor, h_test: torch.Tensor):
    """Projections of the clean held-out images ``idx`` and of two augmented views."""
    cfg = state.config
    _, z, views = embed_heldout(
        state.model,
        state.test_x[idx.to(state.test_x.device)],
        state.augment,
        cfg.seed,
        features=h_test[idx.to(h_test.device)],
        device=state.device,
        batch_size=cfg.eval_batch_size,
        channels_last=state.channels_last,
    )
    return z, views


_ACCURACY_KEYS = ("knn_acc", "linear_probe_acc", "linear_probe_train_acc")
# per-image correctness of heldout_metrics, when it returns it
_CORRECT_KEYS = ("knn_correct", "linear_probe_correct")


def _evaluate(state: TrainState, full: bool) -> dict:
    """kNN (and with ``full`` the linear probe) on backbone features, geometry of the
    held-out projections; see :meth:`TrainState.evaluate`."""
    cfg, model = state.config, state.model
    kw = dict(
        batch_size=cfg.eval_batch_size,
        device=state.device,
        preprocess=state.augment.eval_transform,
        channels_last=state.channels_last,
    )
    h_train = extract_features(model.backbone, state.train_x, **kw)
    h_test = extract_features(model.backbone, state.test_x, **kw)
    if full:
        state.final_features = (h_train, h_test)
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
    accuracies = {k: out.pop(k) for k in _ACCURACY_KEYS if k in out}
    # per-image correctness (encoded strings): in the final block only, not in every
    # along-training record of the history
    for k in _CORRECT_KEYS:
        if k in out:
            value = out.pop(k)
            if full:
                accuracies[k] = value
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
    if device.type == "cpu":  # page faults were a third of a CPU step's time
        state.cpu_memory_kept = keep_cpu_memory()
    seed_everything(mix_seed(cfg.seed, state.rank) % 2**32)  # DDP syncs initial weights
    return state


def _load_data(state: TrainState) -> None:
    """uint8 splits (class-balanced subsets); the training split moves to the device."""
    cfg = state.config
    # subsets are upper bounds: a data set smaller than the preset's subset is used
    # whole
    train_x, train_y, test_x, test_y, classes = load_splits(
        cfg.dataset, cfg.subset, cfg.test_subset, cfg.data_root, cfg.cache_dir, cfg.seed
    )
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


def _build_model(state: TrainState) -> nn.Module:
    """The augmentation and the model (+ SyncBatchNorm, channels_last), on the device;
    the model's initial weights come from the global RNG."""
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
    return model


def _build(state: TrainState) -> None:
    """Augmentation, model (+ SyncBatchNorm, channels_last, DDP, compile), loss,
    optimiser."""
    cfg, device = state.config, state.device
    model = _build_model(state)
    is_dist = distributed.is_distributed()
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
    before = saved.get("library_commit", "unknown")
    if "unknown" not in (before, state.commit[0]) and before != state.commit[0]:
        # the run's code is then two commits: both are recorded, and the reader warned
        state.commit_at_start = before
        warnings.warn(
            f"resuming a run started at commit {before[:10]} with the library at "
            f"{state.commit[0][:10]}: the results record both"
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
                "library_commit": state.commit_at_start or state.commit[0],
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


def results_dict(state: TrainState, final: dict) -> dict:
    """The results of a run as ``results.json`` holds them (schema in
    ``book/results/README.md``): config, data set, model, hardware, versions, commit,
    timings, history, and the final evaluation.

    Args:
        state: the run (data, model, history, commit, start time).
        final: what :meth:`TrainState.evaluate` returned (accuracies, and the geometry
            under ``"metrics"``), or ``{}`` for an unfinished run.

    Returns:
        The results dict (JSON-able).
    """
    cfg, model, device, history = state.config, state.model, state.device, state.history
    finished = state.epoch == cfg.epochs
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
        **(
            {"library_commit_at_start": state.commit_at_start}
            if state.commit_at_start
            else {}
        ),
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
            "cpu_memory_kept": state.cpu_memory_kept,
        },
        # the lr after warm-up: lr (or its default) * batch / 256
        "peak_lr": state.base_lr,
        "steps_per_epoch": state.steps_per_epoch,
    }
    return results


def _say_final(state: TrainState, final: dict) -> None:
    """One line with the final accuracies (the per-image strings left out)."""
    numbers = {k: v for k, v in final.items() if isinstance(v, (int, float))}
    if numbers:
        state.say("final  " + "  ".join(f"{k} {v:.4f}" for k, v in numbers.items()))


def _final_record(state: TrainState) -> dict:
    """Final evaluation (main process, finished runs only) and the results dict, written
    atomically to ``<out_dir>/results.json``."""
    cfg = state.config
    finished = state.epoch == cfg.epochs
    final = state.evaluate(full=True) if state.main_process and finished else {}
    results = results_dict(state, final)
    _say_final(state, results["final"])
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

    Args:
        state: the run (model, training images, augmentation's eval transform).

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


def restore(config: TrainConfig, saved: dict) -> TrainState:
    """The state of a saved run, ready to evaluate: device, the run's data (same subsets
    and seed), augmentation, and the model with the saved weights (no loss, no
    optimiser). ``cl-eval`` (:mod:`cl_lib.eval_cmd`) uses it.

    Args:
        config: the run's config (from the checkpoint, evaluation settings may differ).
        saved: a checkpoint dict (``model``, ``epoch``, ``history``).

    Returns:
        The :class:`TrainState` (``epoch`` and ``history`` from the checkpoint).
    """
    state = _setup(config)
    state.commit = library_commit(only_loaded=True)
    _load_data(state)
    _build_model(state).load_state_dict(saved["model"])
    state.epoch, state.history = saved["epoch"], list(saved.get("history", []))
    return state


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
        RunInterrupted: (a ``KeyboardInterrupt``) Ctrl-C; says where the last
            checkpoint is.
    """
    validate_config(config)
    state = None
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
    except KeyboardInterrupt as err:
        if isinstance(err, RunInterrupted):
            raise
        raise _interrupted(config, state) from None
    finally:
        if _under_torchrun():
            distributed.cleanup()
    return TrainResult(
        model=state.model, history=state.history, results=results, state=state
    )


def _interrupted(cfg: TrainConfig, state: TrainState | None) -> RunInterrupted:
    """The :class:`RunInterrupted` of a run stopped by Ctrl-C: epochs finished and the
    last checkpoint written (a path), if any."""
    epoch = state.epoch if state is not None else 0
    path = state.checkpoint_path if state is not None else None
    last = state.last_saved if state is not None else None
    done = f"interrupted after {epoch} of {cfg.epochs} epochs"
    if last is not None and path is not None and path.exists():
        return RunInterrupted(
            f"{done}; the last checkpoint (after epoch {last}) is {path}: continue "
            f"with --resume",
            epoch,
            path,
        )
    where = "" if path is not None else " (no out_dir)"
    return RunInterrupted(f"{done}; no checkpoint was written{where}", epoch, None)


def _fail(message: object, status: int) -> int:
    """Print ``cl-train: error: <message>`` as one line on stderr.

    Args:
        message: the error (its text, whitespace folded into one line).
        status: the exit status to return.

    Returns:
        ``status``.
    """
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    """``cl-train`` / ``python -m cl_lib.train``: train as the flags say.

    Every error ends in one line on stderr (``cl-train: error: ...``), no traceback: a
    bad config before any data is loaded (exit status 2, e.g. ``epochs must be >= 0,
    got -3``); missing data (the message names the file), a non-finite loss or Ctrl-C
    (the message names the last checkpoint) with exit status 1.

    Args:
        argv: the command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 done, 2 a bad config, 1 a run that could not finish.
    """
    try:
        cfg = config_from_args(argv)
        validate_config(cfg)
    except ConfigError as err:
        return _fail(err, 2)
    try:
        train(cfg)
    except ConfigError as err:  # found only once loaded (a batch larger than the data)
        return _fail(err, 2)
    except FileNotFoundError as err:  # missing data: the message names the file
        return _fail(err, 1)
    except NonFiniteLossError as err:
        where = Path(cfg.out_dir or ".") / "checkpoint.pt"
        kept = f" ({where})" if err.checkpoint_epoch is not None else ""
        return _fail(f"{err}{kept}", 1)
    except RunInterrupted as err:
        return _fail(err, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
