"""``cl-eval CHECKPOINT``: evaluate a model the trainer saved, without training.

    cl-eval runs/dhel/checkpoint.pt                        # -> runs/dhel/eval.json
    cl-eval runs/dhel/checkpoint.pt --knn-k 20 --out e.json
    python -m cl_lib.eval_cmd runs/dhel/checkpoint.pt --linear-probe false

The checkpoint (``<out>/checkpoint.pt`` of ``cl-train``) holds the run's config and
weights. This command loads the run's data set as the trainer did (same subsets, same
seed), rebuilds the model, loads the weights and evaluates them exactly as the trainer's
final evaluation does (:meth:`cl_lib.train.TrainState.evaluate`): kNN accuracy and the
linear probe on backbone features, the geometry of held-out embeddings. It writes a
results file of the trainer's schema (``book/results/README.md``) plus an
``"evaluation"`` block (checkpoint, its epoch, the settings changed by flags). On the
device of the training run, a finished run's file repeats the trainer's final numbers.

Flags change only evaluation settings (``--knn-k``, ``--probe-steps``, ...), the device
and where the data is; everything else comes from the checkpoint. Exit status: 0 done; 2
a bad flag or a file that is not a trainer checkpoint; 1 a missing checkpoint or data
set, or Ctrl-C (one line on stderr each).
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
from pathlib import Path

import torch

from cl_lib.config import (
    ConfigError,
    OneLineParser,
    TrainConfig,
    add_field_flags,
    check_device,
    validate_eval_config,
)
from cl_lib.io import write_json
from cl_lib.train import restore, results_dict

__all__ = ["EVAL_FIELDS", "evaluate_checkpoint", "load_checkpoint", "main"]

PROG = "cl-eval"
# the TrainConfig fields a flag may change: evaluation settings, device, data location
EVAL_FIELDS = [
    "knn_k",
    "knn_t",
    "linear_probe",
    "probe_method",
    "probe_steps",
    "metrics",
    "metrics_points",
    "eval_batch_size",
    "device",
    "data_root",
    "cache_dir",
]


def load_checkpoint(path: str | Path) -> dict:
    """Read a ``cl-train`` checkpoint on the CPU.

    Args:
        path: the ``checkpoint.pt`` file.

    Returns:
        The checkpoint dict (``config``, ``model``, ``epoch``, ``history``, ...).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: the file is not a checkpoint written by the trainer.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise ConfigError(f"{path} is not a cl-train checkpoint ({err})") from None
    needed = {"config", "model", "epoch"}
    if not isinstance(saved, dict) or not needed <= set(saved):
        raise ConfigError(
            f"{path} is not a cl-train checkpoint (it needs the keys {sorted(needed)})"
        )
    return saved


def _config_of(saved: dict, overrides: dict) -> TrainConfig:
    """The run's config from the checkpoint, with the evaluation's overrides; the
    training device is kept only where this machine has it."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in saved["config"].items() if k in fields}
    if "device" not in overrides:
        try:
            check_device(values.get("device"))
        except ValueError:
            values["device"] = None  # the profile's default device
    bad = set(overrides) - set(EVAL_FIELDS)
    if bad:
        raise ConfigError(f"cl-eval cannot change {sorted(bad)}; only {EVAL_FIELDS}")
    values.update(overrides, out_dir=None, resume=False, progress=False)
    try:
        return TrainConfig(**values)
    except TypeError as err:
        raise ConfigError(
            f"the checkpoint's config is not a TrainConfig: {err}"
        ) from None


def evaluate_checkpoint(
    path: str | Path,
    out: str | Path | None = None,
    overrides: dict | None = None,
    quiet: bool = False,
) -> dict:
    """Re-evaluate a ``cl-train`` checkpoint on its run's data set and write a results
    file (see the module docstring).

    Args:
        path: the checkpoint.
        out: the results file to write (default: ``eval.json`` beside the checkpoint;
            the trainer's own ``results.json`` is left alone).
        overrides: :data:`EVAL_FIELDS` values that replace the run's (e.g.
            ``{"knn_k": 20}``).
        quiet: print nothing.

    Returns:
        The results dict that was written.

    Raises:
        FileNotFoundError: no checkpoint, or the run's data is missing.
        ConfigError: not a checkpoint, or an override is bad (before data loads).
    """
    path = Path(path)
    overrides = dict(overrides or {})
    saved = load_checkpoint(path)
    cfg = _config_of(saved, overrides)
    cfg.quiet = quiet
    validate_eval_config(cfg)
    state = restore(cfg, saved)
    final = state.evaluate(full=True)
    results = results_dict(state, final)
    # the run's config as trained, with the evaluation's changes (not this process's
    # out_dir, resume, progress or quiet)
    results["config"] = {**saved["config"], **overrides}
    results["evaluation"] = {
        "command": PROG,
        "checkpoint": str(path),
        "checkpoint_epoch": saved["epoch"],
        "overrides": overrides,
    }
    numbers = {k: v for k, v in results["final"].items() if isinstance(v, float)}
    state.say("final  " + "  ".join(f"{k} {v:.4f}" for k, v in numbers.items()))
    out = Path(out) if out is not None else path.parent / "eval.json"
    write_json(results, out)
    state.say(f"wrote {out}")
    return results


def build_parser() -> argparse.ArgumentParser:
    """The ``cl-eval`` flags: the checkpoint, ``--out``, ``--quiet`` and one flag per
    :data:`EVAL_FIELDS` entry.

    Returns:
        The parser (errors: one line, exit status 2).
    """
    p = OneLineParser(
        prog=PROG,
        description="Evaluate a cl-train checkpoint (kNN, linear probe, geometry) "
        "and write a results file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint.pt written by cl-train")
    p.add_argument(
        "--out", default=None, help="results file (default: eval.json beside it)"
    )
    p.add_argument("--quiet", action="store_true", help="print nothing")
    add_field_flags(p, EVAL_FIELDS)
    return p


def main(argv: list[str] | None = None) -> int:
    """``cl-eval`` / ``python -m cl_lib.eval_cmd``.

    Args:
        argv: the command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 done, 2 bad input, 1 missing files or Ctrl-C.
    """
    args = vars(build_parser().parse_args(argv))
    path, out, quiet = args.pop("checkpoint"), args.pop("out"), args.pop("quiet")
    try:
        evaluate_checkpoint(path, out, overrides=args, quiet=quiet)
    except ConfigError as err:
        return _fail(err, 2)
    except FileNotFoundError as err:
        return _fail(err, 1)
    except KeyboardInterrupt:
        return _fail(f"interrupted; nothing was written (checkpoint {path})", 1)
    return 0


def _fail(message: object, status: int) -> int:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
