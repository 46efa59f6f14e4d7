"""Small experiments behind chapters 4 (DHEL) and 5 (KCL): free points on the sphere.

Koromilas et al. (ICML 2024, arXiv 2405.18045) read contrastive losses as *hyperspherical
energy minimisation* (HEM): an alignment term pulls the two views of a sample together and an
energy term spreads the samples over the sphere $\\mathbb{S}^{d-1}$. These helpers study the
losses with no encoder in the way -- the embeddings themselves are the parameters -- so that
what we see is the loss, not the network:

- :func:`optimise_free_points` -- gradient descent on two tuples $U, V$ of free points, with a
  trace of loss, alignment and distance to a target configuration;
- :func:`cross_hessian_blocks` -- the mixed second derivatives $\\partial^2 L / \\partial u_k
  \\partial v_i$, i.e. how the positive view $v_i$ steers the force on anchor $u_k$;
- :func:`noisy_cap_pairs` + :func:`monte_carlo_loss` -- Monte-Carlo estimates of the expected
  mini-batch loss $\\mathbb{E}[L_M]$ on a fixed, non-uniform distribution of positive pairs;
- :func:`optimise_class_points` -- free points whose positives are *other* points of the same
  class (an augmentation graph), where alignment and uniformity genuinely compete.

Losses are passed as callables ``loss_fn(z1, z2) -> scalar`` (e.g. from :mod:`cl_lib.losses`),
so this module depends on no particular loss implementation.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_points(z: torch.Tensor, name: str) -> None:
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] < 2 or z.shape[1] < 1:
        raise ValueError(f"{name} must be a (M, d) tensor with M >= 2, got "
                         f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")


def sorted_gram_gap(z: torch.Tensor, reference: torch.Tensor) -> float:
    r"""Rotation- and permutation-invariant gap between two point sets on the sphere.

    Compares the sorted off-diagonal Gram entries $\{\hat z_i^\top \hat z_j\}_{i<j}$ of the
    normalised rows: $\max_k |s_k(z) - s_k(\mathrm{ref})|$. Zero for congruent configurations
    (a necessary condition; for the simplex, where all entries equal $-1/(M-1)$, it is also
    sufficient).
    """
    _check_points(z, "z")
    _check_points(reference, "reference")
    if z.shape[0] != reference.shape[0]:
        raise ValueError(f"z and reference need the same number of points, got "
                         f"{z.shape[0]} and {reference.shape[0]}")
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1)

    def entries(x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x.detach().double(), dim=1)
        return (x @ x.T)[iu[0], iu[1]].sort().values

    return float((entries(z) - entries(reference)).abs().max())


def optimise_free_points(loss_fn: LossFn, u0: torch.Tensor, v0: torch.Tensor, steps: int,
                         lr: float = 0.05, target: torch.Tensor | None = None,
                         optimizer: str = "adam") -> dict:
    r"""Minimise ``loss_fn(U, V)`` over free points $U, V \in \mathbb{R}^{M\times d}$.

    The loss normalises its inputs, so only directions matter; we renormalise the parameters
    after every step (projected gradient descent on $(\mathbb{S}^{d-1})^{2M}$) so that the
    step size keeps its meaning.

    Returns a dict with per-step lists ``loss``, ``alignment`` ($\frac1M\sum_i\|u_i-v_i\|^2$)
    and, when ``target`` is given, ``gap`` (:func:`sorted_gram_gap` of $U$ to ``target``), plus
    the final unit-norm ``u`` and ``v``.
    """
    _check_points(u0, "u0")
    _check_points(v0, "v0")
    if u0.shape != v0.shape:
        raise ValueError(f"u0 and v0 must have the same shape, got {tuple(u0.shape)} and "
                         f"{tuple(v0.shape)}")
    if steps < 1 or lr <= 0:
        raise ValueError(f"need steps >= 1 and lr > 0, got steps={steps}, lr={lr}")
    u = F.normalize(u0.detach().clone(), dim=1).requires_grad_(True)
    v = F.normalize(v0.detach().clone(), dim=1).requires_grad_(True)
    if optimizer == "adam":
        opt = torch.optim.Adam([u, v], lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD([u, v], lr=lr)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    trace: dict = {"loss": [], "alignment": [], "gap": []}
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(u, v)
        loss.backward()
        opt.step()
        with torch.no_grad():
            u.copy_(F.normalize(u, dim=1))
            v.copy_(F.normalize(v, dim=1))
            trace["loss"].append(float(loss))
            trace["alignment"].append(float((u - v).pow(2).sum(1).mean()))
            if target is not None:
                trace["gap"].append(sorted_gram_gap(u, target))
    trace["u"], trace["v"] = u.detach(), v.detach()
    return trace


def steps_to_tolerance(values: list[float], tol: float) -> int | None:
    """First step after which ``values`` stays at or below ``tol`` (``None`` if never)."""
    if tol <= 0:
        raise ValueError(f"tol must be positive, got {tol}")
    last_bad = -1
    for k, x in enumerate(values):
        if not x <= tol:  # also catches NaN
            last_bad = k
    return None if last_bad == len(values) - 1 else last_bad + 1


def cross_hessian_blocks(loss_fn: LossFn, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""Mixed second derivatives of a two-view loss, one $d\times d$ block per pair $(k, i)$.

    Returns ``H`` of shape ``(M, M, d, d)`` with $H_{k i} = \partial^2 L / \partial u_k
    \partial v_i$. Block $(k, i)$ says how moving the positive $v_i$ changes the gradient
    (the force) on anchor $u_k$: a loss whose views talk only through the alignment term has
    $H_{ki} = 0$ for $k \ne i$.
    """
    _check_points(u, "u")
    if u.shape != v.shape:
        raise ValueError(f"u and v must have the same shape, got {tuple(u.shape)}, {tuple(v.shape)}")
    m, d = u.shape
    u = u.detach().double().requires_grad_(True)
    v = v.detach().double().requires_grad_(True)
    grad_u = torch.autograd.grad(loss_fn(u, v), u, create_graph=True)[0].reshape(-1)
    rows = [torch.autograd.grad(g, v, retain_graph=True)[0] for g in grad_u]  # each (M, d)
    h = torch.stack(rows).reshape(m, d, m, d)  # [k, a, i, b]
    return h.permute(0, 2, 1, 3).detach()


def noisy_cap_pairs(n: int, dim: int, concentration: float = 1.5, noise: float = 0.3,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Positive pairs from a fixed, *non-uniform* distribution on $\mathbb{S}^{d-1}$.

    Anchors $u = \mathrm{normalise}(\kappa e_1 + g)$, $g\sim\mathcal N(0, I_d)$ -- a smooth cap
    around $e_1$ (larger $\kappa$, tighter cap); positives $v = \mathrm{normalise}(u + \sigma
    g')$ -- an imperfect "augmentation". Pairs are i.i.d., so every mini-batch is an i.i.d.
    sample of this one distribution.
    """
    if n < 1 or dim < 2 or concentration < 0 or noise < 0:
        raise ValueError(f"need n >= 1, dim >= 2, concentration >= 0, noise >= 0; got "
                         f"n={n}, dim={dim}, concentration={concentration}, noise={noise}")
    g = torch.randn(n, dim, generator=generator)
    g[:, 0] += concentration
    u = F.normalize(g, dim=1)
    v = F.normalize(u + noise * torch.randn(n, dim, generator=generator), dim=1)
    return u, v


def monte_carlo_loss(loss_fn: LossFn, batch_size: int, repetitions: int, dim: int,
                     generator: torch.Generator, **pair_kwargs) -> tuple[float, float]:
    r"""Estimate $\mathbb{E}[L_M]$, the expected loss of a mini-batch of ``batch_size`` pairs.

    Draws ``repetitions`` independent batches from :func:`noisy_cap_pairs` and returns the
    mean and its standard error $s/\sqrt{R}$.
    """
    if batch_size < 2 or repetitions < 2:
        raise ValueError(f"need batch_size >= 2 and repetitions >= 2, got {batch_size}, {repetitions}")
    values = torch.empty(repetitions, dtype=torch.float64)
    with torch.no_grad():
        for r in range(repetitions):
            u, v = noisy_cap_pairs(batch_size, dim, generator=generator, **pair_kwargs)
            values[r] = float(loss_fn(u, v))
    return float(values.mean()), float(values.std() / repetitions ** 0.5)


def optimise_class_points(loss_fn: LossFn, num_classes: int, per_class: int, dim: int,
                          steps: int, lr: float = 0.05, seed: int = 0) -> dict:
    r"""Free points whose positive pairs are *different* points of the same class.

    $M$ = ``num_classes`` $\times$ ``per_class`` free points $u_i$. The positives of $u_i$ are
    its class-mates (an augmentation graph): the loss averaged over the ``per_class - 1``
    within-class cyclic shifts $\pi_s$ is $\frac{1}{P-1}\sum_s L(U, U_{\pi_s})$. Perfect
    alignment now means *class collapse* ($K$ points), perfect uniformity means spreading all
    $M$ points: the two terms compete, and the loss's weights decide the outcome.

    Returns the final points ``u`` (unit norm), their ``labels``, the within-class
    ``alignment`` $\mathbb{E}_{i\sim j}\|u_i-u_j\|^2$ and the ``uniformity``
    $\log\mathbb{E}_{i\ne j} e^{-2\|u_i-u_j\|^2}$ (Wang & Isola, 2020; lower = more uniform).
    """
    if num_classes < 1 or per_class < 2 or dim < 2 or steps < 1:
        raise ValueError(f"need num_classes >= 1, per_class >= 2, dim >= 2, steps >= 1; got "
                         f"{num_classes}, {per_class}, {dim}, {steps}")
    gen = torch.Generator().manual_seed(seed)
    m = num_classes * per_class
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    base = torch.arange(m) - torch.arange(m) % per_class  # first index of each point's class
    shifts = [base + (torch.arange(m) % per_class + s) % per_class for s in range(1, per_class)]
    u = F.normalize(torch.randn(m, dim, generator=gen, dtype=torch.float64), dim=1)
    u.requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(loss_fn(u, u[p]) for p in shifts) / len(shifts)
        loss.backward()
        opt.step()
        with torch.no_grad():
            u.copy_(F.normalize(u, dim=1))
    u = u.detach()
    sq = torch.cdist(u, u).pow(2)
    same = labels[:, None] == labels[None, :]
    off = ~torch.eye(m, dtype=torch.bool)
    return {"u": u, "labels": labels,
            "alignment": float(sq[same & off].mean()),
            "uniformity": float(torch.exp(-2 * sq[off]).mean().log())}


def energy_part_gradient(loss_fn: LossFn, u: torch.Tensor, v: torch.Tensor,
                         tau: float) -> torch.Tensor:
    r"""Gradient on the anchors $U$ of the loss *minus its alignment term*.

    InfoNCE, DCL and DHEL all contain the same alignment term $-\frac{1}{M\tau}\sum_i
    \hat u_i^\top \hat v_i$ (InfoNCE and DCL count each pair twice, once per direction, and
    average over $2M$ rows). What is left, $L + \frac{1}{M\tau}\sum_i \hat u_i^\top\hat v_i$, is
    the uniformity (energy) part; this returns its gradient $\nabla_U$, shape ``(M, d)``.
    For a decoupled loss it cannot depend on the positives $V$.
    """
    _check_points(u, "u")
    if u.shape != v.shape:
        raise ValueError(f"u and v must have the same shape, got {tuple(u.shape)}, {tuple(v.shape)}")
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    u = u.detach().double().requires_grad_(True)
    v = v.detach().double()
    align = (F.normalize(u, dim=1) * F.normalize(v, dim=1)).sum(1).mean() / tau
    return torch.autograd.grad(loss_fn(u, v) + align, u)[0]
