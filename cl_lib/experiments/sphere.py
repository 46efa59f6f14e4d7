r"""Points on the sphere $S^{d-1}$: energies, one minimiser, known configurations.

Hyperspherical energy minimisation (HEM): place $M$ points $x_1,\dots,x_M$ on $S^{d-1}$
so as to minimise a pairwise energy. Energies use the one kernel table of
:mod:`cl_lib.kernels` (argument: squared distance; energy: **mean** over pairs), the
same table as the KCL loss. Thomson's (1904) problem is the Riesz kernel with $s = 1$ on
$S^2$; its published minima (:data:`THOMSON_ENERGIES`) are sums over pairs, i.e.
$\binom{M}{2}$ times our mean.

Koromilas et al. (2024) read contrastive losses as HEM: with perfectly aligned views,
InfoNCE, DCL and DHEL become the per-point log-sum-exp energy :func:`logsumexp_energy`.
The chapters study the losses with no encoder: the embeddings themselves are the
parameters.

Contents, top to bottom:

- :func:`uniform_sphere` -- i.i.d. uniform points;
- energies, batched over a leading restart dimension: :func:`kernel_energy` (from
  :mod:`cl_lib.kernels`) and :func:`logsumexp_energy`;
- contrastive losses over free points: :func:`batched_loss` (the registry's InfoNCE,
  DCL, DHEL and KCL called once on a stack of restarts), :func:`pair_loss_energy`,
  :func:`aligned_loss_energy`, and their aligned-view energy in closed form,
  :func:`aligned_energy` (weights :data:`ALIGNED_WEIGHTS`);
- :func:`minimise` -- the one free-point optimiser: many restarts at once, Riemannian
  gradient descent with an adaptive step (``method="rgd"``) or projected Adam
  (``method="adam"``), with an optional per-step record;
- :func:`gram_gap`, :func:`steps_to_tolerance` -- cheap per-step convergence checks;
- :func:`cross_hessian_blocks`, :func:`energy_part_gradient` -- who pushes whom in a
  loss;
- :func:`noisy_cap_pairs`, :func:`monte_carlo_loss` -- expected mini-batch losses;
- :func:`class_positive_energy` -- free points whose positives are their class-mates;
- known configurations: :func:`regular_simplex`, :func:`cross_polytope`,
  :func:`octahedron`, :func:`bipyramid`, :func:`icosahedron`, :data:`THOMSON_ENERGIES`;
- Thomson's problem: :func:`coulomb_energy`, :func:`coulomb_sum`,
  :func:`square_antiprism`;
- :func:`symmetric_pair_loss` -- a two-view loss averaged over both anchor views;
- shape fingerprints: :func:`inner_product_counts`, :func:`is_square_pyramid`,
  :func:`five_point_shape`;
- :func:`config_distance` -- *the* distance between two configurations, up to an
  orthogonal map and a relabelling of the points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cl_lib.kernels import KERNELS, kernel_energy
from cl_lib.losses import get_loss

# the registry losses that accept (R, M, d) views, one value per batch
BATCHED_LOSSES = ("infonce", "dcl", "dhel", "kcl")

__all__ = [
    "uniform_sphere",
    "kernel_energy",
    "KERNELS",
    "logsumexp_energy",
    "batched_loss",
    "pair_loss_energy",
    "aligned_loss_energy",
    "ALIGNED_WEIGHTS",
    "aligned_energy",
    "minimise",
    "MinimiseResult",
    "gram_gap",
    "steps_to_tolerance",
    "cross_hessian_blocks",
    "energy_part_gradient",
    "noisy_cap_pairs",
    "monte_carlo_loss",
    "class_positive_energy",
    "regular_simplex",
    "cross_polytope",
    "octahedron",
    "bipyramid",
    "icosahedron",
    "THOMSON_ENERGIES",
    "coulomb_energy",
    "coulomb_sum",
    "square_antiprism",
    "symmetric_pair_loss",
    "inner_product_counts",
    "is_square_pyramid",
    "five_point_shape",
    "config_distance",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# -------------------- sampling
def uniform_sphere(
    m: int,
    d: int,
    generator: torch.Generator | None = None,
    restarts: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""$M$ i.i.d. points uniform on $S^{d-1}$: normalised standard Gaussians.

    Args:
        m, d: number of points and ambient dimension.
        generator: torch RNG; restarts: if given, a leading batch dimension.

    Returns:
        Shape ``(m, d)``, or ``(restarts, m, d)``.
    """
    if m < 1 or d < 1:
        raise ValueError(f"need m >= 1 points in d >= 1 dimensions, got m={m}, d={d}")
    if restarts is not None and restarts < 1:
        raise ValueError(f"restarts must be >= 1 or None, got {restarts}")
    shape = (m, d) if restarts is None else (restarts, m, d)
    x = torch.randn(shape, generator=generator, dtype=dtype)
    return x / x.norm(dim=-1, keepdim=True)


def _check_points(x: torch.Tensor, name: str = "points") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3):
        raise ValueError(
            f"{name} must have shape (M, d) or (R, M, d), got {tuple(x.shape)}"
        )
    if x.shape[-2] < 2:
        raise ValueError(f"{name} needs at least 2 points, got M={x.shape[-2]}")
    return x


# -------------------- energies
def logsumexp_energy(
    x: torch.Tensor,
    tau: float = 0.5,
    positive_weight: float = 0.0,
    negative_weight: float = 1.0,
) -> torch.Tensor:
    r"""The energy that InfoNCE-type losses minimise when the views are aligned:

    $$E_\tau(X) = \frac1M \sum_{i=1}^M \log\Big( a\,e^{1/\tau} + b \sum_{j\neq i}
      e^{x_i^\top x_j/\tau}\Big), \qquad a = \text{positive\_weight},\ b =
      \text{negative\_weight}.$$

    With $U = V = X$: InfoNCE is $E_\tau(X; 1, 2) - 1/\tau$, DCL $E_\tau(X; 0, 2) -
    1/\tau$, DHEL $E_\tau(X; 0, 1) - 1/\tau$. The kernel inside is the Gaussian of
    :mod:`cl_lib.kernels` with $t = 1/(2\tau)$, but the log is taken *per point*, so
    $E_\tau$ is not a mean kernel energy and its minimisers can differ from the Gaussian
    energy's.

    Args:
        x: points, ``(M, d)`` or ``(R, M, d)``.

    Returns:
        A scalar, or shape ``(R,)``.
    """
    x = _check_points(x)
    if not tau > 0 or positive_weight < 0 or not negative_weight > 0:
        raise ValueError(
            f"need tau > 0, positive_weight >= 0, negative_weight > 0; got "
            f"{tau}, {positive_weight}, {negative_weight}"
        )
    m = x.shape[-2]
    logits = (x @ x.transpose(-1, -2) / tau).masked_fill(
        torch.eye(m, dtype=torch.bool, device=x.device), float("-inf")
    )
    per_point = torch.logsumexp(logits, dim=-1) + math.log(negative_weight)
    if positive_weight > 0:
        per_point = torch.logaddexp(
            per_point, torch.full_like(per_point, math.log(positive_weight) + 1 / tau)
        )
    return per_point.mean(dim=-1)


# (positive_weight a, negative_weight b) of logsumexp_energy for which the loss of
# aligned views U = V = X is E_tau(X; a, b) - 1/tau
ALIGNED_WEIGHTS: dict[str, tuple[float, float]] = {
    "infonce": (1.0, 2.0),
    "dcl": (0.0, 2.0),
    "dhel": (0.0, 1.0),
}


def aligned_energy(name: str, tau: float) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The loss of aligned views in closed form: $X \mapsto E_\tau(X; a, b) - 1/\tau$.

    Equal to :func:`aligned_loss_energy` of the loss (checked in the tests), but one
    :func:`logsumexp_energy` call for all restarts.

    Args:
        name: ``"infonce"``, ``"dcl"`` or ``"dhel"`` (any case); the weights $(a, b)$
            are :data:`ALIGNED_WEIGHTS` ``[name]``.
        tau: temperature.

    Returns:
        A function ``(M, d) -> ()`` or ``(R, M, d) -> (R,)``.
    """
    key = name.lower()
    if key not in ALIGNED_WEIGHTS:
        raise ValueError(
            f"aligned_energy knows {sorted(ALIGNED_WEIGHTS)}, got {name!r}"
        )
    a, b = ALIGNED_WEIGHTS[key]

    def energy(x: torch.Tensor) -> torch.Tensor:
        return logsumexp_energy(x, tau, positive_weight=a, negative_weight=b) - 1 / tau

    return energy


# -------------------- losses on free points
def batched_loss(name: str, u: torch.Tensor, v: torch.Tensor, **hyper) -> torch.Tensor:
    r"""A contrastive loss for a stack of independent batches, one value per batch.

    The registry loss itself (``cl_lib.losses.get_loss(name, **hyper)``), called once on
    ``(R, M, d)`` views: InfoNCE, DCL, DHEL and KCL accept a leading dimension of
    independent batches, so many free-point runs share one tensor and one optimiser
    step.

    Args:
        name: ``"infonce"``, ``"dcl"``, ``"dhel"`` or ``"kcl"``.
        u, v: the two views, ``(R, M, d)`` (rows normalised inside).
        **hyper: the loss's hyper-parameters (``tau``, a number or one temperature
            per batch, shape ``(R,)``; DHEL ``both_views``; KCL ``kernel``, ``gamma``
            and the kernel's parameter).

    Returns:
        Shape ``(R,)``.
    """
    if name not in BATCHED_LOSSES:
        raise ValueError(
            f"batched_loss knows {', '.join(BATCHED_LOSSES)}, got {name!r}"
        )
    if u.shape != v.shape or u.ndim != 3 or u.shape[1] < 2:
        raise ValueError(
            f"u and v must both have shape (R, M, d) with M >= 2, got "
            f"{tuple(u.shape)} and {tuple(v.shape)}"
        )
    tau = hyper.get("tau")
    if not isinstance(tau, torch.Tensor) or tau.numel() == 1:
        return get_loss(name, **hyper)(u, v)
    if tau.shape != (u.shape[0],):
        raise ValueError(
            f"{name}: tau must be a number or one per batch, shape "
            f"({u.shape[0]},), got shape {tuple(tau.shape)}"
        )
    # one registry call per distinct temperature, put back in the batches' order
    groups = [(tau == t).nonzero()[:, 0] for t in tau.unique()]
    values = [
        get_loss(name, **{**hyper, "tau": float(tau[i[0]])})(u[i], v[i]) for i in groups
    ]
    return torch.cat(values)[torch.cat(groups).argsort()]


def _two_views(x: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R, 2M, d)`` configurations (or one ``(2M, d)``) as the views ``U`` (rows
    ``0..M-1``) and ``V`` (rows ``M..2M-1``), each ``(R, M, d)``."""
    x = _check_points(x)
    if x.shape[-2] != 2 * m:
        raise ValueError(f"expected {2 * m} rows (U then V), got {x.shape[-2]}")
    x = x.reshape(-1, 2 * m, x.shape[-1])
    return x[:, :m], x[:, m:]


def pair_loss_energy(
    loss: str | LossFn, m: int, **hyper
) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The free two-view problem as a function of $2M$ points, for :func:`minimise`.

    Rows $0..M-1$ are $U$, rows $M..2M-1$ are $V$; the value is $\mathcal L(U, V)$.

    Args:
        loss: a :func:`batched_loss` name (fast: one call for all restarts) or any pair
            loss ``loss(z1, z2, **hyper)`` such as those of ``cl_lib.losses`` (one call
            per restart).
        m: points per view.

    Returns:
        A function ``(R, 2M, d) -> (R,)``.
    """

    def energy(x: torch.Tensor) -> torch.Tensor:
        u, v = _two_views(x, m)
        if isinstance(loss, str):
            return batched_loss(loss, u, v, **hyper)
        return torch.stack([loss(a, b, **hyper) for a, b in zip(u, v)])

    return energy


def aligned_loss_energy(
    loss_fn: LossFn, **loss_kwargs
) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""Turn a pair loss into the energy $X \mapsto \mathcal L(X, X)$ of aligned views.

    Returns:
        A function ``(R, M, d) -> (R,)`` (one loss call per restart).
    """

    def energy(x: torch.Tensor) -> torch.Tensor:
        x = _check_points(x)
        return torch.stack(
            [loss_fn(xr, xr, **loss_kwargs) for xr in x.reshape(-1, *x.shape[-2:])]
        )

    return energy


def symmetric_pair_loss(
    name: str, m: int, **hyper
) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""A :func:`batched_loss` averaged over both anchor views, for :func:`minimise`.

    $\tfrac12\big(\mathcal L(U, V) + \mathcal L(V, U)\big)$ with rows $0..M-1$ of each
    configuration as $U$ and rows $M..2M-1$ as $V$: for a loss that is not symmetric in
    its two views (DHEL repels the anchors' view only) this treats the views alike.

    Args:
        name: a :func:`batched_loss` name; ``hyper``: its hyper-parameters.
        m: points per view.

    Returns:
        A function ``(R, 2M, d) -> (R,)``.
    """

    def energy(x: torch.Tensor) -> torch.Tensor:
        u, v = _two_views(x, m)
        return 0.5 * (
            batched_loss(name, u, v, **hyper) + batched_loss(name, v, u, **hyper)
        )

    return energy


# -------------------- the minimiser
@dataclass
class MinimiseResult:
    """What :func:`minimise` returns. ``best`` is the lowest-energy configuration."""

    best: torch.Tensor  # (M, d)
    best_energy: float
    energies: torch.Tensor  # (R,) final energy of every restart
    configs: torch.Tensor  # (R, M, d) final configuration of every restart
    grad_norm: torch.Tensor  # (R,) norm of the Riemannian gradient at the end
    trace: dict  # name -> (steps, R) tensor of what ``record`` returned


def _tangent(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Project the gradient onto the tangent space of the sphere at each point."""
    return g - (g * x).sum(dim=-1, keepdim=True) * x


def minimise(
    energy_fn: Callable[[torch.Tensor], torch.Tensor],
    m: int,
    d: int,
    restarts: int = 16,
    steps: int = 1000,
    lr: float = 0.05,
    seed: int = 0,
    x0: torch.Tensor | None = None,
    tol: float = 1e-12,
    method: str = "rgd",
    record: Callable[[torch.Tensor], dict] | None = None,
) -> MinimiseResult:
    r"""Minimise ``energy_fn`` over $M$ points on $S^{d-1}$ from many starts at once.

    ``method="rgd"``: Riemannian gradient descent. With $G = \nabla_X E$ the step is $X
    \leftarrow \operatorname{normalise}(X - \eta\,(G - \operatorname{diag}(GX^\top)X))$;
    each restart has its own $\eta$, which grows $1.2\times$ after a step that lowers
    its energy and halves (the step is rejected) otherwise, so one ``lr`` suits kernels
    of any scale. Restarts stop once their Riemannian gradient norm is below ``tol``.

    ``method="adam"``: Adam with learning rate ``lr`` on the raw coordinates of the
    energy of the normalised points, followed by renormalising every row (projected
    Adam, the usual way to train embeddings on the sphere). Restarts are independent
    (Adam is element-wise), so a stack of restarts is the same as separate runs; all
    ``steps`` are taken.

    Args:
        energy_fn: maps ``(R, M, d)`` to ``(R,)``.
        m, d: points and dimension; restarts, seed: random starts from
            :func:`uniform_sphere`, unless ``x0`` (``(restarts, m, d)``) is given.
        record: optional ``record(x) -> {name: (R,) tensor}`` evaluated after every
        step.

    Returns:
        A :class:`MinimiseResult`; ``trace[name]`` has shape ``(steps, R)``.
    """
    if m < 2 or d < 2:
        raise ValueError(
            f"need m >= 2 points on a sphere of dimension d >= 2, got m={m}, d={d}"
        )
    if restarts < 1 or steps < 0 or not lr > 0:
        raise ValueError(
            f"need restarts >= 1, steps >= 0, lr > 0; got {restarts}, {steps}, {lr}"
        )
    if method not in ("rgd", "adam"):
        raise ValueError(f"method must be 'rgd' or 'adam', got {method!r}")
    if x0 is None:
        x = uniform_sphere(m, d, torch.Generator().manual_seed(seed), restarts=restarts)
    elif tuple(x0.shape) != (restarts, m, d):
        raise ValueError(
            f"x0 must have shape {(restarts, m, d)}, got {tuple(x0.shape)}"
        )
    else:
        x = F.normalize(x0.detach().double(), dim=-1)
    trace: dict[str, list] = {}

    def log(pts: torch.Tensor) -> None:
        if record is not None:
            with torch.no_grad():
                for key, value in record(pts).items():
                    trace.setdefault(key, []).append(torch.as_tensor(value).detach())

    # evaluated once before any step: a wrongly shaped energy fails here
    energy, g = _value_and_grad(energy_fn, x, normalise=method == "adam")
    if method == "rgd":
        x, energy, grad = _rgd(
            energy_fn, x, energy, _tangent(x, g), steps, lr, tol, log
        )
    else:
        x, energy, grad = _projected_adam(energy_fn, x, steps, lr, log)
    best = int(torch.argmin(energy))
    return MinimiseResult(
        best=x[best].clone(),
        best_energy=float(energy[best]),
        energies=energy,
        configs=x,
        grad_norm=grad.flatten(1).norm(dim=1),
        trace={k: torch.stack(v) for k, v in trace.items()},
    )


def _value_and_grad(energy_fn, pts: torch.Tensor, normalise: bool):
    """The energy of each restart and its Euclidean gradient in ``pts``; with
    ``normalise`` the energy is of the normalised points (projected Adam)."""
    pts = pts.detach().requires_grad_(True)
    e = energy_fn(F.normalize(pts, dim=-1) if normalise else pts)
    if e.shape != (pts.shape[0],):
        raise ValueError(
            f"energy_fn must map (R, M, d) to (R,), got output shape {tuple(e.shape)}"
        )
    (g,) = torch.autograd.grad(e.sum(), pts)
    return e.detach(), g


def _rgd(energy_fn, x, energy, grad, steps, lr, tol, log):
    """Riemannian gradient descent with a step size per restart (see
    :func:`minimise`); returns the points, their energies and tangent gradients."""
    eta = torch.full((x.shape[0], 1, 1), float(lr), dtype=x.dtype)
    for _ in range(steps):
        active = grad.flatten(1).norm(dim=1) > tol
        if not active.any():
            break
        trial = F.normalize(x - eta * grad, dim=-1)
        e_trial, g_trial = _value_and_grad(energy_fn, trial, normalise=False)
        better = (e_trial <= energy) & active
        b = better[:, None, None]
        x = torch.where(b, trial, x)
        energy = torch.where(better, e_trial, energy)
        grad = torch.where(b, _tangent(trial, g_trial), grad)
        eta = torch.where(b, eta * 1.2, eta * 0.5)
        log(x)
    return x, energy, grad


def _projected_adam(energy_fn, x, steps, lr, log):
    """Adam on the raw coordinates, every row renormalised after each step (see
    :func:`minimise`); returns the points, their energies and tangent gradients."""
    param = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([param], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        energy_fn(F.normalize(param, dim=-1)).sum().backward()
        opt.step()
        with torch.no_grad():
            param.copy_(F.normalize(param, dim=-1))
        log(param.detach())
    x = param.detach()
    energy, g = _value_and_grad(energy_fn, x, normalise=True)
    return x, energy, _tangent(x, g)


# -------------------- convergence checks
def gram_gap(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    r"""Largest gap between sorted inner products $x_i^\top x_j$ ($i<j$) of two sets.

    Not a distance between configurations (that is :func:`config_distance`): a cheap
    invariant that is 0 for congruent configurations, used to follow convergence at
    every step. For a regular simplex target, where all inner products are $-1/(M-1)$, 0
    also means congruent.

    Args:
        x: ``(M, d)`` or ``(R, M, d)``; reference: ``(M, d)``.

    Returns:
        A scalar or shape ``(R,)``.
    """
    x, reference = _check_points(x), _check_points(reference, "reference")
    if x.shape[-2] != reference.shape[-2]:
        raise ValueError(
            f"x and reference need the same number of points, got "
            f"{x.shape[-2]} and {reference.shape[-2]}"
        )
    i, j = torch.triu_indices(x.shape[-2], x.shape[-2], offset=1)

    def entries(y: torch.Tensor) -> torch.Tensor:
        y = F.normalize(y.detach().double(), dim=-1)
        return (y @ y.transpose(-1, -2))[..., i, j].sort(dim=-1).values

    return (entries(x) - entries(reference)).abs().amax(dim=-1)


def steps_to_tolerance(values, tol: float):
    """First step after which ``values`` stays at or below ``tol`` (``None`` if never).

    Args:
        values: a sequence of numbers, or a ``(steps, R)`` tensor (one column per
        restart).

    Returns: An int or ``None``; for a ``(steps, R)`` tensor, a list of those, one per
        restart.
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    v = torch.as_tensor(values, dtype=torch.float64)
    column = v.ndim == 1
    v = v[:, None] if column else v
    bad = ~(v <= tol)  # NaN counts as bad
    steps = v.shape[0]
    idx = torch.arange(steps)[:, None].expand_as(v)
    last_bad = torch.where(bad, idx, torch.full_like(idx, -1)).amax(dim=0)
    out = [None if int(k) == steps - 1 else int(k) + 1 for k in last_bad]
    return out[0] if column else out


# -------------------- who pushes whom
def cross_hessian_blocks(
    loss_fn: LossFn, u: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    r"""Mixed second derivatives $H_{ki} = \partial^2 L / \partial u_k \partial v_i$.

    Block $(k, i)$ says how moving the positive $v_i$ changes the force on anchor $u_k$;
    a loss whose views talk only through the alignment term has $H_{ki} = 0$ for $k \ne
    i$.

    Args:
        u, v: the two views, ``(M, d)``.

    Returns:
        Shape ``(M, M, d, d)``.
    """
    _check_points(u, "u")
    if u.shape != v.shape or u.ndim != 2:
        raise ValueError(
            f"u and v must have the same (M, d) shape, got {tuple(u.shape)}, "
            f"{tuple(v.shape)}"
        )
    m, d = u.shape
    u = u.detach().double().requires_grad_(True)
    v = v.detach().double().requires_grad_(True)
    grad_u = torch.autograd.grad(loss_fn(u, v), u, create_graph=True)[0].reshape(-1)
    # each (M, d)
    rows = [torch.autograd.grad(g, v, retain_graph=True)[0] for g in grad_u]
    h = torch.stack(rows).reshape(m, d, m, d)  # [k, a, i, b]
    return h.permute(0, 2, 1, 3).detach()


def energy_part_gradient(
    loss_fn: LossFn, u: torch.Tensor, v: torch.Tensor, tau: float
) -> torch.Tensor:
    r"""Gradient on the anchors $U$ of the loss *minus its alignment term*.

    InfoNCE, DCL and DHEL share the alignment term $-\frac{1}{M\tau}\sum_i \hat
    u_i^\top\hat v_i$; what is left is the energy part. For a decoupled loss its
    gradient cannot depend on $V$.

    Returns:
        $\nabla_U$, shape ``(M, d)``.
    """
    _check_points(u, "u")
    if u.shape != v.shape:
        raise ValueError(
            f"u and v must have the same shape, got {tuple(u.shape)}, {tuple(v.shape)}"
        )
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    u = u.detach().double().requires_grad_(True)
    v = v.detach().double()
    align = (F.normalize(u, dim=1) * F.normalize(v, dim=1)).sum(1).mean() / tau
    return torch.autograd.grad(loss_fn(u, v) + align, u)[0]


# -------------------- expected losses
def noisy_cap_pairs(
    n: int,
    dim: int,
    concentration: float = 1.5,
    noise: float = 0.3,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Positive pairs from a fixed, *non-uniform* distribution on $S^{d-1}$.

    Anchors $u = \mathrm{normalise}(\kappa e_1 + g)$ (a soft cap around $e_1$),
    positives $v = \mathrm{normalise}(u + \sigma g')$, $g, g' \sim \mathcal N(0, I_d)$,
    i.i.d. pairs.

    Returns:
        ``u, v``, each ``(n, dim)``.
    """
    if n < 1 or dim < 2 or concentration < 0 or noise < 0:
        raise ValueError(
            f"need n >= 1, dim >= 2, concentration >= 0, noise >= 0; got "
            f"n={n}, dim={dim}, concentration={concentration}, noise={noise}"
        )
    g = torch.randn(n, dim, generator=generator)
    g[:, 0] += concentration
    u = F.normalize(g, dim=1)
    v = F.normalize(u + noise * torch.randn(n, dim, generator=generator), dim=1)
    return u, v


def monte_carlo_loss(
    loss_fn: LossFn,
    batch_size: int,
    repetitions: int,
    dim: int,
    generator: torch.Generator,
    **pair_kwargs,
) -> tuple[float, float]:
    r"""Estimate $\mathbb{E}[L_M]$, the expected loss of ``batch_size`` pairs.

    Draws ``repetitions`` batches from :func:`noisy_cap_pairs`.

    Returns:
        The mean and its standard error $s/\sqrt{R}$.
    """
    if batch_size < 2 or repetitions < 2:
        raise ValueError(
            f"need batch_size >= 2 and repetitions >= 2, got {batch_size}, "
            f"{repetitions}"
        )
    values = torch.empty(repetitions, dtype=torch.float64)
    with torch.no_grad():
        for r in range(repetitions):
            u, v = noisy_cap_pairs(batch_size, dim, generator=generator, **pair_kwargs)
            values[r] = float(loss_fn(u, v))
    return float(values.mean()), float(values.std() / repetitions**0.5)


def class_positive_energy(
    loss_fn: LossFn, num_classes: int, per_class: int
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    r"""Free points whose positives are the *other* points of their class.

    $M$ = ``num_classes`` $\times$ ``per_class`` points; the positives of $u_i$ are its
    class-mates (an augmentation graph), and the energy is $\frac{1}{P-1}\sum_s L(U,
    U_{\pi_s})$ over the ``per_class - 1`` within-class cyclic shifts $\pi_s$. Perfect
    alignment now means class collapse, perfect uniformity spreading all $M$ points: the
    two terms compete.

    Returns:
        ``(energy, labels)``: ``energy`` maps ``(R, M, d) -> (R,)`` (pass it to
        :func:`minimise`), ``labels`` has shape ``(M,)``.
    """
    if num_classes < 1 or per_class < 2:
        raise ValueError(
            f"need num_classes >= 1 and per_class >= 2, got {num_classes}, {per_class}"
        )
    m = num_classes * per_class
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    first = torch.arange(m) - torch.arange(m) % per_class  # first index of each class
    shifts = [
        first + (torch.arange(m) % per_class + s) % per_class
        for s in range(1, per_class)
    ]

    def energy(x: torch.Tensor) -> torch.Tensor:
        x = _check_points(x).reshape(-1, m, x.shape[-1])
        return torch.stack(
            [sum(loss_fn(xr, xr[p]) for p in shifts) / len(shifts) for xr in x]
        )

    return energy, labels


# -------------------- known configurations
def regular_simplex(m: int, d: int) -> torch.Tensor:
    r"""$M \le d+1$ vertices of a regular simplex: $x_i^\top x_j = -1/(M-1)$, $i \ne j$.

    Built by centring the standard basis of $\mathbb{R}^M$, expressing it in an
    orthonormal basis of the hyperplane $\sum_k y_k = 0$, then padding with zeros to
    $d$.

    Returns:
        Shape ``(m, d)``, float64.
    """
    if m < 1 or m > d + 1:
        raise ValueError(
            f"a regular simplex with m={m} vertices needs 1 <= m <= d+1 = {d + 1}"
        )
    if m == 1:
        return F.pad(torch.ones(1, 1, dtype=torch.float64), (0, d - 1))
    centred = torch.eye(m, dtype=torch.float64) - 1.0 / m
    _, _, vh = torch.linalg.svd(centred)
    coords = centred @ vh[: m - 1].T  # (m, m-1)
    coords = coords / coords.norm(dim=1, keepdim=True)
    return F.pad(coords, (0, d - (m - 1)))


def cross_polytope(d: int) -> torch.Tensor:
    r"""The $2d$ points $\pm e_1, \dots, \pm e_d$, shape ``(2d, d)``."""
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    eye = torch.eye(d, dtype=torch.float64)
    return torch.cat([eye, -eye])


def octahedron() -> torch.Tensor:
    """The regular octahedron, 6 points on $S^2$ (Thomson minimiser for M=6)."""
    return cross_polytope(3)


def bipyramid(k: int = 3) -> torch.Tensor:
    r"""The $k$-gonal bipyramid: poles $\pm e_3$ and a regular $k$-gon on the equator.

    $k=3$ ($M=5$) and $k=5$ ($M=7$) are Thomson minimisers. Shape ``(k + 2, 3)``.
    """
    if k < 3:
        raise ValueError(f"k must be >= 3, got {k}")
    ang = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    ring = torch.stack(
        [torch.cos(ang), torch.sin(ang), torch.zeros(k, dtype=torch.float64)], dim=1
    )
    poles = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]], dtype=torch.float64)
    return torch.cat([poles, ring])


def icosahedron() -> torch.Tensor:
    r"""The regular icosahedron, 12 points on $S^2$ (Thomson minimiser for M=12)."""
    phi = (1 + math.sqrt(5)) / 2
    pts = []
    for a in (-1.0, 1.0):
        for b in (-phi, phi):
            pts += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    x = torch.tensor(pts, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


# Minimal Riesz s=1 energies on S^2 (Thomson problem) as published -- SUMS over the
# pairs
# i<j, as in the table of the Wikipedia article "Thomson problem" (values from Wales et
# al.,
# Cambridge Cluster Database). kernel_energy returns the MEAN: divide by comb(M, 2) to
# compare.
THOMSON_ENERGIES: dict[int, float] = {
    2: 0.500000000,
    3: 1.732050808,
    4: 3.674234614,
    5: 6.474691495,
    6: 9.985281374,
    7: 14.452977414,
    8: 19.675287861,
    9: 25.759986531,
    10: 32.716949460,
    11: 40.596450510,
    12: 49.165253058,
}


# -------------------- Thomson's problem
def coulomb_energy(x: torch.Tensor) -> torch.Tensor:
    r"""Mean Coulomb energy: the Riesz kernel with $s = 1$ of :mod:`cl_lib.kernels`.

    Args:
        x: points, ``(M, d)`` or ``(R, M, d)``.

    Returns:
        A scalar, or shape ``(R,)``: the **mean** of $1/\lVert x_i - x_j\rVert$ over
        the pairs $i < j$.
    """
    return kernel_energy(x, "riesz", s=1.0)


def coulomb_sum(x: torch.Tensor) -> float:
    r"""Coulomb energy as Thomson's table states it: the **sum** over the pairs $i<j$.

    Args:
        x: one configuration, ``(M, d)``.

    Returns:
        A float, $\binom{M}{2}$ times :func:`coulomb_energy`; compare with
        :data:`THOMSON_ENERGIES`.
    """
    x = _check_points(x)
    if x.ndim != 2:
        raise ValueError(f"coulomb_sum takes one configuration (M, d), got {x.ndim}-D")
    return float(coulomb_energy(x)) * math.comb(x.shape[-2], 2)


def square_antiprism(h: float) -> torch.Tensor:
    r"""Eight points on $S^2$: two squares at heights $\pm h$, turned by 45 degrees.

    Point $k$ sits at azimuth $k \cdot 45^\circ$, at height $+h$ for even $k$ and $-h$
    for odd $k$ (Thomson's minimiser for $M = 8$ is such an antiprism).

    Args:
        h: height of the squares, ``0 < h < 1``.

    Returns:
        Shape ``(8, 3)``, float64, unit rows.
    """
    if not 0 < h < 1:
        raise ValueError(f"need 0 < h < 1, got {h}")
    k = torch.arange(8)
    ang = k.double() * (math.pi / 4)
    z = torch.where(k % 2 == 0, h, -h).double()
    rho = math.sqrt(1 - h * h)
    return torch.stack([rho * torch.cos(ang), rho * torch.sin(ang), z], dim=1)


# -------------------- shape fingerprints
def inner_product_counts(x: torch.Tensor, decimals: int = 3) -> dict[float, int]:
    r"""The multiset of rounded inner products $x_i^\top x_j$, $i < j$.

    A fingerprint invariant under rotations, reflections and relabellings: congruent
    configurations have the same counts.

    Args:
        x: one configuration, ``(M, d)``.
        decimals: rounding of the inner products.

    Returns:
        ``{value: count}`` in increasing order of value; the counts sum to
        $\binom{M}{2}$.
    """
    x = _check_points(x)
    if x.ndim != 2:
        raise ValueError(f"expected one configuration (M, d), got {x.ndim}-D")
    i, j = torch.triu_indices(len(x), len(x), offset=1)
    values, counts = np.unique(
        np.round((x[i] * x[j]).sum(1).detach().cpu().numpy(), decimals) + 0.0,
        return_counts=True,
    )
    return {float(v): int(c) for v, c in zip(values, counts)}


def is_square_pyramid(x: torch.Tensor, tol: float = 1e-3) -> bool:
    r"""Whether five points form a square pyramid (up to ``tol``).

    Four of the points are coplanar and form a square (four equal sides, diagonals
    $\sqrt2$ times longer); the fifth (the apex) is equidistant from them.

    Args:
        x: five points, ``(5, d)``.

    Returns:
        A bool.
    """
    x = _check_points(x)
    if x.shape != (5, x.shape[-1]) or x.ndim != 2:
        raise ValueError(f"expected five points (5, d), got {tuple(x.shape)}")
    subsets = [[j for j in range(5) if j != k] for k in range(5)]
    flat = [float(torch.linalg.svdvals(x[s] - x[s].mean(0))[-1]) for s in subsets]
    k = int(np.argmin(flat))
    sides = torch.pdist(x[subsets[k]]).sort().values
    return bool(
        flat[k] < tol
        and float(sides[:4].std()) < tol
        and abs(float(sides[4:].mean() / sides[:4].mean()) - math.sqrt(2)) < tol
        and float((x[subsets[k]] - x[k]).norm(dim=1).std()) < tol
    )


def five_point_shape(x: torch.Tensor, tol: float = 1e-3) -> str:
    """Name the shape of five points on $S^2$.

    Args:
        x: five points, ``(5, 3)``.
        tol: tolerance of :func:`config_distance` and :func:`is_square_pyramid`.

    Returns:
        ``"bipyramid"`` (the triangular bipyramid, up to rotation and relabelling),
        ``"square pyramid"`` or ``"other"``.
    """
    if config_distance(x, bipyramid(3)) < tol:
        return "bipyramid"
    return "square pyramid" if is_square_pyramid(x, tol) else "other"


# -------------------- the configuration distance
def _procrustes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthogonal Q minimising ||a Q - b||_F (Schoenemann 1966): U V^T of svd(a^T b)."""
    u, _, vt = np.linalg.svd(a.T @ b)
    return u @ vt


def _anchor_frames(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Candidate orthogonal maps from point correspondences guessed from inner products.

    Pick in ``a`` a greedy, well-spread set of anchor points; map the first anchor to
    each point of ``b`` in turn, then choose every next anchor's partner as the unused
    point of ``b`` whose inner products with the partners so far best match those of
    ``a``. Procrustes on the anchors gives one candidate map per first partner.
    """
    m, d = a.shape
    anchors = [0]
    while len(anchors) < min(d, m):
        q, _ = np.linalg.qr(a[anchors].T)
        resid = np.linalg.norm(a - (a @ q) @ q.T, axis=1)
        resid[anchors] = -1.0
        anchors.append(int(np.argmax(resid)))
    ga, gb = a @ a.T, b @ b.T
    frames = []
    for first in range(m):
        partners = [first]
        for k in anchors[1:]:
            want = ga[k, anchors[: len(partners)]]
            cost = np.abs(gb[:, partners] - want).sum(axis=1)
            cost[partners] = np.inf
            partners.append(int(np.argmin(cost)))
        frames.append(_procrustes(a[anchors], b[partners]))
    return frames


def config_distance(
    a: torch.Tensor, b: torch.Tensor, n_random: int = 32, iters: int = 30, seed: int = 0
) -> float:
    r"""Distance between two configurations up to an orthogonal map and a relabelling:

    $$D(A, B) = \min_{Q \in O(d),\, \pi \in S_M} \Big(\tfrac1M \sum_i
      \lVert Q^\top a_i - b_{\pi(i)} \rVert^2\Big)^{1/2}.$$

    Alternates the best permutation for fixed $Q$ (Hungarian algorithm) and the best $Q$
    for a fixed permutation (orthogonal Procrustes) from several starts: maps guessed by
    matching inner products of anchor points, the identity and ``n_random`` random
    orthogonal maps. The result is an upper bound of $D$, 0 (to round-off) for congruent
    configurations in practice. Energies are invariant under exactly this group.

    Args:
        a, b: configurations, ``(M, d)`` each.

    Returns:
        A float.
    """
    from scipy.optimize import linear_sum_assignment

    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            raise ValueError(f"{name} must be a 2-D torch.Tensor (M, d)")
    if a.shape != b.shape:
        raise ValueError(
            f"configurations must have the same shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    A = a.detach().double().cpu().numpy()
    B = b.detach().double().cpu().numpy()
    m, d = A.shape
    rng = np.random.default_rng(seed)
    starts = _anchor_frames(A, B) + [np.eye(d)]
    for _ in range(n_random):
        q, r = np.linalg.qr(rng.standard_normal((d, d)))
        starts.append(q * np.sign(np.diag(r)))
    best = np.inf
    for q in starts:
        prev = np.inf
        for _ in range(iters):
            aq = A @ q
            cost = ((aq[:, None, :] - B[None, :, :]) ** 2).sum(-1)
            rows, cols = linear_sum_assignment(cost)
            q = _procrustes(A[rows], B[cols])
            err = float(((A[rows] @ q - B[cols]) ** 2).sum())
            if err >= prev - 1e-15:
                break
            prev = err
        best = min(best, prev)
        if best < 1e-20:
            break
    return math.sqrt(max(best, 0.0) / m)


# -------------------- chapter 5: KCL at the class level
def kcl_class_level_run(
    gamma: float,
    t: float,
    seed: int,
    num_classes: int = 8,
    per_class: int = 4,
    dim: int = 4,
    steps: int = 200,
) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """Gaussian KCL on free points whose positives are their class-mates
    (:func:`class_positive_energy`), minimised by Adam (one restart, lr 0.05).

    Args:
        gamma: KCL's energy weight; t: the Gaussian kernel's parameter.
        seed: the start's seed; num_classes, per_class, dim: the problem's size;
        steps: Adam steps.

    Returns:
        ``(within-class alignment E|u_i - u_j|^2 over class-mates, uniformity
        (Wang & Isola, t = 2), the points (N, dim), their labels (N,))``.
    """
    from cl_lib import losses, metrics

    energy, labels = class_positive_energy(
        lambda a, b: losses.kcl_loss(a, b, kernel="gaussian", gamma=gamma, t=t),
        num_classes,
        per_class,
    )
    u = minimise(
        energy,
        num_classes * per_class,
        dim,
        restarts=1,
        steps=steps,
        lr=0.05,
        seed=seed,
        method="adam",
    ).best
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(
        len(labels), dtype=torch.bool
    )
    alignment = float(torch.cdist(u, u).pow(2)[same].mean())
    return alignment, metrics.uniformity(u), u, labels


def kcl_tradeoff(gamma: float, t: float, seeds=(0, 1)) -> tuple[float, float]:
    """:func:`kcl_class_level_run`'s (alignment, uniformity), averaged over seeds."""
    runs = [kcl_class_level_run(gamma, t, s)[:2] for s in seeds]
    return float(np.mean([r[0] for r in runs])), float(np.mean([r[1] for r in runs]))
