"""Contrastive and non-contrastive self-supervised losses, one function per loss.

Every pair loss takes two views ``z1, z2`` of shape ``(N, d)`` -- raw, un-normalised
embeddings, row ``i`` of ``z1`` and row ``i`` of ``z2`` being the positive pair -- and returns a
scalar (the mean over the batch). Losses that live on the unit sphere normalise inside.

Conventions shared by all functions (so the book can rely on them):

* ``u_i = z1_i / ||z1_i||``, ``v_i = z2_i / ||z2_i||``; the 2N-point stack is ``w = [u; v]``
  and ``p(a)`` is the index of the positive of anchor ``a`` in that stack (``a +- N``).
* Arithmetic is done in float32 even for bf16/fp16 inputs (they are cast up first, and
  ``torch.autocast`` is switched off inside the losses) and the result is float32; float64
  inputs stay float64 (so ``torch.autograd.gradcheck`` works).
* The code is device agnostic (every helper tensor is created on the input's device) and has
  no Python loop over the batch.
* Bad input raises ``ValueError`` saying what was wrong; the checks live in the small ``_check_*``
  helpers below and are shared by all losses.

Paper / equation references: "eq. n of arXiv:xxxx" is given only where it was checked against
the paper text; otherwise the docstring says that the number could not be verified.
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Callable

import torch
import torch.nn.functional as F

from cl_lib.kernels import KERNELS, resolve_kernel

__all__ = [
    "infonce_loss", "dcl_loss", "dhel_loss", "kcl_loss", "make_anchors", "cloa_loss",
    "cloa_combined_loss", "vicreg_loss", "barlow_twins_loss", "supcon_loss", "nscl_loss",
    "get_loss", "LOSS_NAMES", "KERNELS",
]


# ---------------------------------------------------------------------------------------------
# Shared validation helpers (every public function goes through these; no duplicated checks)
# ---------------------------------------------------------------------------------------------

def _check_embeddings(z: torch.Tensor, name: str = "z", min_rows: int = 1) -> None:
    """z must be a finite floating (n, d) tensor with n >= min_rows and d >= 1."""
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, d), got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {z.dtype}")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (N >= {min_rows}), got N={z.shape[0]}")
    if z.shape[1] < 1:
        raise ValueError(f"{name} needs at least one column, got shape {tuple(z.shape)}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError(f"{name} contains NaN or Inf")


def _check_pair(z1: torch.Tensor, z2: torch.Tensor) -> None:
    """Two views: each a finite (N, d) tensor, same shape, N >= 2 (so there is a negative)."""
    _check_embeddings(z1, "z1", min_rows=2)
    _check_embeddings(z2, "z2", min_rows=2)
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")


def _check_positive(value: float, name: str) -> float:
    """A finite number > 0 (temperatures, kernel scales, ...)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _check_nonnegative(value: float, name: str) -> float:
    """A finite number >= 0 (loss weights)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _check_labels(labels, n: int, device: torch.device, loss_name: str,
                  allow_unlabelled: bool = False) -> torch.Tensor:
    """Integer class labels, 1-D, one per sample; -1 means "unlabelled" where allowed."""
    if labels is None:
        raise ValueError(f"{loss_name} needs labels (a 1-D integer tensor of length N), got None")
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{loss_name}: labels must have an integer dtype, got {labels.dtype}")
    if labels.dim() != 1:
        raise ValueError(f"{loss_name}: labels must be 1-D, got shape {tuple(labels.shape)}")
    if labels.shape[0] != n:
        raise ValueError(f"{loss_name}: labels has length {labels.shape[0]} but the batch has N={n}")
    lowest = -1 if allow_unlabelled else 0
    if n > 0 and int(labels.min()) < lowest:
        what = "-1 (unlabelled) or a class index >= 0" if allow_unlabelled else "class indices >= 0"
        raise ValueError(f"{loss_name}: labels must be {what}, got min {int(labels.min())}")
    return labels.to(device=device, dtype=torch.long)


def _full_precision(loss_fn: Callable) -> Callable:
    """Run a loss with autocast switched off on the input's device.

    Casting the inputs up is not enough inside ``torch.autocast``: it would run the matmuls in
    bf16/fp16 again. Training loops may call the losses under autocast, so every public loss is
    wrapped in this decorator.
    """
    @functools.wraps(loss_fn)
    def wrapper(*args, **kwargs):
        z = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        device_type = z.device.type if z is not None else "cpu"
        if device_type not in ("cpu", "cuda"):  # e.g. mps: leave autocast state alone
            return loss_fn(*args, **kwargs)
        with torch.autocast(device_type=device_type, enabled=False):
            return loss_fn(*args, **kwargs)
    return wrapper


def _compute_dtype(z: torch.Tensor) -> torch.dtype:
    """float64 stays float64 (gradcheck); everything else is computed in float32."""
    return torch.float64 if z.dtype == torch.float64 else torch.float32


def _unit_rows(z: torch.Tensor) -> torch.Tensor:
    """Cast up, then project each row onto the unit sphere."""
    return F.normalize(z.to(_compute_dtype(z)), dim=1)


def _stacked_logits(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine-similarity logits of the 2N stack w = [u; v] and each anchor's positive index.

    Returns ``logits[a, b] = w_a . w_b / tau`` (2N, 2N), self-similarities NOT yet masked, and
    ``pos[a] = p(a)`` (the other view of the same sample).
    """
    w = torch.cat([_unit_rows(z1), _unit_rows(z2)], dim=0)
    n = z1.shape[0]
    pos = (torch.arange(2 * n, device=w.device) + n) % (2 * n)
    return w @ w.T / tau, pos


# ---------------------------------------------------------------------------------------------
# InfoNCE family
# ---------------------------------------------------------------------------------------------

@_full_precision
def infonce_loss(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    r"""NT-Xent / SimCLR InfoNCE loss, both directions (Chen et al. 2020, arXiv:2002.05709).

    With :math:`w = [u; v]` the :math:`2N` unit vectors and :math:`p(a)` the positive of anchor
    :math:`a`, each anchor has one positive and :math:`2N-2` negatives:

    .. math::
        \mathcal L = \frac{1}{2N}\sum_{a=1}^{2N} -\log
        \frac{\exp(w_a^\top w_{p(a)}/\tau)}{\sum_{b\neq a}\exp(w_a^\top w_b/\tau)} .

    This is SimCLR's "NT-Xent" loss averaged over all 2N anchors (its equation number in
    arXiv:2002.05709 could not be verified here). It is also eq. (1) of the CLOA paper
    (Li & Pimentel-Alarcon 2024, seed 001; checked against the seed text), which writes it as a
    sum over anchors instead of a mean.
    """
    _check_pair(z1, z2)
    tau = _check_positive(tau, "tau")
    logits, pos = _stacked_logits(z1, z2, tau)
    self_mask = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    anchors = torch.arange(logits.shape[0], device=logits.device)
    return (torch.logsumexp(logits, dim=1) - logits[anchors, pos]).mean()


@_full_precision
def dcl_loss(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    r"""Decoupled contrastive learning loss (Yeh et al., ECCV 2022, arXiv:2110.06848).

    InfoNCE with the positive removed from the denominator, both directions:

    .. math::
        \mathcal L = \frac{1}{2N}\sum_{a=1}^{2N}\Big[-\frac{w_a^\top w_{p(a)}}{\tau}
        + \log\sum_{b\notin\{a,\,p(a)\}}\exp(w_a^\top w_b/\tau)\Big].

    The equation number in the DCL paper could not be verified here (no paper text available).
    """
    _check_pair(z1, z2)
    tau = _check_positive(tau, "tau")
    logits, pos = _stacked_logits(z1, z2, tau)
    anchors = torch.arange(logits.shape[0], device=logits.device)
    positive = logits[anchors, pos]
    drop = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    drop[anchors, pos] = True
    negatives = logits.masked_fill(drop, float("-inf"))
    return (torch.logsumexp(negatives, dim=1) - positive).mean()


@_full_precision
def dhel_loss(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.5, both_views: bool = False) -> torch.Tensor:
    r"""Decoupled Hyperspherical Energy Loss, DHEL (Koromilas et al., ICML 2024, arXiv:2405.18045).

    Alignment of the positive pair is decoupled from a uniformity (energy) term computed within
    ONE view only:

    .. math::
        \mathcal L = \frac1N\sum_{i=1}^N\Big[-\frac{u_i^\top v_i}{\tau}
        + \log\sum_{j\neq i}\exp(u_i^\top u_j/\tau)\Big]
        \;\Big(+\;\frac1N\sum_{i}\log\sum_{j\neq i}\exp(v_i^\top v_j/\tau)
        \ \text{if both\_views}\Big).

    ``both_views=True`` reproduces the authors' code (``DHEL(include_augs=True)`` in
    github.com/pakoromilas/DHEL-KCL, losses.py), which multiplies the two views' denominators,
    i.e. adds the second log-sum. Note that with ``both_views=False`` the loss is not symmetric
    in ``(z1, z2)``. Defaults of the authors' code: ``tau=0.3``, ``include_augs=True``; this
    library's defaults follow the team contract (``tau=0.5``, ``both_views=False``).
    The equation number of DHEL in arXiv:2405.18045 could not be verified here (only the
    abstract and the authors' code were available); the formula above is checked against the
    authors' code.
    """
    _check_pair(z1, z2)
    tau = _check_positive(tau, "tau")
    u, v = _unit_rows(z1), _unit_rows(z2)
    self_mask = torch.eye(u.shape[0], dtype=torch.bool, device=u.device)

    def log_energy(x: torch.Tensor) -> torch.Tensor:  # log sum_{j != i} exp(x_i . x_j / tau), per i
        return torch.logsumexp((x @ x.T / tau).masked_fill(self_mask, float("-inf")), dim=1)

    loss = -(u * v).sum(dim=1) / tau + log_energy(u)
    if both_views:
        loss = loss + log_energy(v)
    return loss.mean()


# ---------------------------------------------------------------------------------------------
# Kernel contrastive learning
# ---------------------------------------------------------------------------------------------

# The kernels k(r) of the squared distance r = ||x - y||^2 live in one table, cl_lib.kernels,
# shared with the book's sphere energies; its docstring states the convention. Between the
# samples of one view r is computed on the sphere as 2 - 2 x.y (a matmul).
def _kernel_parameter(kernel: str, kernel_params: dict) -> tuple[Callable, float]:
    """Resolve and check the kernel name and its single parameter (Riesz s = 0 refused)."""
    return resolve_kernel(kernel, kernel_params, allow_logarithmic=False)


@_full_precision
def kcl_loss(z1: torch.Tensor, z2: torch.Tensor, kernel: str = "gaussian", gamma: float = 16.0,
             **kernel_params: float) -> torch.Tensor:
    r"""Kernel contrastive loss, KCL (as analysed by Koromilas et al., ICML 2024, arXiv:2405.18045).

    With a kernel :math:`K(x,y)=k(\|x-y\|^2)` on the sphere, alignment rewards a large kernel
    value for positive pairs and the (gamma-weighted) energy penalises it for other pairs of the
    same view:

    .. math::
        \mathcal L = -\frac{2}{N}\sum_{i}K(u_i,v_i) + \gamma\Big[\frac{1}{N(N-1)}\sum_{i\neq j}
        K(u_i,u_j) + \frac{1}{N(N-1)}\sum_{i\neq j}K(v_i,v_j)\Big].

    Kernels (``r = ||x-y||^2``), parameter names and defaults (those of the authors' code,
    github.com/pakoromilas/DHEL-KCL, except the Riesz default, see below):

    * ``"gaussian"``: :math:`k(r) = e^{-t r}`, ``t=2``;
    * ``"log"``: :math:`k(r) = -\log(1 + t r)`, ``t=2``;
    * ``"imq"`` (inverse multiquadric): :math:`k(r) = c/\sqrt{c^2 + r}`, ``c=2``;
    * ``"riesz"``: :math:`k(r) = \operatorname{sign}(s)\, r^{-s/2}`, i.e. :math:`\|x-y\|^{-s}`
      for :math:`s>0` and :math:`-\|x-y\|^{|s|}` for :math:`s<0`; ``s=-1`` here. For
      :math:`s>0` the alignment term is unbounded below (it tends to :math:`-\infty` as a
      positive pair aligns), which is why the authors' code pairs the Riesz energy with a
      Gaussian alignment ("gaussian_riesz"; not provided here). The authors' default parameter
      is ``t=2`` for every kernel, i.e. ``s=2`` for Riesz, which has that problem.

    Deviation from the authors' code, on purpose: their ``log`` kernel uses
    :math:`-\tfrac12\log(1+tr)` in the energy but :math:`-\log(1+tr)` in the alignment; here
    one kernel is used in both terms, so the authors' loss equals this one with ``gamma/2``.
    ``gamma=16`` is the authors' code default. Equation numbers of KCL and of the kernels in
    arXiv:2405.18045 could not be verified here (only the abstract and the code were available).
    """
    _check_pair(z1, z2)
    gamma = _check_nonnegative(gamma, "gamma")
    k, param = _kernel_parameter(kernel, kernel_params)
    u, v = _unit_rows(z1), _unit_rows(z2)
    n = u.shape[0]
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=u.device)

    def sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # ||a - b||^2 on the sphere
        return (2 - 2 * (a @ b.T)).clamp_min(0)

    def energy(x: torch.Tensor) -> torch.Tensor:  # mean over ordered pairs i != j
        return k(sq_dist(x, x)[off_diagonal], param).mean()

    # positives are close, where 2 - 2 u.v cancels badly in float32: use the difference itself
    alignment = k(((u - v) ** 2).sum(dim=1), param).mean()
    return -2 * alignment + gamma * (energy(u) + energy(v))


# ---------------------------------------------------------------------------------------------
# CLOA: contrastive learning with orthonormal anchors (seed 001)
# ---------------------------------------------------------------------------------------------

def make_anchors(num_classes: int, dim: int, seed: int = 0) -> torch.Tensor:
    r"""Fixed random orthonormal class anchors :math:`c_1,\dots,c_C\in\mathbb R^d` (CLOA, seed 001).

    QR of a seeded Gaussian (d, C) matrix, with the signs fixed so that R has a positive
    diagonal (so the result depends only on ``seed``). Returns a float32 (C, d) CPU tensor with
    orthonormal rows; requires ``num_classes <= dim``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be an int >= 1, got {dim!r}")
    if num_classes > dim:
        raise ValueError(f"cannot make {num_classes} orthonormal anchors in dimension {dim} "
                         f"(need num_classes <= dim)")
    generator = torch.Generator().manual_seed(int(seed))
    gaussian = torch.randn(dim, num_classes, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)                   # q: (d, C) orthonormal columns
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # unique QR: diag(R) > 0
    return q.T.contiguous().to(torch.float32)


def _check_anchors(anchors: torch.Tensor, dim: int) -> None:
    _check_embeddings(anchors, "anchors", min_rows=1)
    if anchors.shape[1] != dim:
        raise ValueError(f"anchors must have shape (num_classes, {dim}) to match the embeddings, "
                         f"got {tuple(anchors.shape)}")


@_full_precision
def cloa_loss(z: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    r"""Orthonormal-anchor regression term of CLOA (Li & Pimentel-Alarcon 2024, seed 001).

    Eq. (2) of the CLOA paper (checked against the seed text):
    :math:`\mathcal L_{\rm CLOA} = \sum_{i\in S}\big(1 - s(z_i, c_{y_i})\big)` with :math:`s` the
    cosine similarity and :math:`S` the labelled samples. Here it is divided by :math:`|S|` (mean
    over labelled samples, so the weight does not depend on the batch size). Labels are class
    indices ``0..C-1``; ``-1`` marks an unlabelled sample, which contributes nothing. With no
    labelled sample the result is 0 (still attached to the graph of ``z``).
    """
    _check_embeddings(z, "z", min_rows=1)
    _check_anchors(anchors, z.shape[1])
    labels = _check_labels(labels, z.shape[0], z.device, "cloa_loss", allow_unlabelled=True)
    num_classes = anchors.shape[0]
    if int(labels.max()) >= num_classes:
        raise ValueError(f"cloa_loss: label {int(labels.max())} has no anchor (only {num_classes} anchors)")
    u = _unit_rows(z)
    c = F.normalize(anchors.to(device=u.device, dtype=u.dtype), dim=1)
    labelled = labels >= 0
    cosine = (u * c[labels.clamp_min(0)]).sum(dim=1)   # unlabelled rows get a dummy anchor ...
    per_sample = (1 - cosine) * labelled                 # ... and are zeroed here
    return per_sample.sum() / labelled.sum().clamp_min(1)


@_full_precision
def cloa_combined_loss(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor,
                       base: str = "infonce", weight: float = 1.0, **base_kwargs) -> torch.Tensor:
    r"""CLOA objective: a contrastive base loss plus the anchor term on both views.

    .. math::
        \mathcal L = \mathcal L_{\rm base}(z^{(1)}, z^{(2)}) + \lambda\,
        \mathcal L_{\rm CLOA}\big([z^{(1)}; z^{(2)}],\,[y; y]\big),

    where :math:`\mathcal L_{\rm CLOA}` is :func:`cloa_loss` (mean over the labelled samples of
    both views) and :math:`\lambda` = ``weight``. ``base`` is any name of :func:`get_loss`
    except ``"cloa"``; ``base_kwargs`` go to the base loss (e.g. ``tau``).
    """
    if base == "cloa":
        raise ValueError("cloa_combined_loss: base cannot be 'cloa' itself")
    weight = _check_nonnegative(weight, "weight")
    _check_pair(z1, z2)
    labels = _check_labels(labels, z1.shape[0], z1.device, "cloa_combined_loss", allow_unlabelled=True)
    base_loss = get_loss(base, **base_kwargs)(z1, z2, None if base not in _NEEDS_LABELS else labels)
    anchor_term = cloa_loss(torch.cat([z1, z2]), torch.cat([labels, labels]), anchors)
    return base_loss + weight * anchor_term


# ---------------------------------------------------------------------------------------------
# Non-contrastive (redundancy reduction / variance-covariance) losses
# ---------------------------------------------------------------------------------------------

def _off_diagonal_sq_sum(m: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal entries of a square matrix."""
    return (m * m).sum() - (torch.diagonal(m) ** 2).sum()


@_full_precision
def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0) -> torch.Tensor:
    r"""VICReg (Bardes, Ponce & LeCun, ICLR 2022, arXiv:2105.04906), as in the official code.

    .. math::
        \mathcal L = \lambda\,\frac{1}{Nd}\sum_i\|z^{(1)}_i - z^{(2)}_i\|^2
        + \mu\,\tfrac12\big[v(Z^{(1)}) + v(Z^{(2)})\big] + \nu\big[c(Z^{(1)}) + c(Z^{(2)})\big],

    :math:`v(Z) = \frac1d\sum_k \max(0, 1 - \sqrt{\mathrm{Var}(Z_{:,k}) + 10^{-4}})` (unbiased
    variance), :math:`c(Z) = \frac1d\sum_{k\neq l} C(Z)_{kl}^2` with :math:`C` the (N-1)-normalised
    covariance. Operates on the raw embeddings (no normalisation). The invariance term is
    averaged over the N*d entries and the variance term halved, as in the official
    implementation (facebookresearch/vicreg) for which the default coefficients 25/25/1 were
    tuned. Equation numbers in arXiv:2105.04906 could not be verified here.
    """
    _check_pair(z1, z2)
    sim_coeff = _check_nonnegative(sim_coeff, "sim_coeff")
    std_coeff = _check_nonnegative(std_coeff, "std_coeff")
    cov_coeff = _check_nonnegative(cov_coeff, "cov_coeff")
    x, y = z1.to(_compute_dtype(z1)), z2.to(_compute_dtype(z2))
    n, d = x.shape
    invariance = ((x - y) ** 2).mean()

    def variance(a: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - torch.sqrt(a.var(dim=0) + 1e-4)).mean()

    def covariance(a: torch.Tensor) -> torch.Tensor:
        a = a - a.mean(dim=0)
        return _off_diagonal_sq_sum(a.T @ a / (n - 1)) / d

    return (sim_coeff * invariance + std_coeff * (variance(x) + variance(y)) / 2
            + cov_coeff * (covariance(x) + covariance(y)))


@_full_precision
def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    r"""Barlow Twins (Zbontar et al., ICML 2021, arXiv:2103.03230).

    .. math::
        \mathcal L = \sum_k (1 - C_{kk})^2 + \lambda\sum_{k\neq l} C_{kl}^2,\qquad
        C_{kl} = \frac1N\sum_i \hat z^{(1)}_{ik}\,\hat z^{(2)}_{il},

    where :math:`\hat z` is each dimension standardised over the batch (mean 0, biased variance
    1, +1e-5 inside the square root as in BatchNorm without affine parameters, which is what the
    official code applies). ``lambd=5e-3`` is the team contract's default (the paper's value as
    far as we know; not verified here). Not a mean over the batch: the
    cross-correlation matrix already averages over it. Equation numbers in arXiv:2103.03230
    could not be verified here.
    """
    _check_pair(z1, z2)
    lambd = _check_nonnegative(lambd, "lambd")
    x, y = z1.to(_compute_dtype(z1)), z2.to(_compute_dtype(z2))

    def standardise(a: torch.Tensor) -> torch.Tensor:
        return (a - a.mean(dim=0)) / torch.sqrt(a.var(dim=0, unbiased=False) + 1e-5)

    c = standardise(x).T @ standardise(y) / x.shape[0]
    return ((1 - torch.diagonal(c)) ** 2).sum() + lambd * _off_diagonal_sq_sum(c)


# ---------------------------------------------------------------------------------------------
# Supervised contrastive losses
# ---------------------------------------------------------------------------------------------

@_full_precision
def supcon_loss(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    r"""Supervised contrastive loss :math:`\mathcal L^{sup}_{out}` (Khosla et al., NeurIPS 2020,
    arXiv:2004.11362).

    Over the 2N stacked views, positives :math:`P(a) = \{p\neq a: y_p = y_a\}` (always contains
    the other view of the same sample), :math:`A(a) = \{b \neq a\}`:

    .. math::
        \mathcal L = \frac{1}{2N}\sum_{a=1}^{2N}\frac{-1}{|P(a)|}\sum_{p\in P(a)}
        \log\frac{\exp(w_a^\top w_p/\tau)}{\sum_{b\in A(a)}\exp(w_a^\top w_b/\tau)} .

    (The "out" variant, with the 1/|P| outside the log; equation number in arXiv:2004.11362
    could not be verified here.) Labels must be class indices >= 0.
    """
    _check_pair(z1, z2)
    tau = _check_positive(tau, "tau")
    labels = _check_labels(labels, z1.shape[0], z1.device, "supcon_loss")
    logits, _ = _stacked_logits(z1, z2, tau)
    y = torch.cat([labels, labels])
    self_mask = torch.eye(y.shape[0], dtype=torch.bool, device=logits.device)
    positives = (y[:, None] == y[None, :]) & ~self_mask
    log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    # mean of log_prob over positives; masked_fill (not multiply) keeps -inf/NaN out of the sum
    mean_log_prob_pos = log_prob.masked_fill(~positives, 0).sum(dim=1) / positives.sum(dim=1)
    return -mean_log_prob_pos.mean()


@_full_precision
def nscl_loss(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, tau: float = 0.5,
              decoupled: bool = False) -> torch.Tensor:
    r"""Negatives-only supervised contrastive loss, NSCL (Luthra, Yang & Galanti 2025,
    arXiv:2506.04411, seed 002).

    InfoNCE over the 2N stacked views in which every same-class sample is dropped from the
    denominator; by default the positive (other view of the anchor) stays:

    .. math::
        \mathcal L = \frac{1}{2N}\sum_{a=1}^{2N} -\log
        \frac{\exp(w_a^\top w_{p(a)}/\tau)}{\exp(w_a^\top w_{p(a)}/\tau)
        + \sum_{b:\,y_b\neq y_a}\exp(w_a^\top w_b/\tau)} .

    This is what the authors' code computes (``NegSupConLoss`` / ``WeakNTXentLoss`` in
    github.com/DLFundamentals/understanding-ssl, utils/losses.py: cross-entropy over the logits
    [positive, different-class samples]); with all labels distinct it is :func:`infonce_loss`.

    **Not the paper's global NSCL.** The loss the paper analyses (its CL--NSCL gap bound and
    its global minimisers) is *decoupled* and *global*: the positive is not in the denominator,
    the denominator runs over all views of all different-class samples of the data set, and the
    numerator averages over all $K^2$ view pairs. It is the supervised twin of the global DCL
    (Yeh et al. 2022), and is implemented by :func:`cl_lib.experiments.theory.global_dcl_nscl`, which is
    what chapter 6 uses for the theory. This function keeps the positive in the denominator,
    as the authors' training code does.

    ``decoupled=True`` drops the positive from the denominator too (only different-class
    samples remain). That is the mini-batch, two-view form of the paper's loss, the supervised
    analogue of :func:`dcl_loss` (equal to it when all labels are distinct); it needs at least
    two classes in the batch. Both pairs, ``infonce_loss - nscl_loss`` and
    ``dcl_loss - nscl_loss(decoupled=True)``, lie in
    $[0, \log(1 + n_\max e^{2/\tau}/(N - n_\max))]$ for every batch
    (:func:`cl_lib.experiments.theory.cl_nscl_gap_bound`): a positive in both denominators only shrinks the
    ratio of same-class to other-class terms. The paper text itself was not available here
    (seed 002 is the abstract), so its equation numbers and exact normalisation could not be
    verified. Labels must be class indices >= 0.
    """
    _check_pair(z1, z2)
    tau = _check_positive(tau, "tau")
    labels = _check_labels(labels, z1.shape[0], z1.device, "nscl_loss")
    if decoupled and not bool((labels != labels[0]).any()):
        raise ValueError("nscl_loss(decoupled=True) needs at least two classes in the batch "
                         "(otherwise the denominator is empty)")
    logits, pos = _stacked_logits(z1, z2, tau)
    y = torch.cat([labels, labels])
    anchors = torch.arange(y.shape[0], device=logits.device)
    keep = y[:, None] != y[None, :]     # different class: the negatives
    keep[anchors, pos] = not decoupled   # plus, by default, the positive itself
    denominator = torch.logsumexp(logits.masked_fill(~keep, float("-inf")), dim=1)
    return (denominator - logits[anchors, pos]).mean()


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

_PAIR_LOSSES: dict[str, Callable] = {
    "infonce": infonce_loss, "dcl": dcl_loss, "dhel": dhel_loss, "kcl": kcl_loss,
    "vicreg": vicreg_loss, "barlow_twins": barlow_twins_loss,
}
_LABELLED_LOSSES: dict[str, Callable] = {"supcon": supcon_loss, "nscl": nscl_loss}
_NEEDS_LABELS = set(_LABELLED_LOSSES) | {"cloa"}
LOSS_NAMES = tuple(_PAIR_LOSSES) + ("cloa",) + tuple(_LABELLED_LOSSES)


def needs_labels(name: str) -> bool:
    """Does the loss called ``name`` need class labels (``supcon``, ``nscl``, ``cloa``)?"""
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; choose one of {list(LOSS_NAMES)}")
    return name in _NEEDS_LABELS


def _check_kwargs(fn: Callable, kwargs: dict, skip: tuple[str, ...]) -> None:
    """Raise ValueError now (not at the first training step) for misspelt hyper-parameters."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [p for p in params if p not in skip]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"{fn.__name__} has no parameter(s) {unknown}; allowed: {allowed}")


def get_loss(name: str, **kwargs) -> Callable[..., torch.Tensor]:
    """Return ``loss(z1, z2, labels=None) -> scalar`` for a loss name and its hyper-parameters.

    Names: ``"infonce"``, ``"dcl"``, ``"dhel"``, ``"kcl"``, ``"vicreg"``, ``"barlow_twins"``
    (labels ignored); ``"supcon"``, ``"nscl"`` (labels required); ``"cloa"`` = InfoNCE + anchor
    term, i.e. :func:`cloa_combined_loss` with ``base="infonce"`` unless ``base`` is given; it
    takes ``anchors=`` (a (C, d) tensor) or ``num_classes=`` (+ optional ``seed=``, anchors then
    made by :func:`make_anchors` for the embedding dimension at the first call), plus
    ``weight=`` and the base loss's hyper-parameters (e.g. ``tau=``). Labels use -1 for
    unlabelled samples.
    """
    if name in _PAIR_LOSSES:
        fn = _PAIR_LOSSES[name]
        _check_kwargs(fn, kwargs, skip=("z1", "z2"))
        if name == "kcl":  # check the kernel name and parameter now
            _kernel_parameter(kwargs.get("kernel", "gaussian"),
                              {k: v for k, v in kwargs.items() if k not in ("kernel", "gamma")})

        def pair_loss(z1: torch.Tensor, z2: torch.Tensor, labels=None) -> torch.Tensor:
            return fn(z1, z2, **kwargs)
        pair_loss.__name__ = f"{name}_loss"
        return pair_loss

    if name in _LABELLED_LOSSES:
        fn = _LABELLED_LOSSES[name]
        _check_kwargs(fn, kwargs, skip=("z1", "z2", "labels"))

        def labelled_loss(z1: torch.Tensor, z2: torch.Tensor, labels=None) -> torch.Tensor:
            return fn(z1, z2, labels, **kwargs)
        labelled_loss.__name__ = f"{name}_loss"
        return labelled_loss

    if name == "cloa":
        kwargs = dict(kwargs)
        anchors = kwargs.pop("anchors", None)
        num_classes = kwargs.pop("num_classes", None)
        seed = kwargs.pop("seed", 0)
        base = kwargs.pop("base", "infonce")
        weight = _check_nonnegative(kwargs.pop("weight", 1.0), "weight")
        if (anchors is None) == (num_classes is None):
            raise ValueError("get_loss('cloa') needs exactly one of anchors= (a (C, d) tensor) or num_classes=")
        if base == "cloa" or base not in LOSS_NAMES:
            raise ValueError(f"get_loss('cloa'): base must be one of {[n for n in LOSS_NAMES if n != 'cloa']}")
        get_loss(base, **kwargs)  # validates the base hyper-parameters now
        cache: dict = {}

        def cloa(z1: torch.Tensor, z2: torch.Tensor, labels=None) -> torch.Tensor:
            a = anchors
            if a is None:
                if not isinstance(z1, torch.Tensor) or z1.dim() != 2:
                    _check_pair(z1, z2)
                dim = z1.shape[1]
                if dim not in cache:
                    cache[dim] = make_anchors(num_classes, dim, seed)
                a = cache[dim]
            return cloa_combined_loss(z1, z2, labels, a, base=base, weight=weight, **kwargs)
        cloa.__name__ = "cloa_loss"
        return cloa

    raise ValueError(f"unknown loss {name!r}; choose one of {list(LOSS_NAMES)}")
