"""Input validators of the engine, one message style for all of them.

Every check raises ``ValueError`` with the message

    ``<function>: <argument> must be <requirement>, got <value>``

(``<function>`` is the public function that was called, passed as ``where``) and returns
the value, converted where that helps (a Python ``float`` for scalars, a ``long`` tensor
for labels). Checks cost no host-device synchronisation unless they must read tensor
values (finiteness, label ranges), and those reads can be switched off where documented.

Example::

    >>> from cl_lib import checks
    >>> checks.positive(0.0, "tau", "infonce_loss")
    Traceback (most recent call last):
    ...
    ValueError: infonce_loss: tau must be a finite number > 0, got 0.0
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any, Iterable, Iterator

import torch

__all__ = [
    "no_value_reads",
    "reads_values",
    "fail",
    "tensor",
    "embeddings",
    "views",
    "positive",
    "nonnegative",
    "integer",
    "labels",
    "one_of",
    "boolean",
]


_READ_VALUES: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "cl_lib_checks_read_values", default=True
)


def reads_values() -> bool:
    """Whether value-reading checks are on (``False`` inside :func:`no_value_reads`)."""
    return _READ_VALUES.get()


@contextlib.contextmanager
def no_value_reads() -> Iterator[None]:
    """Skip the checks that read tensor values (finiteness, label ranges) in this block.

    Shapes, dtypes and hyper-parameters are still checked. Reading a value of a CUDA
    tensor synchronises the host with the GPU, so a training step that checked its
    embeddings would stall the GPU every step; the trainer instead checks its loss on
    the device and reads it every ``check_every`` steps (``cl_lib.train``)."""
    token = _READ_VALUES.set(False)
    try:
        yield
    finally:
        _READ_VALUES.reset(token)


def fail(where: str | None, name: str, requirement: str, got: Any) -> ValueError:
    """The ``ValueError`` of a failed check, in the module's message style (to
    ``raise``).

    Args:
        where: Name of the public function that was called (``None``: no prefix).
        name: Name of the argument that was wrong.
        requirement: What it must be, e.g. ``"a finite number > 0"``.
        got: What it was (written into the message as is).

    Returns:
        ``ValueError("<where>: <name> must be <requirement>, got <got>")``.
    """
    prefix = f"{where}: " if where else ""
    return ValueError(f"{prefix}{name} must be {requirement}, got {got}")


def tensor(
    x: Any,
    name: str,
    where: str | None = None,
    ndim: int | tuple[int, ...] | None = None,
) -> torch.Tensor:
    """A ``torch.Tensor``, optionally with a given number of dimensions.

    Args:
        x: The value to check.
        name: Argument name for the message.
        where: Calling public function, for the message.
        ndim: Allowed number(s) of dimensions; ``None`` allows any.

    Returns:
        ``x`` unchanged.
    """
    if not isinstance(x, torch.Tensor):
        raise fail(where, name, "a torch.Tensor", type(x).__name__)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and x.dim() not in allowed:
        shapes = " or ".join(f"{d}-D" for d in allowed)
        raise fail(where, name, f"{shapes}", f"shape {tuple(x.shape)}")
    return x


def embeddings(
    z: Any,
    name: str = "z",
    where: str | None = None,
    *,
    min_rows: int = 1,
    ndim: int = 2,
    finite: bool = True,
    floating: bool = True,
) -> torch.Tensor:
    """A floating tensor of embeddings, shape ``(N, d)`` (or ``ndim`` dimensions).

    Args:
        z: The value to check; rows are samples, the last dimension is the embedding.
        name: Argument name for the message.
        where: Calling public function, for the message.
        min_rows: Smallest allowed number of rows ``N`` (second-last dimension).
        ndim: Required number of dimensions (2 for ``(N, d)``, 3 for ``(N, K, d)``).
        finite: Also require every entry finite (no NaN/Inf); this reads the values,
            i.e. synchronises with an accelerator.
        floating: Require a floating dtype (``False`` also accepts integer tensors).

    Returns:
        ``z`` unchanged.
    """
    z = tensor(z, name, where)
    if z.dim() != ndim:
        layout = "(N, d)" if ndim == 2 else "(N, K, d)" if ndim == 3 else f"{ndim} dims"
        raise fail(where, name, f"{ndim}-D {layout}", f"shape {tuple(z.shape)}")
    if floating and not z.is_floating_point():
        raise fail(where, name, "a floating tensor", f"dtype {z.dtype}")
    if z.dtype == torch.bool or z.is_complex():
        raise fail(where, name, "a real-valued tensor", f"dtype {z.dtype}")
    rows = z.shape[0] if ndim == 2 else z.shape[-2]
    if ndim == 2 and rows < min_rows:
        raise fail(
            where,
            name,
            f"(N, d) with at least {min_rows} rows (N >= {min_rows})",
            f"shape {tuple(z.shape)}",
        )
    if ndim != 2 and z.shape[0] < min_rows:
        raise fail(
            where,
            name,
            f"at least {min_rows} samples (N >= {min_rows})",
            f"shape {tuple(z.shape)}",
        )
    if z.shape[-1] < 1:
        raise fail(
            where, name, "at least one column (d >= 1)", f"shape {tuple(z.shape)}"
        )
    if finite and reads_values() and not bool(torch.isfinite(z).all()):
        bad = int((~torch.isfinite(z)).sum())
        raise fail(where, name, "finite (no NaN or Inf)", f"{bad} NaN or Inf entries")
    return z


def views(
    z1: Any,
    z2: Any,
    where: str | None = None,
    *,
    min_rows: int = 2,
    finite: bool = True,
    batched: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views of a batch: each an ``(N, d)`` embedding tensor, both of the same
    shape.

    Args:
        z1: First view, shape ``(N, d)`` (with ``batched``, also ``(R, N, d)``: ``R``
            independent batches).
        z2: Second view, shape ``(N, d)``; row ``i`` is the positive of ``z1[i]``.
        where: Calling public function, for the message.
        min_rows: Smallest allowed batch size ``N`` (2: a negative needs a second
            sample).
        finite: Also require finite entries (see :func:`embeddings`).
        batched: Accept a leading dimension of independent batches.

    Returns:
        ``(z1, z2)`` unchanged.
    """
    for z, name in ((z1, "z1"), (z2, "z2")):
        if batched and isinstance(z, torch.Tensor) and z.dim() == 3:
            embeddings(z, name, where, min_rows=1, ndim=3, finite=finite)
            if z.shape[-2] < min_rows:
                raise fail(
                    where,
                    name,
                    f"(R, N, d) with N >= {min_rows}",
                    f"shape {tuple(z.shape)}",
                )
        else:
            embeddings(z, name, where, min_rows=min_rows, finite=finite)
    if z1.shape != z2.shape:
        raise fail(
            where,
            "z2",
            f"the same shape as z1 {tuple(z1.shape)}",
            f"shape {tuple(z2.shape)}",
        )
    return z1, z2


def _number(value: Any, name: str, where: str | None) -> float:
    if isinstance(value, bool):
        raise fail(where, name, "a number", repr(value))
    try:
        return float(value)
    except (TypeError, ValueError):
        raise fail(where, name, "a number", repr(value)) from None


def positive(value: Any, name: str, where: str | None = None) -> float:
    """A finite number ``> 0`` (temperatures, kernel scales, ...).

    Args:
        value: The value to check (anything ``float()`` accepts, except ``bool``).
        name: Argument name for the message.
        where: Calling public function, for the message.

    Returns:
        ``float(value)``.
    """
    number = _number(value, name, where)
    if not math.isfinite(number) or number <= 0:
        raise fail(where, name, "a finite number > 0", number)
    return number


def nonnegative(value: Any, name: str, where: str | None = None) -> float:
    """A finite number ``>= 0`` (loss weights, coefficients).

    Args:
        value: The value to check (anything ``float()`` accepts, except ``bool``).
        name: Argument name for the message.
        where: Calling public function, for the message.

    Returns:
        ``float(value)``.
    """
    number = _number(value, name, where)
    if not math.isfinite(number) or number < 0:
        raise fail(where, name, "a finite number >= 0", number)
    return number


def integer(
    value: Any, name: str, where: str | None = None, minimum: int | None = None
) -> int:
    """A Python or NumPy integer (not ``bool``), optionally ``>= minimum``.

    Args:
        value: The value to check.
        name: Argument name for the message.
        where: Calling public function, for the message.
        minimum: Smallest allowed value; ``None`` for no bound.

    Returns:
        ``int(value)``.
    """
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        requirement = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise fail(where, name, requirement, repr(value))
    number = int(value.__index__())
    if minimum is not None and number < minimum:
        raise fail(where, name, f"an integer >= {minimum}", number)
    return number


def labels(
    y: Any,
    n: int,
    where: str | None = None,
    *,
    name: str = "labels",
    allow_unlabelled: bool = False,
    min_classes: int = 0,
    device: torch.device | str | None = None,
    check_values: bool = True,
) -> torch.Tensor:
    """Integer class labels, one per sample: a 1-D tensor of length ``n``.

    Args:
        y: The labels (a tensor, or anything ``torch.as_tensor`` accepts; ``None`` fails
            with a message saying that labels are needed).
        n: Number of samples, i.e. the required length.
        where: Calling public function, for the message.
        name: Argument name for the message.
        allow_unlabelled: Accept ``-1`` for "unlabelled" besides class indices ``>= 0``.
        min_classes: Smallest number of distinct classes ``>= 0`` required.
        device: Move the result there (default: leave it where it is).
        check_values: Check the values (range, number of classes); this reads the
            tensor, i.e. synchronises with an accelerator.

    Returns:
        The labels as a ``long`` tensor of shape ``(n,)``.
    """
    if y is None:
        raise fail(
            where,
            name,
            f"a 1-D integer tensor of length {n} (this loss needs labels)",
            "None",
        )
    if isinstance(y, (bool, int, float, complex)):
        raise fail(
            where,
            name,
            f"a 1-D integer tensor of length {n} (hyper-parameters are "
            "keyword arguments, e.g. tau=0.5)",
            repr(y),
        )
    if not isinstance(y, torch.Tensor):
        y = torch.as_tensor(y)
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise fail(where, name, "an integer tensor", f"dtype {y.dtype}")
    if y.dim() != 1:
        raise fail(where, name, f"1-D of length {n}", f"shape {tuple(y.shape)}")
    if y.shape[0] != n:
        raise fail(
            where,
            name,
            f"of length N={n} (one label per sample)",
            f"length {y.shape[0]}",
        )
    if check_values and reads_values() and n > 0:
        lowest = -1 if allow_unlabelled else 0
        if int(y.min()) < lowest:
            what = (
                "-1 (unlabelled) or a class index >= 0"
                if allow_unlabelled
                else "class indices >= 0"
            )
            raise fail(where, name, what, f"min {int(y.min())}")
        if min_classes:
            found = int(y[y >= 0].unique().numel())
            if found < min_classes:
                raise fail(
                    where,
                    name,
                    f"of at least {min_classes} different classes",
                    f"{found} class(es)",
                )
    return y.to(device=device if device is not None else y.device, dtype=torch.long)


def one_of(
    value: Any, choices: Iterable[Any], name: str, where: str | None = None
) -> Any:
    """One of a fixed set of choices (loss names, kernel names, ...).

    Args:
        value: The value to check.
        choices: The allowed values.
        name: Argument name for the message.
        where: Calling public function, for the message.

    Returns:
        ``value`` unchanged.
    """
    choices = list(choices)
    if value not in choices:
        raise fail(where, name, f"one of {choices}", repr(value))
    return value


def boolean(value: Any, name: str, where: str | None = None) -> bool:
    """``True`` or ``False``, not a truthy string or number (``"no"`` is truthy).

    Args:
        value: The value to check.
        name: Argument name for the message.
        where: Calling public function, for the message.

    Returns:
        ``value`` unchanged.
    """
    if not isinstance(value, bool):
        raise fail(where, name, "True or False", repr(value))
    return value
