r"""Points on the sphere $S^{d-1}$: energies, energy minimisers and known optimal configurations.

Hyperspherical energy minimisation (HEM): place $M$ points $x_1,\dots,x_M$ on $S^{d-1}$ so
as to minimise a pairwise energy $E(X) = \sum_{i<j} k(\lVert x_i - x_j \rVert)$ with a
repulsive kernel $k$. For the Riesz kernel $k(r) = r^{-1}$ on $S^2$ this is J. J. Thomson's
(1904) problem of $M$ electrons on a sphere. Koromilas et al. (2024) relate the mini-batch
minimisers of InfoNCE-type losses to perfect alignment plus a hyperspherical energy minimiser
(our paraphrase; the exact statement was not available). Chapter 3 checks this over free
points and finds that the energy is loss-specific: the per-point log-sum-exp energy of
:func:`logsumexp_energy`, which for some $(M, d, \tau)$ has other minimisers than the plain
Gaussian energy.

Contents, top to bottom:

- :func:`uniform_sphere` -- i.i.d. uniform points (normalised Gaussians);
- energies, batched over a leading restart dimension: :func:`riesz_energy`,
  :func:`log_energy`, :func:`gaussian_energy`, :func:`imq_energy`, and
  :func:`logsumexp_energy` (what InfoNCE, DCL and DHEL become under perfect alignment);
- :func:`aligned_loss_energy`, :func:`pair_loss_energy` -- a contrastive loss seen as an energy;
- :func:`minimise_energy` -- many random restarts at once, Riemannian gradient descent;
- known configurations: :func:`regular_simplex`, :func:`cross_polytope`, :func:`octahedron`,
  :func:`bipyramid`, :func:`icosahedron`, and :data:`THOMSON_ENERGIES` (published minima);
- :func:`config_distance` -- distance between two configurations up to an orthogonal map
  and a relabelling of the points.

Every energy is a *sum over unordered pairs* $i<j$ (the Thomson convention); divide by
$\binom{M}{2}$ for the mean (e.g. Wang & Isola's uniformity is $\log$ of the mean Gaussian energy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = ["uniform_sphere", "pairwise_distances", "riesz_energy", "log_energy", "gaussian_energy",
           "imq_energy", "logsumexp_energy", "aligned_loss_energy", "pair_loss_energy", "minimise_energy", "MinimiseResult", "regular_simplex", "cross_polytope",
           "octahedron", "bipyramid", "icosahedron", "THOMSON_ENERGIES", "config_distance"]


# --------------------------------------------------------------------------- sampling
def uniform_sphere(m: int, d: int, generator: torch.Generator | None = None,
                   restarts: int | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""$M$ i.i.d. points uniform on $S^{d-1} \subset \mathbb{R}^d$: normalised standard Gaussians
    (the Gaussian is rotation invariant, so its direction is uniform).

    Returns shape ``(m, d)``, or ``(restarts, m, d)`` when ``restarts`` is given.
    """
    if m < 1 or d < 1:
        raise ValueError(f"need m >= 1 points in d >= 1 dimensions, got m={m}, d={d}")
    if restarts is not None and restarts < 1:
        raise ValueError(f"restarts must be >= 1 or None, got {restarts}")
    shape = (m, d) if restarts is None else (restarts, m, d)
    x = torch.randn(shape, generator=generator, dtype=dtype)
    return x / x.norm(dim=-1, keepdim=True)


# --------------------------------------------------------------------------- energies
def _check_points(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"points must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3):
        raise ValueError(f"points must have shape (M, d) or (R, M, d), got {tuple(x.shape)}")
    if x.shape[-2] < 2:
        raise ValueError(f"an energy needs at least 2 points, got M={x.shape[-2]}")
    return x


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    r"""Euclidean distances $\lVert x_i - x_j \rVert$ over the pairs $i<j$, shape ``(..., M(M-1)/2)``.

    Computed from the differences (not from the Gram matrix) so that close pairs keep full
    relative precision -- the closed-form checks go to $10^{-9}$.
    """
    x = _check_points(x)
    i, j = torch.triu_indices(x.shape[-2], x.shape[-2], offset=1, device=x.device)
    return (x[..., i, :] - x[..., j, :]).norm(dim=-1)


def riesz_energy(x: torch.Tensor, s: float = 1.0) -> torch.Tensor:
    r"""Riesz $s$-energy $E_s(X) = \sum_{i<j} k_s(\lVert x_i - x_j\rVert)$ with

    $$k_s(r) = r^{-s} \; (s>0), \qquad k_0(r) = -\log r, \qquad k_s(r) = -r^{-s} \; (s<0),$$

    the standard convention (e.g. Hardin & Saff 2004; also the KCL code of Koromilas et al.)
    that makes every $k_s$ repulsive. $s=1$ on $S^2$ is the Thomson problem. Returns a scalar
    for ``(M, d)`` input and shape ``(R,)`` for ``(R, M, d)``.
    """
    r = pairwise_distances(x)
    if s > 0:
        k = r.pow(-s)
    elif s == 0:
        k = -torch.log(r)
    else:
        k = -r.pow(-s)
    return k.sum(dim=-1)


def log_energy(x: torch.Tensor) -> torch.Tensor:
    r"""Logarithmic energy $\sum_{i<j} -\log\lVert x_i - x_j\rVert$ (Riesz $s \to 0$; Smale's 7th problem on $S^2$)."""
    return riesz_energy(x, 0.0)


def gaussian_energy(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    r"""Gaussian-kernel energy $\sum_{i<j} e^{-t\lVert x_i - x_j\rVert^2}$.

    Wang & Isola's uniformity is $\log\big(E_t(X) / \binom{M}{2}\big)$; on the sphere
    $\lVert x_i - x_j\rVert^2 = 2 - 2x_i^\top x_j$, so this is also $e^{-2t}\sum_{i<j} e^{2t\,x_i^\top x_j}$,
    the exponential kernel of InfoNCE with temperature $\tau = 1/(2t)$.
    """
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    return torch.exp(-t * pairwise_distances(x).pow(2)).sum(dim=-1)


def imq_energy(x: torch.Tensor, c: float = 2.0) -> torch.Tensor:
    r"""Inverse multiquadric energy $\sum_{i<j} c / \sqrt{c^2 + \lVert x_i - x_j\rVert^2}$
    (the IMQ kernel of KCL, Koromilas et al. 2024, with their normalisation $k(0)=1$)."""
    if not c > 0:
        raise ValueError(f"c must be > 0, got {c}")
    return (c / torch.sqrt(c * c + pairwise_distances(x).pow(2))).sum(dim=-1)


def logsumexp_energy(x: torch.Tensor, tau: float = 0.5, positive_weight: float = 0.0,
                     negative_weight: float = 1.0) -> torch.Tensor:
    r"""The energy that InfoNCE-type losses minimise once the two views are perfectly aligned:

    $$E_\tau(X) = \frac1M \sum_{i=1}^M \log\Big( a\,e^{1/\tau} + b \sum_{j\neq i} e^{x_i^\top x_j/\tau}\Big),
      \qquad a = \text{positive\_weight},\ b = \text{negative\_weight}.$$

    With $U = V = X$ (see :func:`aligned_loss_energy`), each anchor's own positive contributes
    $e^{1/\tau}$ and every other sample appears once per view, so

    - InfoNCE / NT-Xent (2N-2 negatives): $\mathcal L(X, X) = E_\tau(X; a=1, b=2) - 1/\tau$;
    - DCL (positive removed from the denominator): $E_\tau(X; a=0, b=2) - 1/\tau$;
    - DHEL (negatives from one view only): $E_\tau(X; a=0, b=1) - 1/\tau$.

    Each summand is a log-sum-exp of the kernel $e^{x_i^\top x_j/\tau} = e^{1/\tau}
    e^{-\lVert x_i-x_j\rVert^2/(2\tau)}$, i.e. a Gaussian kernel with $t = 1/(2\tau)$; but the log is
    taken *per point*, so $E_\tau$ is not a pairwise-sum energy and its minimisers can differ
    from those of :func:`gaussian_energy` when the configuration is not vertex-transitive.
    """
    x = _check_points(x)
    if not tau > 0 or positive_weight < 0 or not negative_weight > 0:
        raise ValueError(f"need tau > 0, positive_weight >= 0, negative_weight > 0; got "
                         f"{tau}, {positive_weight}, {negative_weight}")
    m = x.shape[-2]
    logits = (x @ x.transpose(-1, -2) / tau).masked_fill(
        torch.eye(m, dtype=torch.bool, device=x.device), float("-inf"))
    per_point = torch.logsumexp(logits, dim=-1) + math.log(negative_weight)
    if positive_weight > 0:
        per_point = torch.logaddexp(per_point, torch.full_like(per_point, math.log(positive_weight) + 1 / tau))
    return per_point.mean(dim=-1)


def aligned_loss_energy(loss_fn: Callable[..., torch.Tensor], **loss_kwargs) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""Turn a pair loss $\mathcal L(Z_1, Z_2)$ into the energy $X \mapsto \mathcal L(X, X)$ of perfectly
    aligned views, batched over restarts: ``(R, M, d) -> (R,)`` (one loss call per restart)."""
    def energy(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([loss_fn(xr, xr, **loss_kwargs) for xr in _check_points(x).reshape(-1, *x.shape[-2:])])
    return energy


def pair_loss_energy(loss_fn: Callable[..., torch.Tensor], m: int, **loss_kwargs) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""Free two-view problem as an "energy" of $2M$ points: rows $0..M-1$ are $U$, rows $M..2M-1$
    are $V$, and the value is $\mathcal L(U, V)$. Pass it to :func:`minimise_energy` with ``2 * m``
    points to minimise a contrastive loss over free points on the sphere (no network)."""
    def energy(x: torch.Tensor) -> torch.Tensor:
        x = _check_points(x)
        if x.shape[-2] != 2 * m:
            raise ValueError(f"expected {2 * m} rows (U then V), got {x.shape[-2]}")
        return torch.stack([loss_fn(xr[:m], xr[m:], **loss_kwargs) for xr in x.reshape(-1, 2 * m, x.shape[-1])])
    return energy


# --------------------------------------------------------------------------- minimisation
@dataclass
class MinimiseResult:
    """What :func:`minimise_energy` returns. ``best`` is the lowest-energy configuration."""

    best: torch.Tensor          # (M, d)
    best_energy: float
    energies: torch.Tensor      # (R,) final energy of every restart
    configs: torch.Tensor       # (R, M, d) final configuration of every restart
    grad_norm: torch.Tensor     # (R,) norm of the Riemannian gradient at the end


def _tangent(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Project the Euclidean gradient onto the tangent space of the sphere at each point."""
    return g - (g * x).sum(dim=-1, keepdim=True) * x


def minimise_energy(energy_fn: Callable[[torch.Tensor], torch.Tensor], m: int, d: int,
                    restarts: int = 16, steps: int = 1000, lr: float = 0.05, seed: int = 0,
                    x0: torch.Tensor | None = None, tol: float = 1e-12) -> MinimiseResult:
    r"""Minimise ``energy_fn`` over $M$ points on $S^{d-1}$ from ``restarts`` random starts at once.

    Riemannian gradient descent: with $G = \nabla_X E$, the step is
    $X \leftarrow \operatorname{normalise}\big(X - \eta\,(G - \operatorname{diag}(G X^\top) X)\big)$
    -- the gradient projected onto the tangent space $T_{x_i}S^{d-1}$, followed by the retraction
    "divide every row by its norm". Each restart has its own step size $\eta$, which grows by
    $1.2\times$ after a step that lowers its energy and halves (the step is rejected) otherwise, so
    one ``lr`` works for kernels of very different scale. Restarts stop moving once the
    Riemannian gradient norm falls below ``tol``.

    ``energy_fn`` maps ``(R, M, d)`` to ``(R,)`` (every energy above does). Starting points are
    :func:`uniform_sphere` draws from ``seed``, or ``x0`` (shape ``(R, M, d)``) when given.
    """
    if m < 2 or d < 2:
        raise ValueError(f"need m >= 2 points on a sphere of dimension d >= 2, got m={m}, d={d}")
    if restarts < 1 or steps < 0 or not lr > 0:
        raise ValueError(f"need restarts >= 1, steps >= 0, lr > 0; got {restarts}, {steps}, {lr}")
    if x0 is None:
        x = uniform_sphere(m, d, torch.Generator().manual_seed(seed), restarts=restarts)
    else:
        if x0.shape != (restarts, m, d):
            raise ValueError(f"x0 must have shape {(restarts, m, d)}, got {tuple(x0.shape)}")
        x = x0.detach().double()
        x = x / x.norm(dim=-1, keepdim=True)

    def value_and_riemannian_grad(pts):
        pts = pts.detach().requires_grad_(True)
        e = energy_fn(pts)
        if e.shape != (pts.shape[0],):
            raise ValueError(f"energy_fn must map (R, M, d) to (R,), got output shape {tuple(e.shape)}")
        (g,) = torch.autograd.grad(e.sum(), pts)
        return e.detach(), _tangent(pts.detach(), g)

    eta = torch.full((restarts, 1, 1), float(lr), dtype=x.dtype)
    energy, grad = value_and_riemannian_grad(x)
    for _ in range(steps):
        gnorm = grad.flatten(1).norm(dim=1)
        active = gnorm > tol
        if not active.any():
            break
        trial = x - eta * grad
        trial = trial / trial.norm(dim=-1, keepdim=True)
        e_trial, g_trial = value_and_riemannian_grad(trial)
        better = (e_trial <= energy) & active
        b = better[:, None, None]
        x = torch.where(b, trial, x)
        energy = torch.where(better, e_trial, energy)
        grad = torch.where(b, g_trial, grad)
        eta = torch.where(b, eta * 1.2, eta * 0.5)
    best = int(torch.argmin(energy))
    return MinimiseResult(best=x[best].clone(), best_energy=float(energy[best]), energies=energy,
                          configs=x, grad_norm=grad.flatten(1).norm(dim=1))


# --------------------------------------------------------------------------- known configurations
def regular_simplex(m: int, d: int) -> torch.Tensor:
    r"""$M \le d+1$ vertices of a regular simplex inscribed in $S^{d-1}$: unit vectors with
    $x_i^\top x_j = -\frac{1}{M-1}$ for $i \ne j$ (so $\sum_i x_i = 0$).

    Built by centring the standard basis of $\mathbb{R}^M$, expressing it in an orthonormal
    basis of the hyperplane $\sum_k y_k = 0$ (dimension $M-1$), then padding with zeros to $d$.
    """
    if m < 1 or m > d + 1:
        raise ValueError(f"a regular simplex with m={m} vertices needs 1 <= m <= d+1 = {d + 1}")
    if m == 1:
        return torch.nn.functional.pad(torch.ones(1, 1, dtype=torch.float64), (0, d - 1))
    centred = torch.eye(m, dtype=torch.float64) - 1.0 / m
    # orthonormal basis of the hyperplane: the top m-1 right singular vectors
    _, _, vh = torch.linalg.svd(centred)
    coords = centred @ vh[: m - 1].T                     # (m, m-1)
    coords = coords / coords.norm(dim=1, keepdim=True)
    return torch.nn.functional.pad(coords, (0, d - (m - 1)))


def cross_polytope(d: int) -> torch.Tensor:
    r"""The $2d$ points $\pm e_1, \dots, \pm e_d$ (for $d=3$: the octahedron)."""
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    eye = torch.eye(d, dtype=torch.float64)
    return torch.cat([eye, -eye])


def octahedron() -> torch.Tensor:
    """The regular octahedron, 6 points on $S^2$ (Thomson minimiser for M=6)."""
    return cross_polytope(3)


def bipyramid(k: int = 3) -> torch.Tensor:
    r"""The $k$-gonal bipyramid on $S^2$: the poles $\pm e_3$ and a regular $k$-gon on the equator.
    $k=3$ (triangular, $M=5$) and $k=5$ (pentagonal, $M=7$) are the Thomson minimisers."""
    if k < 3:
        raise ValueError(f"k must be >= 3, got {k}")
    ang = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    ring = torch.stack([torch.cos(ang), torch.sin(ang), torch.zeros(k, dtype=torch.float64)], dim=1)
    poles = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]], dtype=torch.float64)
    return torch.cat([poles, ring])


def icosahedron() -> torch.Tensor:
    r"""The regular icosahedron, 12 points on $S^2$: cyclic permutations of $(0, \pm1, \pm\varphi)$,
    $\varphi = (1+\sqrt5)/2$, normalised (Thomson minimiser for M=12)."""
    phi = (1 + math.sqrt(5)) / 2
    pts = []
    for a in (-1.0, 1.0):
        for b in (-phi, phi):
            pts += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    x = torch.tensor(pts, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


# Minimal Riesz s=1 energies on S^2 (Thomson problem), as published in the table of the
# Wikipedia article "Thomson problem" (values from Wales et al., Cambridge Cluster Database).
# M = 2, 3, 4, 5, 6, 7, 12 have closed-form minimisers (antipodes, equilateral triangle,
# tetrahedron, triangular bipyramid, octahedron, pentagonal bipyramid, icosahedron); the tests
# check those to 1e-9 and the others against minimise_energy to 1e-6.
THOMSON_ENERGIES: dict[int, float] = {
    2: 0.500000000, 3: 1.732050808, 4: 3.674234614, 5: 6.474691495, 6: 9.985281374,
    7: 14.452977414, 8: 19.675287861, 9: 25.759986531, 10: 32.716949460, 11: 40.596450510,
    12: 49.165253058,
}


# --------------------------------------------------------------------------- comparing configurations
def _procrustes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthogonal Q minimising ||a Q - b||_F (Schoenemann 1966): Q = U V^T from svd(a^T b)."""
    u, _, vt = np.linalg.svd(a.T @ b)
    return u @ vt


def _anchor_frames(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Candidate orthogonal maps from a few point correspondences guessed from inner products.

    Pick in ``a`` a greedy, well-spread set of anchor points; map the first anchor to each point
    of ``b`` in turn, then choose every next anchor's partner as the unused point of ``b`` whose
    inner products with the partners so far best match those of ``a``. Procrustes on the anchors
    gives one candidate map per first partner.
    """
    m, d = a.shape
    anchors = [0]
    while len(anchors) < min(d, m):
        # next anchor: the point least explained by the span of the anchors so far
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


def config_distance(a: torch.Tensor, b: torch.Tensor, n_random: int = 32, iters: int = 30,
                    seed: int = 0) -> float:
    r"""Distance between two configurations of $M$ points in $\mathbb{R}^d$ up to an orthogonal
    map (rotation or reflection) and a permutation of the points:

    $$D(A, B) = \min_{Q \in O(d),\, \pi \in S_M} \Big(\tfrac1M \sum_i \lVert Q^\top a_i - b_{\pi(i)} \rVert^2\Big)^{1/2}.$$

    Method: alternate the two exactly solvable sub-problems -- the best permutation for fixed
    $Q$ (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``) and the best $Q$ for a fixed
    permutation (orthogonal Procrustes) -- from several starting maps: $M$ maps guessed by
    matching inner products of anchor points (see ``_anchor_frames``), the identity, and
    ``n_random`` random orthogonal maps (``seed``). The minimum over starts is returned.
    Each start only decreases the objective, so the result is an upper bound of $D$ that is
    exactly 0 (to round-off) for congruent configurations in practice; a positive value means no
    matching alignment was found. Energies are invariant under exactly this group, so this is the
    right notion of "the same minimiser".
    """
    from scipy.optimize import linear_sum_assignment

    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            raise ValueError(f"{name} must be a 2-D torch.Tensor (M, d)")
    if a.shape != b.shape:
        raise ValueError(f"configurations must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
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
