"""The configuration of a run: :class:`TrainConfig`, the profile presets, the checks
that refuse a bad config before any data loads, and the ``cl-train`` flags.

Layers: this module imports the consumers' checks (:func:`cl_lib.data.check_dataset`,
:func:`cl_lib.models.check_model`, :func:`cl_lib.augment.check_augment`,
:func:`cl_lib.optim.check_optimizer`, the losses' registry) and nothing of the training
loop (:mod:`cl_lib.train`), which imports it.

    cfg = config_from_args(["--profile", "quick", "--loss", "dhel"])
    validate_config(cfg)        # ConfigError (one line) on any bad value

Precedence: TrainConfig defaults < profile preset < ``--config`` JSON file < flags. A
``--config`` value is typed like its flag: ``{"epochs": "3"}`` is read as 3, while
``{"epochs": "x"}`` or ``{"epochs": true}`` is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from cl_lib import checks
from cl_lib.augment import DATASET_STATS, SimCLRAugment, check_augment, simclr_preset
from cl_lib.data import check_dataset
from cl_lib.evaluate import PROBE_METHODS, check_knn, check_probe
from cl_lib.losses import LOSS_NAMES, get_loss, needs_labels
from cl_lib.models import check_model
from cl_lib.optim import DEFAULT_LR, check_optimizer
from cl_lib.profile import get_profile

__all__ = [
    "TrainConfig",
    "ConfigError",
    "PROFILE_PRESETS",
    "DEFAULT_LR",
    "PROBE_METHODS",
    "PROG",
    "config_dict",
    "loss_kwargs",
    "make_augment",
    "check_device",
    "check_knn",
    "check_probe",
    "validate_config",
    "validate_eval_config",
    "add_field_flags",
    "OneLineParser",
    "config_from_args",
    "build_parser",
]

PROG = "cl-train"


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


class ConfigError(ValueError):
    """A config the trainer rejects before it loads any data (CLI exit status 2)."""


# ----------------------------------------------------------------------------------
# presets: between TrainConfig defaults and the user's config file / flags
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
# from a config to its parts
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


def loss_kwargs(cfg: TrainConfig, num_classes: int) -> dict:
    """The keyword arguments of the run's loss: ``loss_kwargs``, and for CLOA without
    given anchors the class count and the run's seed.

    Args:
        cfg: ``loss``, ``loss_kwargs`` and ``seed`` are read.
        num_classes: classes of the data set.

    Returns:
        The keyword arguments for :func:`cl_lib.losses.get_loss`.
    """
    kwargs = dict(cfg.loss_kwargs)
    if cfg.loss == "cloa" and "anchors" not in kwargs:
        kwargs.setdefault("num_classes", num_classes)
        kwargs.setdefault("seed", cfg.seed)
    return kwargs


def make_augment(cfg: TrainConfig, image_size: int):
    """The SimCLR augmentation of a run: the preset of ``cfg.augment`` (a data set
    name), else of the data set itself (an ``imagefolder:`` data set gets ImageNet
    statistics and the recipe for its size), with views of side ``image_size`` and
    ``cfg.augment_kwargs`` replacing any :class:`~cl_lib.augment.SimCLRAugment` argument
    (lists are fine: JSON has no tuples).

    Args:
        cfg: ``augment``, ``dataset`` and ``augment_kwargs`` are read.
        image_size: the view side S.

    Returns:
        A :class:`~cl_lib.augment.SimCLRAugment`: (B, C, H, W) uint8 -> (B, C, S, S)
        float.
    """
    check_augment(cfg.augment or cfg.dataset, cfg.augment_kwargs)
    overrides = dict(cfg.augment_kwargs)
    name = cfg.augment or cfg.dataset
    if not name.lower().startswith("imagefolder:"):
        return simclr_preset(name, size=image_size, **overrides)
    mean, std = DATASET_STATS["imagenet"]
    kw = dict(size=image_size, mean=mean, std=std)
    if image_size >= 64:  # else the 32x32 recipe (colour strength 0.5, no blur)
        kw.update(jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)
    return SimCLRAugment(**{**kw, **overrides})


# ----------------------------------------------------------------------------------
# checks: each consumer's own, and validate_config calling them all
def check_device(device: str | None) -> None:
    """Check that ``device`` names a device this machine has (``"cuda:7"`` on a
    one-GPU machine is refused before anything loads).

    Args:
        device: a torch device string, or None (the profile's default).

    Returns:
        None.

    Raises:
        ValueError: one line naming the device.
    """
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise checks.fail(
            None, "device", "a torch device such as 'cpu' or 'cuda:0'", repr(device)
        ) from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index is not None and dev.index >= n):
            raise ValueError(
                f"device {device!r} does not exist: this machine has {n} CUDA device(s)"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} does not exist on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise checks.fail(None, "device", "a cpu, cuda or mps device", repr(device))


def _at_least(cfg: TrainConfig, name: str, low: int, or_none: bool = False) -> None:
    value = getattr(cfg, name)
    if value is None and or_none:
        return
    none = " or none" if or_none else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer >= {low}{none}, got {value!r}")
    if value < low:
        raise ConfigError(f"{name} must be >= {low}{none}, got {value}")


_BOOLS = ("compile", "sync_bn", "bn_recalibrate", "linear_probe", "metrics")
_BOOLS_OR_NONE = ("bf16", "channels_last", "progress")


def _check_run(cfg: TrainConfig) -> None:
    """The loop's own settings: lengths, periods, flags, resume."""
    for name, low in (("epochs", 0), ("batch_size", 2), ("check_every", 1)):
        _at_least(cfg, name, low)
    for name, low in (("checkpoint_every", 1), ("eval_every", 0)):
        _at_least(cfg, name, low)
    checks.integer(cfg.seed, "seed")
    _at_least(cfg, "stop_after_epochs", 1, or_none=True)
    for name in _BOOLS + ("resume", "quiet"):
        checks.boolean(getattr(cfg, name), name)
    for name in _BOOLS_OR_NONE:
        if getattr(cfg, name) is not None:
            checks.boolean(getattr(cfg, name), name)
    if cfg.bn_recalibrate and cfg.epochs != 0:
        raise ConfigError(
            "bn_recalibrate is for the untrained network (epochs=0): a trained "
            "network's BatchNorm statistics come from its training, got epochs "
            f"{cfg.epochs}"
        )
    if cfg.resume and not cfg.out_dir:
        raise ConfigError("resume=True needs out_dir (where checkpoint.pt lives)")
    if cfg.profile is not None and cfg.profile not in PROFILE_PRESETS:
        raise checks.fail(
            None, "profile", f"one of {list(PROFILE_PRESETS)}", cfg.profile
        )
    check_device(cfg.device)


def _check_data(cfg: TrainConfig) -> None:
    """Data set, subsets and the batch against the training size; augmentation."""
    _at_least(cfg, "subset", 1, or_none=True)
    _at_least(cfg, "test_subset", 1, or_none=True)
    for name in ("data_root", "cache_dir", "out_dir"):
        if getattr(cfg, name) is not None and not isinstance(getattr(cfg, name), str):
            raise checks.fail(None, name, "a path or none", repr(getattr(cfg, name)))
    check_dataset(cfg.dataset, cfg.batch_size, cfg.subset)
    check_augment(cfg.augment or cfg.dataset, cfg.augment_kwargs)
    make_augment(cfg, cfg.image_size or 32)  # the SimCLRAugment's own value checks


def _check_loss(cfg: TrainConfig) -> None:
    """The loss, its keyword arguments and the labels it may see."""
    label_fraction = checks.nonnegative(cfg.label_fraction, "label_fraction")
    if label_fraction > 1:
        raise checks.fail(None, "label_fraction", "in [0, 1]", label_fraction)
    if callable(cfg.loss):
        return
    if not isinstance(cfg.loss, str):
        raise ConfigError(f"loss must be a name or a callable, got {cfg.loss!r}")
    if not isinstance(cfg.loss_kwargs, dict):
        raise ConfigError(f"loss_kwargs must be a JSON object, got {cfg.loss_kwargs!r}")
    if cfg.loss not in LOSS_NAMES:
        raise ConfigError(
            f"unknown loss {cfg.loss!r}; choose one of {list(LOSS_NAMES)}"
        )
    if needs_labels(cfg.loss) and cfg.label_fraction == 0:
        raise ConfigError(f"loss {cfg.loss!r} needs labels, but label_fraction is 0")
    try:  # the loss checks its own keyword arguments (placeholder class count for CLOA)
        get_loss(cfg.loss, **loss_kwargs(cfg, num_classes=2))
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"loss_kwargs {cfg.loss_kwargs} for loss {cfg.loss!r}: {err}"
        ) from None


def _check_eval(cfg: TrainConfig) -> None:
    """kNN, linear probe and the geometry metrics (checked whether or not enabled)."""
    check_knn(cfg.knn_k, cfg.knn_t)
    check_probe(cfg.probe_method, cfg.probe_steps)
    _at_least(cfg, "eval_batch_size", 1)
    _at_least(cfg, "metrics_points", 2)


def _check_model(cfg: TrainConfig) -> None:
    check_model(
        cfg.arch,
        cfg.proj_dim,
        cfg.proj_hidden_dim,
        cfg.proj_layers,
        cfg.image_size,
        cfg.width,
    )


def _check_optimizer(cfg: TrainConfig) -> None:
    check_optimizer(
        cfg.optimizer,
        cfg.lr,
        cfg.momentum,
        cfg.weight_decay,
        cfg.warmup_epochs,
        cfg.min_lr_ratio,
        cfg.grad_clip,
    )


def _run_checks(cfg: TrainConfig, steps: tuple[Callable, ...]) -> None:
    """Run the checks in order; any ``ValueError``/``TypeError`` becomes a one-line
    :class:`ConfigError`."""
    for check in steps:
        try:
            check(cfg)
        except ConfigError:
            raise
        except (ValueError, TypeError) as err:
            raise ConfigError(" ".join(str(err).split())) from None


def validate_config(cfg: TrainConfig) -> None:
    """Reject a bad config before any data is loaded: the loop's settings (and the
    device), then each consumer's own check (data set and augmentation, model, loss,
    optimiser, evaluation).

    Args:
        cfg: the run's config.

    Returns:
        None.

    Raises:
        ConfigError: (a ``ValueError``) with one line saying which field is wrong and
            why.
    """
    steps = (_check_run, _check_data, _check_model, _check_loss, _check_optimizer)
    _run_checks(cfg, steps + (_check_eval,))


def validate_eval_config(cfg: TrainConfig) -> None:
    """The part of :func:`validate_config` that re-evaluating a saved model needs:
    device, data set and augmentation, model, evaluation (not the loss or the
    optimiser, which a checkpoint's evaluation does not use).

    Args:
        cfg: the run's config, with the evaluation's overrides.

    Returns:
        None.

    Raises:
        ConfigError: one line saying which field is wrong and why.
    """
    steps = (lambda c: check_device(c.device), _check_data, _check_model, _check_eval)
    _run_checks(cfg, steps)


def add_field_flags(parser: argparse.ArgumentParser, names: list[str]) -> None:
    """Add one flag per :class:`TrainConfig` field (``knn_k`` -> ``--knn-k``), typed as
    ``cl-train`` types it, with no default (a flag not given is not in the result).

    Args:
        parser: the parser to extend.
        names: the field names.

    Returns:
        None.
    """
    hints = typing.get_type_hints(TrainConfig)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name in names:
        default = defaults[name]
        default = "{}" if default is dataclasses.MISSING else default
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_flag_type(hints[name]),
            default=argparse.SUPPRESS,
            help=f"TrainConfig.{name} (default: {default})",
        )


# ----------------------------------------------------------------------------------
# CLI: flags with their own definitions below
_CLI_OWN = {
    "profile",
    "out_dir",
    "resume",
    "quiet",
}


class OneLineParser(argparse.ArgumentParser):
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


def _field_type(tp) -> tuple[Any, bool]:
    """(base type, whether None is allowed) of a TrainConfig field annotation; a union
    with ``str`` (the loss: a name or a callable) is read as ``str``."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = str if any(a is str for a in args) else args[0]
        return (dict if typing.get_origin(tp) is dict else tp), optional
    return (dict if typing.get_origin(tp) is dict else tp), False


def _flag_type(tp):
    """The argparse type of a TrainConfig field annotation (``int | None`` -> int that
    also accepts "none", ``bool`` -> true/false, ``dict`` -> a JSON object)."""
    tp, optional = _field_type(tp)
    convert = _json_object if tp is dict else _parse_bool if tp is bool else tp
    if not optional:
        return convert

    def convert_or_none(s: str):
        return None if s.lower() in ("none", "null") else convert(s)

    # for argparse's messages
    convert_or_none.__name__ = getattr(convert, "__name__", "value")
    return convert_or_none


def _typed(name: str, value: Any, annotation, source: str) -> Any:
    """A ``--config`` value typed like its flag: a string is converted as the flag
    converts it (``"3"`` -> 3), a JSON number, boolean or object must match the field's
    type (an int is fine for a float), ``null`` only where the field takes None.

    Raises:
        ConfigError: one line naming the file, the field and the value.
    """
    tp, optional = _field_type(annotation)
    wanted = {dict: "a JSON object", bool: "true or false", int: "an integer"}.get(
        tp, "a number" if tp is float else "a string"
    )
    wanted += " or null" if optional else ""
    if value is None and optional:
        return None
    if isinstance(value, str) and tp is not str:
        try:
            return _flag_type(annotation)(value)
        except (argparse.ArgumentTypeError, ValueError):
            raise ConfigError(
                f"--config {source}: {name} must be {wanted}, got {value!r}"
            ) from None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {
        float: number,
        int: number and isinstance(value, int),
        bool: isinstance(value, bool),
        dict: isinstance(value, dict),
        str: isinstance(value, str),
    }.get(tp, False)
    if not ok:
        raise ConfigError(f"--config {source}: {name} must be {wanted}, got {value!r}")
    return float(value) if tp is float else value


def _read_config_file(path: str) -> dict:
    """The fields of a ``--config`` JSON file, typed like the flags."""
    try:
        loaded = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"cannot read --config {path}: {' '.join(str(err).split())}"
        ) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"--config {path} must hold a JSON object")
    hints = typing.get_type_hints(TrainConfig)
    unknown = set(loaded) - set(hints)
    if unknown:
        raise ConfigError(f"unknown TrainConfig fields in {path}: {sorted(unknown)}")
    return {k: _typed(k, v, hints[k], path) for k, v in loaded.items()}


def build_parser() -> argparse.ArgumentParser:
    """The CLI: one flag per :class:`TrainConfig` field (``--batch-size``), plus
    ``--config``, ``--profile``, ``--out``, ``--resume`` and ``--quiet``.

    Returns:
        The ``argparse`` parser (errors: one line, exit status 2).
    """
    p = OneLineParser(
        prog=PROG,
        description="Train a contrastive model (cl_lib.train): one flag per "
        "TrainConfig field.",
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
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    add_field_flags(p, [n for n in names if n not in _CLI_OWN])
    return p


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """TrainConfig defaults < profile preset < ``--config`` file < explicit flags.

    Args:
        argv: the command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The config (not yet validated: see :func:`validate_config`).

    Raises:
        ConfigError: the ``--config`` file is unreadable, has unknown fields or a
            value of the wrong type.
        SystemExit: (status 2) a malformed flag.
    """
    args = vars(build_parser().parse_args(argv))
    values = dict(PROFILE_PRESETS[args["profile"]], profile=args.pop("profile"))
    config_file = args.pop("config", None)
    if config_file:
        values.update(_read_config_file(config_file))
    # only the flags actually given (the others are argparse.SUPPRESS-ed)
    values.update(args)
    return TrainConfig(**values)
