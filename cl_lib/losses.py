r"""Contrastive and non-contrastive self-supervised losses, one function per loss.

Every loss has the same signature::

    loss(z1, z2, labels=None, *, <hyper-parameters>) -> scalar tensor

``z1`` and ``z2`` are two views of a batch, shape ``(N, d)``: raw, un-normalised
embeddings, row ``i`` of ``z1`` and row ``i`` of ``z2`` being a positive pair.
``labels`` (shape ``(N,)``, integer class indices) is used by SupCon, NSCL and CLOA,
which raise ``ValueError`` without it, and ignored by the others. Hyper-parameters are
keyword-only. InfoNCE, DCL, DHEL and KCL also take ``(R, N, d)`` views: ``R``
independent batches in one call, one loss each (shape ``(R,)``), as the book's
free-point experiments minimise many restarts at once. Losses that live on the unit
sphere normalise inside. :func:`get_loss` returns a loss by name, its hyper-parameters
checked once; :data:`LOSSES` is the registry behind it (:class:`LossSpec`: function,
whether it needs labels, hyper-parameters and their defaults).

Conventions shared by all functions:

* ``u_i = z1_i / ||z1_i||``, ``v_i = z2_i / ||z2_i||``; the 2N-point stack is
  ``w = [u; v]`` and ``p(a)`` is the index of the positive of anchor ``a`` in that stack
  (``a +- N``).
* Arithmetic is done in float32 even for bf16/fp16 inputs (they are cast up first, and
  ``torch.autocast`` is switched off inside the losses) and the result is float32;
  float64 inputs stay float64 (so ``torch.autograd.gradcheck`` works).
* The code is device agnostic and has no Python loop over the batch.
* Bad input raises ``ValueError`` in the style of :mod:`cl_lib.checks`
  (``"<function>: <argument> must be <requirement>, got <value>"``).

Names and defaults next to two libraries users may know, lightly (``lightly.loss``, main
branch) and solo-learn (``solo.losses``), and the authors' code where it differs::

    cl_lib (defaults)          lightly                      solo-learn
    -------------------------  ---------------------------  ----------------------------
    infonce_loss  tau=0.5      NTXentLoss                   simclr_loss_func
                                 temperature=0.5              temperature=0.1
    dcl_loss      tau=0.5      DCLLoss temperature=0.1      not in solo-learn
    dhel_loss     tau=0.5,     not in lightly               not in solo-learn
                  both_views=False
    kcl_loss      gamma=16,    not in lightly               not in solo-learn
                  gaussian t=2
    vicreg_loss   sim_coeff=25 VICRegLoss lambda_param=25   vicreg_loss_func
                  std_coeff=25            mu_param=25         sim_loss_weight=25
                  cov_coeff=1             nu_param=1          var_loss_weight=25
                                                              cov_loss_weight=1
    barlow_twins_ lambd=5e-3   BarlowTwinsLoss              barlow_loss_func lamb=5e-3,
    loss                         lambda_param=5e-3            scale_loss=0.025
    supcon_loss   tau=0.1      not in lightly               simclr_loss_func with class
                                                              labels: the "in" variant
    nscl_loss     tau=0.5      not in lightly               not in solo-learn
    cloa_loss     weight=1,    not in lightly               not in solo-learn
                  base=infonce

* ``tau`` is everybody else's ``temperature``.
* VICReg: here, in lightly and in the authors' code the variance term is the *mean* of
  the two views' terms; solo-learn's ``variance_loss(z1, z2)`` is their *sum*, so the
  same ``var_loss_weight=25`` weighs the variance twice as much there. The terms are
  public here as in lightly (``invariance_loss``, ``variance_loss``,
  ``covariance_loss``): :func:`vicreg_invariance_term`, :func:`vicreg_variance_term`,
  :func:`vicreg_covariance_term`.
* Barlow Twins: solo-learn multiplies the loss by ``scale_loss`` (its method's config
  defaults are ``lamb=0.0051, scale_loss=0.024``); the terms, which lightly computes
  inside ``BarlowTwinsLoss.forward``, are public here:
  :func:`barlow_twins_cross_correlation`, :func:`barlow_twins_invariance_term`,
  :func:`barlow_twins_redundancy_term`.
* DCL: lightly's ``DCLLoss`` (no ``weight_fn``; since lightly 1.5.21, earlier releases
  added two separate log-sum-exps) is this loss with ``tau=0.1``.
* SupCon: the authors' code (``SupConLoss(temperature=0.07, base_temperature=0.07)`` in
  github.com/HobbitLong/SupContrast) multiplies the loss by ``temperature /
  base_temperature``; here that factor is 1 (``base_temperature = tau``). lightly's
  ``SupConLoss`` exists only on a branch that is not merged; solo-learn's
  ``simclr_loss_func`` with class labels as ``indexes`` takes the log of the summed
  positives, i.e. the other variant :math:`\mathcal L^{sup}_{in}` without its
  :math:`1/|P(a)|`.
* DHEL: the authors' ``DHEL(tau=0.3, include_augs=True)``
  (github.com/pakoromilas/DHEL-KCL) is ``dhel_loss(tau=0.3, both_views=True)``; this
  library's default uses one view's energy.
* KCL: the authors' ``KCL(t=2.0, kernel="gaussian", gamma=16.0)`` is the default here.
* NSCL: the authors' ``WeakNTXentLoss(temperature=0.5)`` is ``nscl_loss`` with its
  default.

Papers are cited by author and year. Equation numbers are given where they were checked
against the paper's text (Li & Pimentel-Alarcón 2024); for the other papers only
abstracts and the authors' code were at hand, so no equation numbers are given for them.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from cl_lib import checks
from cl_lib.kernels import KERNELS, resolve_kernel

__all__ = [
    "infonce_loss",
    "dcl_loss",
    "dhel_loss",
    "kcl_loss",
    "vicreg_loss",
    "barlow_twins_loss",
    "supcon_loss",
    "nscl_loss",
    "cloa_loss",
    "vicreg_invariance_term",
    "vicreg_variance_term",
    "vicreg_covariance_term",
    "barlow_twins_cross_correlation",
    "barlow_twins_invariance_term",
    "barlow_twins_redundancy_term",
    "cloa_anchor_term",
    "make_anchors",
    "LossSpec",
    "LOSSES",
    "LOSS_NAMES",
    "loss_spec",
    "needs_labels",
    "get_loss",
    "KERNELS",
]


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _full_precision(loss_fn: Callable) -> Callable:
    """Run a loss with autocast switched off on the input's device.

    Casting the inputs up is not enough inside ``torch.autocast``: it would run the
    matmuls in bf16/fp16 again. Training loops may call the losses under autocast.
    """

    @functools.wraps(loss_fn)
    def wrapper(*args, **kwargs):
        z = next(
            (a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None
        )
        device_type = z.device.type if z is not None else "cpu"
        if device_type not in ("cpu", "cuda"):  # e.g. mps: leave autocast state alone
            return loss_fn(*args, **kwargs)
        with torch.autocast(device_type=device_type, enabled=False):
            return loss_fn(*args, **kwargs)

    return wrapper


def _compute_dtype(z: torch.Tensor) -> torch.dtype:
    """float64 stays float64 (gradcheck); everything else is computed in float32."""
    return torch.float64 if z.dtype == torch.float64 else torch.float32


def _cast_up(z: torch.Tensor) -> torch.Tensor:
    return z.to(_compute_dtype(z))


def _unit_rows(z: torch.Tensor) -> torch.Tensor:
    """Cast up, then project each row onto the unit sphere."""
    return F.normalize(_cast_up(z), dim=-1)


def _stacked_logits(
    z1: torch.Tensor, z2: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine-similarity logits of the 2N stack w = [u; v] and each anchor's positive
    index.

    Returns ``logits[a, b] = w_a . w_b / tau`` (2N, 2N), self-similarities NOT yet
    masked, and ``pos[a] = p(a)`` (the other view of the same sample). A leading
    batch dimension, ``(R, N, d)`` views, gives ``(R, 2N, 2N)`` logits.
    """
    w = torch.cat([_unit_rows(z1), _unit_rows(z2)], dim=-2)
    n = z1.shape[-2]
    pos = (torch.arange(2 * n, device=w.device) + n) % (2 * n)
    return w @ w.transpose(-1, -2) / tau, pos


def _positive_logits(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``logits[..., a, p(a)]`` for every anchor ``a``: shape ``(..., 2N)``."""
    index = pos.expand(*logits.shape[:-1]).unsqueeze(-1)
    return logits.gather(-1, index).squeeze(-1)


def _unused_labels(labels: Any, n: int, where: str) -> None:
    """Losses without labels accept them (the trainer passes them to every loss) but
    check their type and shape, without reading values: a number passed where ``labels``
    stands is a hyper-parameter given by position, which must not be ignored
    silently."""
    if labels is not None:
        checks.labels(labels, n, where, allow_unlabelled=True, check_values=False)


def _off_diagonal_sq_sum(m: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal entries of a square matrix."""
    return (m * m).sum() - (torch.diagonal(m) ** 2).sum()


# Hyper-parameter checks: run once by get_loss (or once per direct call). Each returns
# the keyword arguments of the matching compute function below.


def _check_tau(where: str, tau: float) -> dict:
    return {"tau": checks.positive(tau, "tau", where)}


def _check_dhel(where: str, tau: float, both_views: bool) -> dict:
    return {
        **_check_tau(where, tau),
        "both_views": checks.boolean(both_views, "both_views", where),
    }


def _check_nscl(where: str, tau: float, decoupled: bool) -> dict:
    return {
        **_check_tau(where, tau),
        "decoupled": checks.boolean(decoupled, "decoupled", where),
    }


def _check_vicreg(
    where: str, sim_coeff: float, std_coeff: float, cov_coeff: float
) -> dict:
    return {
        "sim_coeff": checks.nonnegative(sim_coeff, "sim_coeff", where),
        "std_coeff": checks.nonnegative(std_coeff, "std_coeff", where),
        "cov_coeff": checks.nonnegative(cov_coeff, "cov_coeff", where),
    }


def _check_barlow(where: str, lambd: float) -> dict:
    return {"lambd": checks.nonnegative(lambd, "lambd", where)}


# --------------------------------------------------------------------------------------
# InfoNCE family
# --------------------------------------------------------------------------------------


@_full_precision
def _infonce(
    z1: torch.Tensor, z2: torch.Tensor, labels: Any, tau: float
) -> torch.Tensor:
    checks.views(z1, z2, "infonce_loss", batched=True)
    _unused_labels(labels, z1.shape[-2], "infonce_loss")
    logits, pos = _stacked_logits(z1, z2, tau)
    self_mask = torch.eye(logits.shape[-1], dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    return (torch.logsumexp(logits, dim=-1) - _positive_logits(logits, pos)).mean(-1)


def infonce_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    tau: float = 0.5,
) -> torch.Tensor:
    r"""InfoNCE / NT-Xent loss of SimCLR, both directions (Chen et al. 2020).

    With :math:`w = [u; v]` the :math:`2N` unit vectors and :math:`p(a)` the positive of
    anchor :math:`a`, each anchor has one positive and :math:`2N-2` negatives:

    .. math::
        \mathcal L = \frac{1}{2N}\sum_{a=1}^{2N} -\log
        \frac{\exp(w_a^\top w_{p(a)}/\tau)}{\sum_{b\neq a}\exp(w_a^\top w_b/\tau)} .

    This is eq. (1) of Li & Pimentel-Alarcón (2024) divided by :math:`2N` (they sum over
    the anchors).

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 2``.
        z2: Second view, shape ``(N, d)``; ``z2[i]`` is the positive of ``z1[i]``.
        labels: Ignored (accepted so that every loss has one signature).
        tau: Temperature, > 0 (lightly/solo-learn: ``temperature``).

    Returns:
        The loss, a scalar tensor (float32, or float64 for float64 inputs); shape
        ``(R,)`` for ``(R, N, d)`` views.
    """
    return _infonce(z1, z2, labels, **_check_tau("infonce_loss", tau))


@_full_precision
def _dcl(z1: torch.Tensor, z2: torch.Tensor, labels: Any, tau: float) -> torch.Tensor:
    checks.views(z1, z2, "dcl_loss", batched=True)
    _unused_labels(labels, z1.shape[-2], "dcl_loss")
    logits, pos = _stacked_logits(z1, z2, tau)
    anchors = torch.arange(logits.shape[-1], device=logits.device)
    positive = _positive_logits(logits, pos)
    drop = torch.eye(logits.shape[-1], dtype=torch.bool, device=logits.device)
    drop[anchors, pos] = True
    negatives = logits.masked_fill(drop, float("-inf"))
    return (torch.logsumexp(negatives, dim=-1) - positive).mean(-1)


def dcl_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    tau: float = 0.5,
) -> torch.Tensor:
    r"""Decoupled contrastive learning loss, DCL (Yeh et al. 2022).

    InfoNCE with the positive removed from the denominator, both directions:

    .. math::
        \mathcal L = \frac{1}{2N}\sum_{a=1}^{2N}\Big[-\frac{w_a^\top w_{p(a)}}{\tau}
        + \log\sum_{b\notin\{a,\,p(a)\}}\exp(w_a^\top w_b/\tau)\Big].

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 2``.
        z2: Second view, shape ``(N, d)``; ``z2[i]`` is the positive of ``z1[i]``.
        labels: Ignored.
        tau: Temperature, > 0 (lightly's ``DCLLoss`` defaults to ``temperature=0.1``).

    Returns:
        The loss, a scalar tensor; shape ``(R,)`` for ``(R, N, d)`` views.
    """
    return _dcl(z1, z2, labels, **_check_tau("dcl_loss", tau))


@_full_precision
def _dhel(
    z1: torch.Tensor, z2: torch.Tensor, labels: Any, tau: float, both_views: bool
) -> torch.Tensor:
    checks.views(z1, z2, "dhel_loss", batched=True)
    _unused_labels(labels, z1.shape[-2], "dhel_loss")
    u, v = _unit_rows(z1), _unit_rows(z2)
    self_mask = torch.eye(u.shape[-2], dtype=torch.bool, device=u.device)

    def log_energy(x: torch.Tensor) -> torch.Tensor:
        """log sum_{j != i} exp(x_i . x_j / tau), one value per row i."""
        logits = (x @ x.transpose(-1, -2) / tau).masked_fill(self_mask, float("-inf"))
        return torch.logsumexp(logits, dim=-1)

    loss = -(u * v).sum(dim=-1) / tau + log_energy(u)
    if both_views:
        loss = loss + log_energy(v)
    return loss.mean(-1)


def dhel_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    tau: float = 0.5,
    both_views: bool = False,
) -> torch.Tensor:
    r"""Decoupled hyperspherical energy loss, DHEL (Koromilas et al. 2024).

    Alignment of the positive pair is decoupled from a uniformity (energy) term computed
    within one view:

    .. math::
        \mathcal L = \frac1N\sum_{i=1}^N\Big[-\frac{u_i^\top v_i}{\tau}
        + \log\sum_{j\neq i}\exp(u_i^\top u_j/\tau)\Big]
        \;\Big(+\;\frac1N\sum_{i}\log\sum_{j\neq i}\exp(v_i^\top v_j/\tau)
        \ \text{if both\_views}\Big).

    ``both_views=True`` is the authors' code (``DHEL(include_augs=True)`` in
    github.com/pakoromilas/DHEL-KCL, losses.py), which multiplies the two views'
    denominators. With ``both_views=False`` the loss is not symmetric in ``(z1, z2)``.
    The authors' defaults are ``tau=0.3, both_views=True``.

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 2``.
        z2: Second view, shape ``(N, d)``.
        labels: Ignored.
        tau: Temperature, > 0.
        both_views: Add the energy term of ``z2`` too.

    Returns:
        The loss, a scalar tensor; shape ``(R,)`` for ``(R, N, d)`` views.
    """
    return _dhel(z1, z2, labels, **_check_dhel("dhel_loss", tau, both_views))


# --------------------------------------------------------------------------------------
# Kernel contrastive learning
# --------------------------------------------------------------------------------------


# The kernels k(r) of the squared distance r = ||x - y||^2 live in one table,
# cl_lib.kernels, shared with the book's sphere energies; its docstring states the
# convention. Between the samples of one view r is computed on the sphere as 2 - 2 x.y
# (a matmul).
def _kernel_parameter(kernel: str, kernel_params: dict) -> tuple[Callable, float]:
    """
    Resolve and check the kernel name and its single parameter (Riesz s = 0 refused).
    """
    return resolve_kernel(kernel, kernel_params, allow_logarithmic=False)


def _check_kcl(where: str, kernel: str, gamma: float, **kernel_params: float) -> dict:
    kernel_fn, kernel_param = _kernel_parameter(kernel, kernel_params)
    return {
        "kernel_fn": kernel_fn,
        "kernel_param": kernel_param,
        "gamma": checks.nonnegative(gamma, "gamma", where),
    }


@_full_precision
def _kcl(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: Any,
    kernel_fn: Callable,
    kernel_param: float,
    gamma: float,
) -> torch.Tensor:
    checks.views(z1, z2, "kcl_loss", batched=True)
    _unused_labels(labels, z1.shape[-2], "kcl_loss")
    u, v = _unit_rows(z1), _unit_rows(z2)
    n = u.shape[-2]
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=u.device)

    def sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # on the sphere
        return (2 - 2 * (a @ b.transpose(-1, -2))).clamp_min(0)

    def energy(x: torch.Tensor) -> torch.Tensor:  # mean over ordered pairs i != j
        return kernel_fn(sq_dist(x, x)[..., off_diagonal], kernel_param).mean(-1)

    # positives are close, where 2 - 2 u.v cancels badly in float32: use u - v itself
    alignment = kernel_fn(((u - v) ** 2).sum(dim=-1), kernel_param).mean(-1)
    return -2 * alignment + gamma * (energy(u) + energy(v))


def kcl_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    kernel: str = "gaussian",
    gamma: float = 16.0,
    **kernel_params: float,
) -> torch.Tensor:
    r"""Kernel contrastive loss, KCL, as analysed by Koromilas et al. (2024).

    With a kernel :math:`K(x,y)=k(\|x-y\|^2)` on the sphere, alignment rewards a large
    kernel value for positive pairs and the (gamma-weighted) energy penalises it for
    other pairs of the same view:

    .. math::
        \mathcal L = -\frac{2}{N}\sum_{i}K(u_i,v_i) + \gamma\Big[\frac{1}{N(N-1)}
        \sum_{i\neq j} K(u_i,u_j) + \frac{1}{N(N-1)}\sum_{i\neq j}K(v_i,v_j)\Big].

    Kernels (``r = ||x-y||^2``; table and defaults in :mod:`cl_lib.kernels`, those of
    the authors' code github.com/pakoromilas/DHEL-KCL except Riesz):

    * ``"gaussian"``: :math:`k(r) = e^{-t r}`, ``t=2``;
    * ``"log"``: :math:`k(r) = -\log(1 + t r)`, ``t=2``;
    * ``"imq"`` (inverse multiquadric): :math:`k(r) = c/\sqrt{c^2 + r}`, ``c=2``;
    * ``"riesz"``: :math:`k(r) = \operatorname{sign}(s)\, r^{-s/2}`, i.e.
      :math:`\|x-y\|^{-s}` for :math:`s>0` and :math:`-\|x-y\|^{|s|}` for :math:`s<0`;
      ``s=-1`` here. For :math:`s>0` the alignment term is unbounded below (it tends to
      :math:`-\infty` as a positive pair aligns), which is why the authors' code pairs
      the Riesz energy with a Gaussian alignment ("gaussian_riesz"; not provided here).
      The authors' default parameter is ``t=2`` for every kernel, i.e. ``s=2`` for
      Riesz.

    Deviation from the authors' code, on purpose: their ``log`` kernel uses
    :math:`-\tfrac12\log(1+tr)` in the energy but :math:`-\log(1+tr)` in the alignment;
    here one kernel is used in both terms, so the authors' loss equals this one with
    ``gamma/2``.

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 2``.
        z2: Second view, shape ``(N, d)``.
        labels: Ignored.
        kernel: One of ``"gaussian"``, ``"log"``, ``"imq"``, ``"riesz"``.
        gamma: Weight of the energy term, >= 0.
        **kernel_params: The kernel's one parameter, ``t``, ``c`` or ``s`` (see above).

    Returns:
        The loss, a scalar tensor; shape ``(R,)`` for ``(R, N, d)`` views.
    """
    return _kcl(
        z1, z2, labels, **_check_kcl("kcl_loss", kernel, gamma, **kernel_params)
    )


# --------------------------------------------------------------------------------------
# VICReg and Barlow Twins: losses and their terms
# --------------------------------------------------------------------------------------


def _vicreg_invariance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x - y) ** 2).mean()


def _vicreg_variance(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    return F.relu(1 - torch.sqrt(x.var(dim=0) + eps)).mean()


def _vicreg_covariance(x: torch.Tensor) -> torch.Tensor:
    n, d = x.shape
    x = x - x.mean(dim=0)
    return _off_diagonal_sq_sum(x.T @ x / (n - 1)) / d


@_full_precision
def vicreg_invariance_term(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    r"""VICReg's invariance term: the mean squared difference of the two views,
    :math:`s(Z, Z') = \frac{1}{Nd}\sum_i \|z_i - z'_i\|^2` (lightly and solo-learn:
    ``invariance_loss``, i.e. ``F.mse_loss``).

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 1``.
        z2: Second view, shape ``(N, d)``.

    Returns:
        The term, a scalar tensor.
    """
    checks.views(z1, z2, "vicreg_invariance_term", min_rows=1)
    return _vicreg_invariance(_cast_up(z1), _cast_up(z2))


@_full_precision
def vicreg_variance_term(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    r"""VICReg's variance term of one view: the mean hinge on the standard deviation of
    each dimension (unbiased variance),

    .. math::
        v(Z) = \frac1d\sum_k
        \max\big(0, 1 - \sqrt{\mathrm{Var}(Z_{:,k}) + \epsilon}\big)

    (lightly: ``variance_loss(x, eps)``; solo-learn's ``variance_loss(z1, z2)`` is the
    sum over both views).

    Args:
        z: One view, shape ``(N, d)``, ``N >= 2``.
        eps: Added to the variance before the square root, > 0.

    Returns:
        The term, a scalar tensor in ``[0, 1)``.
    """
    checks.embeddings(z, "z", "vicreg_variance_term", min_rows=2)
    eps = checks.positive(eps, "eps", "vicreg_variance_term")
    return _vicreg_variance(_cast_up(z), eps)


@_full_precision
def vicreg_covariance_term(z: torch.Tensor) -> torch.Tensor:
    r"""VICReg's covariance term of one view: the squared off-diagonal entries of the
    covariance matrix :math:`C(Z)` (divisor :math:`N-1`), summed and divided by
    :math:`d`: :math:`c(Z) = \frac1d\sum_{k\neq l} C(Z)_{kl}^2` (lightly:
    ``covariance_loss(x)``).

    Args:
        z: One view, shape ``(N, d)``, ``N >= 2``.

    Returns:
        The term, a scalar tensor.
    """
    checks.embeddings(z, "z", "vicreg_covariance_term", min_rows=2)
    return _vicreg_covariance(_cast_up(z))


@_full_precision
def _vicreg(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: Any,
    sim_coeff: float,
    std_coeff: float,
    cov_coeff: float,
) -> torch.Tensor:
    checks.views(z1, z2, "vicreg_loss")
    _unused_labels(labels, z1.shape[0], "vicreg_loss")
    x, y = _cast_up(z1), _cast_up(z2)
    return (
        sim_coeff * _vicreg_invariance(x, y)
        + std_coeff * (_vicreg_variance(x) + _vicreg_variance(y)) / 2
        + cov_coeff * (_vicreg_covariance(x) + _vicreg_covariance(y))
    )


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
) -> torch.Tensor:
    r"""VICReg (Bardes, Ponce & LeCun 2022), as in the authors' code and lightly.

    .. math::
        \mathcal L = \lambda\, s(Z^{(1)}, Z^{(2)})
        + \mu\,\tfrac12\big[v(Z^{(1)}) + v(Z^{(2)})\big]
        + \nu\big[c(Z^{(1)}) + c(Z^{(2)})\big],

    with the invariance :math:`s` (:func:`vicreg_invariance_term`), variance :math:`v`
    (:func:`vicreg_variance_term`, :math:`\epsilon = 10^{-4}`) and covariance :math:`c`
    (:func:`vicreg_covariance_term`) terms, on the raw embeddings (no normalisation).
    The variance term is halved as in the authors' code, for which the defaults 25/25/1
    were tuned.

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 2``.
        z2: Second view, shape ``(N, d)``.
        labels: Ignored.
        sim_coeff: :math:`\lambda` >= 0 (lightly ``lambda_param``, solo-learn
            ``sim_loss_weight``).
        std_coeff: :math:`\mu` >= 0 (lightly ``mu_param``, solo-learn
            ``var_loss_weight``).
        cov_coeff: :math:`\nu` >= 0 (lightly ``nu_param``, solo-learn
            ``cov_loss_weight``).

    Returns:
        The loss, a scalar tensor.
    """
    return _vicreg(
        z1, z2, labels, **_check_vicreg("vicreg_loss", sim_coeff, std_coeff, cov_coeff)
    )


def _cross_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # BatchNorm without affine parameters
    def standardise(
        a: torch.Tensor,
    ) -> torch.Tensor:
        return (a - a.mean(dim=0)) / torch.sqrt(a.var(dim=0, unbiased=False) + 1e-5)

    return standardise(x).T @ standardise(y) / x.shape[0]


def _barlow_invariance(c: torch.Tensor) -> torch.Tensor:
    return ((1 - torch.diagonal(c)) ** 2).sum()


def _check_square(c: Any, where: str) -> torch.Tensor:
    checks.embeddings(c, "c", where, min_rows=1)
    if c.shape[0] != c.shape[1]:
        raise checks.fail(
            where, "c", "a square (d, d) matrix", f"shape {tuple(c.shape)}"
        )
    return _cast_up(c)


@_full_precision
def barlow_twins_cross_correlation(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    r"""Barlow Twins' cross-correlation matrix of two views,
    :math:`C_{kl} = \frac1N\sum_i \hat z^{(1)}_{ik}\,\hat z^{(2)}_{il}`, where
    :math:`\hat z` is each dimension standardised over the batch (mean 0, biased
    variance 1, ``1e-5`` added inside the square root: BatchNorm without affine
    parameters, as in the authors' code, lightly and solo-learn).

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 2``.
        z2: Second view, shape ``(N, d)``.

    Returns:
        :math:`C`, shape ``(d, d)``.
    """
    checks.views(z1, z2, "barlow_twins_cross_correlation")
    return _cross_correlation(_cast_up(z1), _cast_up(z2))


@_full_precision
def barlow_twins_invariance_term(c: torch.Tensor) -> torch.Tensor:
    r"""Barlow Twins' invariance term :math:`\sum_k (1 - C_{kk})^2`.

    Args:
        c: Cross-correlation matrix, shape ``(d, d)``
            (:func:`barlow_twins_cross_correlation`).

    Returns:
        The term, a scalar tensor.
    """
    return _barlow_invariance(_check_square(c, "barlow_twins_invariance_term"))


@_full_precision
def barlow_twins_redundancy_term(c: torch.Tensor) -> torch.Tensor:
    r"""Barlow Twins' redundancy-reduction term :math:`\sum_{k\neq l} C_{kl}^2`.

    Args:
        c: Cross-correlation matrix, shape ``(d, d)``
            (:func:`barlow_twins_cross_correlation`).

    Returns:
        The term, a scalar tensor.
    """
    return _off_diagonal_sq_sum(_check_square(c, "barlow_twins_redundancy_term"))


@_full_precision
def _barlow_twins(
    z1: torch.Tensor, z2: torch.Tensor, labels: Any, lambd: float
) -> torch.Tensor:
    checks.views(z1, z2, "barlow_twins_loss")
    _unused_labels(labels, z1.shape[0], "barlow_twins_loss")
    c = _cross_correlation(_cast_up(z1), _cast_up(z2))
    return _barlow_invariance(c) + lambd * _off_diagonal_sq_sum(c)


def barlow_twins_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    lambd: float = 5e-3,
) -> torch.Tensor:
    r"""Barlow Twins (Zbontar et al. 2021).

    .. math::
        \mathcal L = \sum_k (1 - C_{kk})^2 + \lambda\sum_{k\neq l} C_{kl}^2,

    with :math:`C` the cross-correlation matrix of the standardised views
    (:func:`barlow_twins_cross_correlation`; terms :func:`barlow_twins_invariance_term`
    and :func:`barlow_twins_redundancy_term`). Not a mean over the batch: :math:`C`
    already averages over it. Unlike solo-learn, no final ``scale_loss`` factor.

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 2``.
        z2: Second view, shape ``(N, d)``.
        labels: Ignored.
        lambd: :math:`\lambda` >= 0 (lightly ``lambda_param``, solo-learn ``lamb``; 5e-3
            is lightly's default, which lightly attributes to the paper).

    Returns:
        The loss, a scalar tensor.
    """
    return _barlow_twins(z1, z2, labels, **_check_barlow("barlow_twins_loss", lambd))


# --------------------------------------------------------------------------------------
# Supervised contrastive losses
# --------------------------------------------------------------------------------------


@_full_precision
def _supcon(
    z1: torch.Tensor, z2: torch.Tensor, labels: Any, tau: float
) -> torch.Tensor:
    checks.views(z1, z2, "supcon_loss")
    labels = checks.labels(labels, z1.shape[0], "supcon_loss", device=z1.device)
    logits, _ = _stacked_logits(z1, z2, tau)
    y = torch.cat([labels, labels])
    self_mask = torch.eye(y.shape[0], dtype=torch.bool, device=logits.device)
    positives = (y[:, None] == y[None, :]) & ~self_mask
    log_prob = logits - torch.logsumexp(
        logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True
    )
    # mean of log_prob over positives; masked_fill, not a product, keeps -inf/NaN out
    mean_log_prob_pos = log_prob.masked_fill(~positives, 0).sum(dim=1) / positives.sum(
        dim=1
    )
    return -mean_log_prob_pos.mean()


def supcon_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    tau: float = 0.1,
) -> torch.Tensor:
    r"""Supervised contrastive loss :math:`\mathcal L^{sup}_{out}` (Khosla et al. 2020).

    Over the 2N stacked views, positives :math:`P(a) = \{p\neq a: y_p = y_a\}` (always
    contains the other view of the same sample), :math:`A(a) = \{b \neq a\}`:

    .. math::
        \mathcal L = \frac{1}{2N}\sum_{a=1}^{2N}\frac{-1}{|P(a)|}\sum_{p\in P(a)}
        \log\frac{\exp(w_a^\top w_p/\tau)}{\sum_{b\in A(a)}\exp(w_a^\top w_b/\tau)} .

    The "out" variant (the :math:`1/|P|` outside the log). The authors' code also
    multiplies by ``tau / base_temperature``; here that factor is 1.

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 2``.
        z2: Second view, shape ``(N, d)``.
        labels: Class indices >= 0, shape ``(N,)``; required.
        tau: Temperature, > 0.

    Returns:
        The loss, a scalar tensor.
    """
    return _supcon(z1, z2, labels, **_check_tau("supcon_loss", tau))


@_full_precision
def _nscl(
    z1: torch.Tensor, z2: torch.Tensor, labels: Any, tau: float, decoupled: bool
) -> torch.Tensor:
    checks.views(z1, z2, "nscl_loss")
    labels = checks.labels(
        labels,
        z1.shape[0],
        "nscl_loss",
        device=z1.device,
        min_classes=2 if decoupled else 0,
    )
    logits, pos = _stacked_logits(z1, z2, tau)
    y = torch.cat([labels, labels])
    anchors = torch.arange(y.shape[0], device=logits.device)
    keep = y[:, None] != y[None, :]  # different class: the negatives
    keep[anchors, pos] = not decoupled  # plus, by default, the positive itself
    denominator = torch.logsumexp(logits.masked_fill(~keep, float("-inf")), dim=1)
    return (denominator - logits[anchors, pos]).mean()


def nscl_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    tau: float = 0.5,
    decoupled: bool = False,
) -> torch.Tensor:
    r"""Negatives-only supervised contrastive loss, NSCL (Luthra, Yang & Galanti 2025).

    InfoNCE over the 2N stacked views in which every same-class sample is dropped from
    the denominator; by default the positive (other view of the anchor) stays:

    .. math::
        \mathcal L = \frac{1}{2N}\sum_{a=1}^{2N} -\log
        \frac{\exp(w_a^\top w_{p(a)}/\tau)}{\exp(w_a^\top w_{p(a)}/\tau)
        + \sum_{b:\,y_b\neq y_a}\exp(w_a^\top w_b/\tau)} .

    This is what the authors' training code computes (``WeakNTXentLoss``, loss name
    ``"weak_simclr"``, in utils/losses.py of
    github.com/DLFundamentals/understanding-ssl: cross-entropy over the logits
    [positive, samples of another class]); with all labels distinct it is
    :func:`infonce_loss`.

    **Not the paper's global NSCL.** The loss the paper analyses (its CL--NSCL gap bound
    and its global minimisers) is *decoupled* and *global*: the positive is not in the
    denominator, the denominator runs over all views of all different-class samples of
    the data set, and the numerator averages over all :math:`K^2` view pairs. It is the
    supervised twin of the global DCL (Yeh et al. 2022) and is implemented by
    :func:`cl_lib.experiments.theory.global_dcl_nscl`.

    ``decoupled=True`` drops the positive from the denominator too (only different-class
    samples remain): the mini-batch, two-view form of the paper's loss, the supervised
    analogue of :func:`dcl_loss` (equal to it when all labels are distinct); it needs at
    least two classes in the batch. Both differences, ``infonce_loss - nscl_loss`` and
    ``dcl_loss - nscl_loss(decoupled=True)``, lie in
    :math:`[0, \log(1 + n_\max e^{2/\tau}/(N - n_\max))]` for every batch
    (:func:`cl_lib.experiments.theory.cl_nscl_gap_bound`).

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 2``.
        z2: Second view, shape ``(N, d)``.
        labels: Class indices >= 0, shape ``(N,)``; required (at least two classes when
            ``decoupled``).
        tau: Temperature, > 0.
        decoupled: Drop the positive from the denominator.

    Returns:
        The loss, a scalar tensor.
    """
    return _nscl(z1, z2, labels, **_check_nscl("nscl_loss", tau, decoupled))


# --------------------------------------------------------------------------------------
# CLOA: contrastive learning with orthonormal anchors (Li & Pimentel-Alarcón 2024)
# --------------------------------------------------------------------------------------


def make_anchors(num_classes: int, dim: int, seed: int = 0) -> torch.Tensor:
    r"""Fixed random orthonormal class anchors :math:`c_1,\dots,c_C\in\mathbb R^d` of
    CLOA (Li & Pimentel-Alarcón 2024).

    QR of a seeded Gaussian ``(d, C)`` matrix, with the signs fixed so that R has a
    positive diagonal (so the result depends only on ``seed``, not on the global RNG).

    Args:
        num_classes: Number of anchors ``C``, ``1 <= C <= dim``.
        dim: Embedding dimension ``d``.
        seed: Seed of the Gaussian matrix.

    Returns:
        Anchors with orthonormal rows, float32, CPU, shape ``(C, d)``.
    """
    num_classes = checks.integer(num_classes, "num_classes", "make_anchors", minimum=1)
    dim = checks.integer(dim, "dim", "make_anchors", minimum=1)
    seed = checks.integer(seed, "seed", "make_anchors")
    if num_classes > dim:
        raise checks.fail(
            "make_anchors",
            "num_classes",
            f"<= dim = {dim} (orthonormal anchors; need num_classes <= dim)",
            num_classes,
        )
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(dim, num_classes, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)  # q: (d, C) orthonormal columns
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # unique QR: diag(R) > 0
    return q.T.contiguous().to(torch.float32)


def _check_anchor_inputs(
    z: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor, where: str
) -> None:
    """Anchors match the embeddings, and every label >= 0 has an anchor."""
    checks.embeddings(anchors, "anchors", where, min_rows=1)
    if anchors.shape[1] != z.shape[1]:
        raise checks.fail(
            where,
            "anchors",
            f"of shape (num_classes, {z.shape[1]}) to match the embeddings",
            f"shape {tuple(anchors.shape)}",
        )
    too_large = checks.reads_values() and labels.numel()
    if too_large and int(labels.max()) >= anchors.shape[0]:
        raise checks.fail(
            where,
            "labels",
            f"< {anchors.shape[0]}, the number of anchors (a label has no anchor)",
            f"max {int(labels.max())}",
        )


def _anchor_term(
    z: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor
) -> torch.Tensor:
    u = _unit_rows(z)
    c = F.normalize(anchors.to(device=u.device, dtype=u.dtype), dim=1)
    labelled = labels >= 0
    # unlabelled rows get a dummy anchor ...
    cosine = (u * c[labels.clamp_min(0)]).sum(dim=1)
    per_sample = (1 - cosine) * labelled  # ... and are zeroed here
    return per_sample.sum() / labelled.sum().clamp_min(1)


@_full_precision
def cloa_anchor_term(
    z: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor
) -> torch.Tensor:
    r"""CLOA's orthonormal-anchor regression term (Li & Pimentel-Alarcón 2024, eq. 2),
    averaged over the labelled samples.

    The paper's eq. (2) is :math:`\mathcal L_{\rm CLOA} = \sum_{i\in S}\big(1 - s(z_i,
    c_{y_i})\big)` with :math:`s` the cosine similarity and :math:`S` the labelled
    samples; here it is divided by :math:`|S|`, so the weight does not depend on the
    batch size. With no labelled sample the result is 0 (still attached to the graph of
    ``z``).

    Args:
        z: Embeddings, shape ``(M, d)`` (e.g. both views stacked).
        labels: Class indices ``0..C-1``, or ``-1`` for an unlabelled sample, shape
            ``(M,)``.
        anchors: Class anchors, shape ``(C, d)`` (:func:`make_anchors`).

    Returns:
        The term, a scalar tensor in ``[0, 2]``.
    """
    checks.embeddings(z, "z", "cloa_anchor_term", min_rows=1)
    labels = checks.labels(
        labels, z.shape[0], "cloa_anchor_term", allow_unlabelled=True, device=z.device
    )
    _check_anchor_inputs(z, labels, anchors, "cloa_anchor_term")
    return _anchor_term(z, labels, anchors)


class _Anchors:
    """CLOA's anchors: given, or made by :func:`make_anchors` for the embedding
    dimension at first use; kept per (dimension, device, dtype) so that a training step
    copies nothing."""

    def __init__(
        self, anchors: torch.Tensor | None, num_classes: int | None, seed: int
    ):
        self.given, self.num_classes, self.seed = anchors, num_classes, seed
        self.cache: dict = {}

    def __call__(
        self, dim: int, device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor:
        key = (dim, device, dtype)
        if key not in self.cache:
            anchors = self.given
            if anchors is None:
                anchors = make_anchors(self.num_classes, dim, self.seed)
            self.cache[key] = anchors.to(device=device, dtype=dtype)
        return self.cache[key]


def _check_cloa(
    where: str,
    anchors: torch.Tensor | None,
    num_classes: int | None,
    seed: int,
    weight: float,
    base: str,
    **base_hyperparameters: Any,
) -> dict:
    if (anchors is None) == (num_classes is None):
        raise checks.fail(
            where,
            "anchors or num_classes",
            "given, exactly one of them (anchors: a (C, d) tensor)",
            f"anchors={_short(anchors)}, num_classes={num_classes!r}",
        )
    if anchors is not None:
        checks.embeddings(anchors, "anchors", where, min_rows=1)
    else:
        num_classes = checks.integer(num_classes, "num_classes", where, minimum=1)
    seed = checks.integer(seed, "seed", where)
    weight = checks.nonnegative(weight, "weight", where)
    checks.one_of(
        base, [name for name in LOSSES if name != "cloa"] + ["none"], "base", where
    )
    if base == "none" and base_hyperparameters:
        raise checks.fail(
            where,
            "hyper-parameters",
            "none with base='none' (the anchor term alone)",
            f"{sorted(base_hyperparameters)}",
        )
    base_spec = None if base == "none" else LOSSES[base]
    return {
        "anchors": _Anchors(anchors, num_classes, seed),
        "weight": weight,
        "base": base_spec,
        "base_hyperparameters": (
            {} if base_spec is None else base_spec.resolve(**base_hyperparameters)
        ),
    }


def _short(x: Any) -> str:
    return (
        f"a tensor of shape {tuple(x.shape)}"
        if isinstance(x, torch.Tensor)
        else repr(x)
    )


@_full_precision
def _cloa(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: Any,
    anchors: _Anchors,
    weight: float,
    base: "LossSpec | None",
    base_hyperparameters: dict,
) -> torch.Tensor:
    checks.views(z1, z2, "cloa_loss")
    labels = checks.labels(
        labels, z1.shape[0], "cloa_loss", allow_unlabelled=True, device=z1.device
    )
    z = torch.cat([z1, z2])
    anchor_matrix = anchors(z.shape[1], z.device, _compute_dtype(z))
    _check_anchor_inputs(z, labels, anchor_matrix, "cloa_loss")
    anchor = weight * _anchor_term(z, torch.cat([labels, labels]), anchor_matrix)
    if base is None:  # the anchor term alone: the control for CLOA's label signal
        return anchor
    base_loss = base.compute(
        z1, z2, labels if base.needs_labels else None, **base_hyperparameters
    )
    return base_loss + anchor


def cloa_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    anchors: torch.Tensor | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    weight: float = 1.0,
    base: str = "infonce",
    **base_hyperparameters: Any,
) -> torch.Tensor:
    r"""CLOA (Li & Pimentel-Alarcón 2024): a contrastive base loss plus the anchor term
    on both views.

    .. math::
        \mathcal L = \mathcal L_{\rm base}(z^{(1)}, z^{(2)}) + \lambda\,
        \mathcal L_{\rm CLOA}\big([z^{(1)}; z^{(2)}],\,[y; y]\big),

    where :math:`\mathcal L_{\rm CLOA}` is :func:`cloa_anchor_term` (mean over the
    labelled samples of both views; the paper's eq. 2 sums) and :math:`\lambda` =
    ``weight``. The paper adds the term to InfoNCE (its eq. 1), the default base here.

    Args:
        z1: First view, shape ``(N, d)``, ``N >= 2``.
        z2: Second view, shape ``(N, d)``.
        labels: Class indices ``0..C-1``, or ``-1`` for unlabelled samples, shape
            ``(N,)``; required (all ``-1`` is allowed: then only the base loss remains).
        anchors: Class anchors, shape ``(C, d)``; or give ``num_classes`` instead.
        num_classes: Number of classes ``C``: anchors are then
            ``make_anchors(C, d, seed)``.
        seed: Seed of :func:`make_anchors`.
        weight: :math:`\lambda` >= 0.
        base: Name of the base loss in :data:`LOSSES` (not ``"cloa"``); its labels are
            passed on if it needs them. ``"none"``: the anchor term alone (no
            hyper-parameters), the control that isolates the label signal.
        **base_hyperparameters: Hyper-parameters of the base loss, e.g. ``tau``.

    Returns:
        The loss, a scalar tensor.
    """
    return _cloa(
        z1,
        z2,
        labels,
        **_check_cloa(
            "cloa_loss",
            anchors,
            num_classes,
            seed,
            weight,
            base,
            **base_hyperparameters,
        ),
    )


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossSpec:
    """One loss of the registry :data:`LOSSES`.

    Attributes:
        name: Registry name, e.g. ``"infonce"``.
        function: The public loss, e.g. :func:`infonce_loss`.
        needs_labels: Whether the loss raises ``ValueError`` without labels.
        defaults: Named hyper-parameters and their defaults (the function's keyword-only
            arguments), e.g. ``{"tau": 0.5}``.
        more_hyperparameters: What else the function takes as keyword arguments (``""``
            for none): KCL its kernel's parameter, CLOA its base loss's
            hyper-parameters.
        check: ``check(where, **hyperparameters) -> arguments``, used by
            :meth:`resolve`.
        compute: ``compute(z1, z2, labels, **arguments)``: the loss without
            hyper-parameter checks (the inputs are still checked).
    """

    name: str
    function: Callable[..., torch.Tensor]
    needs_labels: bool
    defaults: Mapping[str, Any]
    more_hyperparameters: str
    check: Callable[..., dict] = field(repr=False, compare=False)
    compute: Callable[..., torch.Tensor] = field(repr=False, compare=False)

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        """Names of the named hyper-parameters."""
        return tuple(self.defaults)

    def resolve(self, **hyperparameters: Any) -> dict:
        """Check hyper-parameters (defaults filled in) and return the compute arguments.

        Args:
            **hyperparameters: Keyword arguments for the loss.

        Returns:
            The checked arguments of ``compute(z1, z2, labels, **arguments)``.
        """
        where = self.function.__name__
        unknown = sorted(set(hyperparameters) - set(self.defaults))
        if unknown and not self.more_hyperparameters:
            raise checks.fail(
                where,
                "hyper-parameters",
                f"among {list(self.defaults)}",
                f"unknown {unknown}",
            )
        return self.check(where, **{**self.defaults, **hyperparameters})


def _spec(
    name: str,
    function: Callable,
    needs: bool,
    check: Callable,
    compute: Callable,
    more: str = "",
) -> LossSpec:
    parameters = inspect.signature(function).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}
    defaults = MappingProxyType(defaults)  # read-only: the function's signature rules
    return LossSpec(name, function, needs, defaults, more, check, compute)


LOSSES: dict[str, LossSpec] = {
    spec.name: spec
    for spec in [
        _spec("infonce", infonce_loss, False, _check_tau, _infonce),
        _spec("dcl", dcl_loss, False, _check_tau, _dcl),
        _spec("dhel", dhel_loss, False, _check_dhel, _dhel),
        _spec(
            "kcl",
            kcl_loss,
            False,
            _check_kcl,
            _kcl,
            more="the kernel's parameter t, c or s",
        ),
        _spec("vicreg", vicreg_loss, False, _check_vicreg, _vicreg),
        _spec("barlow_twins", barlow_twins_loss, False, _check_barlow, _barlow_twins),
        _spec(
            "cloa",
            cloa_loss,
            True,
            _check_cloa,
            _cloa,
            more="the base loss's hyper-parameters, e.g. tau",
        ),
        _spec("supcon", supcon_loss, True, _check_tau, _supcon),
        _spec("nscl", nscl_loss, True, _check_nscl, _nscl),
    ]
}
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)


def loss_spec(name: str) -> LossSpec:
    """The registry entry of a loss.

    Args:
        name: A name of :data:`LOSS_NAMES`.

    Returns:
        Its :class:`LossSpec`.
    """
    if name not in LOSSES:
        raise checks.fail(
            "get_loss",
            "the loss name",
            f"one of {list(LOSS_NAMES)} (unknown loss)",
            repr(name),
        )
    return LOSSES[name]


def needs_labels(name: str) -> bool:
    """Whether the loss called ``name`` needs class labels (``supcon``, ``nscl``,
    ``cloa``).

    Args:
        name: A name of :data:`LOSS_NAMES`.

    Returns:
        ``True`` if the loss raises ``ValueError`` without labels.
    """
    return loss_spec(name).needs_labels


def get_loss(name: str, **hyperparameters: Any) -> Callable[..., torch.Tensor]:
    """A loss by name with its hyper-parameters fixed and checked now, once.

    Example: ``get_loss("infonce", tau=0.2)(z1, z2)``;
    ``get_loss("cloa", num_classes=10, seed=0, weight=1.0, tau=0.2)(z1, z2, labels)``.

    Args:
        name: A name of :data:`LOSS_NAMES`.
        **hyperparameters: Keyword arguments of the loss (:attr:`LossSpec.defaults`,
            plus the kernel parameter for ``"kcl"`` and the base loss's for ``"cloa"``).

    Returns:
        ``loss(z1, z2, labels=None) -> scalar tensor``; inputs are still checked per
        call.
    """
    spec = loss_spec(name)
    arguments = spec.resolve(**hyperparameters)
    compute = spec.compute

    def loss(
        z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        return compute(z1, z2, labels, **arguments)

    loss.__name__ = loss.__qualname__ = spec.function.__name__
    loss.__doc__ = f"{spec.function.__name__} with {hyperparameters or 'its defaults'}."
    return loss
