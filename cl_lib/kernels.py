r"""One table of repulsive kernels on the sphere, for KCL and for the sphere energies.

Convention (the only one in ``cl_lib``; the kernel contrastive loss
``cl_lib.losses.kcl_loss`` and the book's sphere energies in
``cl_lib.experiments.sphere`` both use it):

* **Argument: the squared Euclidean distance** $r = \lVert x - y\rVert^2$. On the unit
  sphere $r = 2 - 2x^\top y \in [0, 4]$, so a batch of them is one matrix product.
* **Energy: the mean over pairs.** For points $x_1, \dots, x_M$, $E_k(X) =
  \frac{2}{M(M-1)}\sum_{i<j} k(\lVert x_i - x_j\rVert^2)$ (:func:`kernel_energy`), the
  same as the mean over ordered pairs $i \ne j$. A mean, unlike a sum, does not grow
  with $M$: it is what KCL's energy term is and what Wang & Isola's (2020) uniformity
  takes the log of. Energies quoted as sums over pairs (Thomson's problem, e.g. Wales et
  al.'s table) are $\binom{M}{2}$ times this mean; the minimisers are the same.

The kernels, their one parameter and its default:

============  ===========================================  =========  =======
name          $k(r)$                                       parameter  default
============  ===========================================  =========  =======
``gaussian``  $e^{-t r}$                                   ``t > 0``  2
``log``       $-\log(1 + t r)$                             ``t > 0``  2
``imq``       $c / \sqrt{c^2 + r}$                          ``c > 0``  2
``riesz``     $r^{-s/2} = \lVert x-y\rVert^{-s}$ for $s>0$;  ``s``      -1
              $-\tfrac12\log r = -\log\lVert x-y\rVert$ for
              $s = 0$; $-r^{-s/2} = -\lVert x-y\rVert^{|s|}$
              for $s < 0$
============  ===========================================  =========  =======

``t`` is an inverse squared length scale (the Gaussian with ``t = 1/(2 tau)`` is the
kernel inside InfoNCE at temperature ``tau``: $e^{x^\top y/\tau} =
e^{1/\tau}e^{-r/(2\tau)}$); ``c`` is a squared length scale; ``s`` is the Riesz exponent
of the *distance* (not of $r$), with the usual signs that make every Riesz kernel
repulsive (Hardin & Saff 2004); $s = 1$ on $S^2$ is Thomson's Coulomb energy, $s = 0$
the logarithmic energy. ``log`` is the logarithmic kernel of the KCL authors' code
(Koromilas et al. 2024, github.com/pakoromilas/DHEL-KCL); the logarithm of the distance
itself is ``riesz`` with ``s = 0``. Defaults are those of the authors' code except Riesz
(see ``kcl_loss``).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import torch

__all__ = [
    "Kernel",
    "KERNELS",
    "resolve_kernel",
    "kernel_values",
    "squared_distances",
    "kernel_energy",
]


def _safe_pow(r: torch.Tensor, exponent: float) -> torch.Tensor:
    """r**exponent for r >= 0, with gradient 0 (not NaN) at r == 0.

    Needed for the Riesz kernel with s < 0 (k = -||x-y||^{|s|}), which is not
    differentiable at coincident points (e.g. a perfectly aligned positive pair).
    """
    positive = r > 0
    r_safe = torch.where(positive, r, torch.ones_like(r))
    value = r_safe.pow(exponent)
    zero_value = 0.0 if exponent > 0 else float("inf")
    return torch.where(positive, value, torch.full_like(r, zero_value))


def _gaussian(r: torch.Tensor, t: float) -> torch.Tensor:
    return torch.exp(-t * r)


def _log(r: torch.Tensor, t: float) -> torch.Tensor:
    return -torch.log1p(t * r)


def _imq(r: torch.Tensor, c: float) -> torch.Tensor:
    return c / torch.sqrt(c * c + r)


def _riesz(r: torch.Tensor, s: float) -> torch.Tensor:
    if s > 0:  # infinite at r = 0, as it should be
        return r.pow(-s / 2)
    if s == 0:  # the s -> 0 limit of (||x-y||^{-s} - 1) / s
        return -0.5 * torch.log(r)
    return -_safe_pow(r, -s / 2)


class Kernel(NamedTuple):
    """A row of :data:`KERNELS`: ``fn(r, value)``, parameter name, default value."""

    fn: Callable[[torch.Tensor, float], torch.Tensor]
    parameter: str
    default: float


KERNELS: dict[str, Kernel] = {
    "gaussian": Kernel(_gaussian, "t", 2.0),
    "log": Kernel(_log, "t", 2.0),
    "imq": Kernel(_imq, "c", 2.0),
    "riesz": Kernel(_riesz, "s", -1.0),
}


def resolve_kernel(
    kernel: str, kernel_params: dict, allow_logarithmic: bool = True
) -> tuple[Callable, float]:
    """Check a kernel and its parameter; return ``k`` and ``value`` for ``k(r, value)``.

    Args:
        kernel: a key of :data:`KERNELS`.
        kernel_params: ``{}`` (use the default) or ``{parameter_name: value}``.
        allow_logarithmic: accept the Riesz exponent ``s = 0`` (the logarithmic kernel).
            ``kcl_loss`` passes ``False``.

    Returns:
        The kernel function and the checked parameter value (a float).
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {sorted(KERNELS)}")
    fn, pname, default = KERNELS[kernel]
    unknown = set(kernel_params) - {pname}
    if unknown:
        raise ValueError(
            f"kernel {kernel!r} takes only the parameter {pname!r}, "
            f"got {sorted(unknown)}"
        )
    value = kernel_params.get(pname, default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{kernel} kernel parameter {pname} must be a number, got {value!r}"
        ) from None
    if not math.isfinite(value):
        raise ValueError(
            f"{kernel} kernel parameter {pname} must be finite, got {value}"
        )
    if kernel == "riesz":
        if value == 0 and not allow_logarithmic:
            raise ValueError(
                "riesz parameter s must be finite and non-zero here, got 0 "
                "(s = 0 is the logarithmic kernel)"
            )
    elif value <= 0:
        raise ValueError(
            f"{kernel} kernel parameter {pname} must be a finite number > 0, "
            f"got {value}"
        )
    return fn, value


def kernel_values(
    r: torch.Tensor, kernel: str = "gaussian", **kernel_params: float
) -> torch.Tensor:
    """Evaluate a kernel of :data:`KERNELS` at squared distances.

    Args:
        r: squared distances, any shape, ``r >= 0``.
        kernel: kernel name; ``kernel_params``: its parameter (default from the table).

    Returns:
        ``k(r)``, same shape as ``r``.
    """
    fn, value = resolve_kernel(kernel, kernel_params)
    return fn(r, value)


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    r"""Squared distances $\lVert x_i - x_j\rVert^2$ over pairs $i<j$ (``triu`` order).

    Small problems use the differences $x_i - x_j$ (full relative precision for close
    pairs, and fastest); once the $(\dots, M(M-1)/2, d)$ difference tensor would exceed
    $2^{22}$ numbers, $\lVert x_i\rVert^2 + \lVert x_j\rVert^2 - 2x_i^\top x_j$ (one
    matrix product, clamped at 0) keeps memory at $O(M^2)$.

    Args:
        x: points, shape ``(..., M, d)`` with ``M >= 2``.

    Returns:
        Shape ``(..., M(M-1)/2)``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise ValueError(
            f"points must be a tensor of shape (..., M, d), got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    m = x.shape[-2]
    if m < 2:
        raise ValueError(f"an energy needs at least 2 points, got M={m}")
    i, j = _pairs(m, x.device)
    if x.numel() // m * (m * (m - 1) // 2) <= 2**22:
        return (x[..., i, :] - x[..., j, :]).pow(2).sum(-1)
    sq = x.pow(2).sum(-1)
    gram = x @ x.transpose(-1, -2)
    return (sq[..., i] + sq[..., j] - 2 * gram[..., i, j]).clamp_min(0)


@functools.lru_cache(maxsize=64)
def _pairs(m: int, device: torch.device) -> torch.Tensor:
    """Indices of the pairs i < j (cached: the minimisers call this at every step)."""
    return torch.triu_indices(m, m, offset=1, device=device)


def kernel_energy(
    x: torch.Tensor, kernel: str = "gaussian", **kernel_params: float
) -> torch.Tensor:
    r"""Mean kernel energy $\frac{2}{M(M-1)}\sum_{i<j} k(\lVert x_i - x_j\rVert^2)$.

    Args:
        x: points, shape ``(M, d)`` or batched ``(..., M, d)``.
        kernel: a key of :data:`KERNELS`; ``kernel_params``: its parameter.

    Returns:
        A scalar for ``(M, d)``, shape ``(...)`` for batched input.
    """
    fn, value = resolve_kernel(kernel, kernel_params)
    return fn(squared_distances(x), value).mean(dim=-1)
