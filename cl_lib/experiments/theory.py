r"""Theory helpers for chapters 6--8: why contrastive learning learns classes, how many
negatives it needs, and what a linear contrastive encoder learns on a Gaussian mixture.

Read top to bottom; every function computes one quantity of one paper.

1. Synthetic class-structured data (:func:`make_class_data`, :func:`make_gmm_pairs`).
2. CL vs NSCL (Luthra, Yang & Galanti 2025, arXiv:2506.04411): :func:`global_dcl_nscl`
   (the global decoupled loss and its negatives-only supervised twin),
   :func:`cl_nscl_gap_bound` (their CL--NSCL gap bound, paraphrased),
   :func:`collapse_metrics` (the geometry of the NSCL minimisers), :func:`cdnv`,
   :func:`directional_cdnv`, :func:`ncc_fewshot_error`, :func:`fewshot_error_bound` (a
   few-shot bound of the
   paper's form). On learned features: :func:`load_book_dataset`,
   :func:`train_contrastive` (a small SimCLR loop that records measurements at
   checkpoints), :func:`embed_views`, :func:`backbone_features`,
   :func:`gap_similarity_ratio`, :func:`gap_and_bound`, :func:`subset_losses`. The
   NSCL minimisers on free points: :func:`nscl_free_points`, :func:`simplex_view`.
3. Negative sample size (Bao, Nagano & Nozawa 2022, arXiv:2110.02501):
   :func:`contrastive_loss_mc`, :func:`mean_classifier_loss`, :func:`surrogate_bounds`.
4. Fisher LDA vs PCA (Bansal, Kavis & Sanghavi 2024): :func:`lda_subspace`,
   :func:`pca_subspace`, :func:`principal_angles`, :func:`train_linear_infonce`.
5. alpha-CL (Tian 2022): :func:`alpha_weights`, :func:`alpha_entropy`,
   :func:`min_player_objective`.

Measurements compute in float64 (printed digits must not depend on float32 round-off)
and raise ``ValueError`` with a message on bad input.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

from cl_lib import checks

__all__ = [
    "make_class_data",
    "make_gmm_pairs",
    "global_dcl_nscl",
    "cl_nscl_gap_bound",
    "load_book_dataset",
    "embed_views",
    "train_contrastive",
    "gap_similarity_ratio",
    "gap_and_bound",
    "subset_losses",
    "backbone_features",
    "nscl_free_points",
    "simplex_view",
    "collapse_metrics",
    "simplex_etf_cosine",
    "class_means",
    "cdnv",
    "directional_cdnv",
    "ncc_fewshot_error",
    "fewshot_error_bound",
    "fewshot_bound_terms",
    "pairwise_ncc_error",
    "pairwise_cantelli_bound",
    "contrastive_loss_mc",
    "mean_classifier_loss",
    "surrogate_bounds",
    "lda_subspace",
    "pca_subspace",
    "orthonormal_basis",
    "principal_angles",
    "train_linear_infonce",
    "alpha_weights",
    "alpha_entropy",
    "min_player_objective",
]


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def _check_labels(labels: torch.Tensor, n: int, min_classes: int = 2) -> torch.Tensor:
    """Class indices >= 0, one per sample, at least ``min_classes`` classes (long)."""
    return checks.labels(labels, n, min_classes=min_classes)


def _check_matrix(z: torch.Tensor, name: str = "z", ndim: int = 2) -> torch.Tensor:
    """A finite tensor with ``ndim`` dimensions (integer dtypes allowed)."""
    return checks.embeddings(z, name, ndim=ndim, min_rows=0, floating=False)


def _check_positive(value: float, name: str) -> float:
    return checks.positive(value, name)


def _dense_labels(labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Map arbitrary class ids to 0..C-1 (classes in sorted order)."""
    classes, dense = labels.unique(return_inverse=True)
    return dense, classes.numel()


# --------------------------------------------------------------------------------------
# 1. Synthetic data
# --------------------------------------------------------------------------------------


def make_class_data(
    num_classes: int,
    n_per_class: int,
    dim: int,
    num_views: int = 2,
    class_std: float = 1.0,
    within_std: float = 0.5,
    view_std: float = 0.2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Class-structured "embeddings" with augmentations.

    Sample $i$ of class $c$ is $x_i = m_c + \epsilon_i$ with class centre
    $m_c\sim\mathcal N(0,\sigma_c^2 I_d)$ and $\epsilon_i\sim\mathcal N(0,\sigma_w^2
    I_d)$; its view $l$ is $x_i^l = x_i + \eta_i^l$, $\eta_i^l\sim\mathcal
    N(0,\sigma_v^2 I_d)$ (augmentation noise). Returns ``views`` of shape ``(N,
    num_views, dim)`` and ``labels`` ``(N,)`` with $N = C\,n$, classes in blocks."""
    if num_classes < 2 or n_per_class < 1 or dim < 1 or num_views < 1:
        raise ValueError(
            "need num_classes >= 2, n_per_class >= 1, dim >= 1, num_views >= 1"
        )
    for v, name in (
        (class_std, "class_std"),
        (within_std, "within_std"),
        (view_std, "view_std"),
    ):
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    g = torch.Generator().manual_seed(seed)
    centres = class_std * torch.randn(
        num_classes, dim, generator=g, dtype=torch.float64
    )
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = centres[labels] + within_std * torch.randn(
        len(labels), dim, generator=g, dtype=torch.float64
    )
    views = x[:, None, :] + view_std * torch.randn(
        len(labels), num_views, dim, generator=g, dtype=torch.float64
    )
    return views, labels


def make_gmm_pairs(
    n: int,
    num_classes: int = 3,
    dim: int = 10,
    signal_dims: int = 2,
    mean_scale: float = 2.0,
    signal_noise: float = 0.5,
    nuisance_std: float = 3.0,
    aug_mix: float = 0.5,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""A Gaussian mixture in which PCA and Fisher LDA disagree, with positive pairs.

    Component means live in the first ``signal_dims`` coordinates (a regular simplex
    with edge ``mean_scale`` when ``signal_dims >= num_classes - 1``, else Gaussian with
    that scale) where the within-component noise is small (``signal_noise``); the other
    ``dim - signal_dims`` coordinates carry only large nuisance noise
    (``nuisance_std``), so the top principal components are nuisance directions while
    the discriminant (LDA) directions are the signal coordinates. Everything is rotated
    by a random orthogonal matrix so that neither subspace is axis-aligned.

    Positive pairs follow Bansal et al.'s coupled draw: the augmentation of $x$
    (component $c$) is $x^+ = \sqrt{1-a}\,(x-\mu_c) + \sqrt{a}\,(x'-\mu_c) + \mu_c$ with
    $x'$ a fresh draw of the same component and $a$ = ``aug_mix`` in $[0, 1]$:
    marginally $x^+$ is again from component $c$, and $a$ sets how noisy the
    augmentation is ($a=1$: an independent same-class sample).

    Returns ``(x, x_pos, labels)`` with shapes ``(n, dim)``, ``(n, dim)``, ``(n,)``.
    """
    if not (num_classes >= 2 and 1 <= signal_dims < dim and n >= num_classes):
        raise ValueError(
            "need num_classes >= 2, 1 <= signal_dims < dim and n >= num_classes"
        )
    if not 0.0 <= aug_mix <= 1.0:
        raise ValueError(f"aug_mix must be in [0, 1], got {aug_mix}")
    g = torch.Generator().manual_seed(seed)
    means = torch.zeros(num_classes, dim, dtype=torch.float64)
    # equidistant means: a regular simplex, edge mean_scale
    if signal_dims >= num_classes - 1:
        simplex = torch.eye(num_classes, dtype=torch.float64) - 1.0 / num_classes
        # (C-1, C) orthonormal rows
        basis = torch.linalg.svd(simplex).Vh[: num_classes - 1]
        means[:, : num_classes - 1] = mean_scale / math.sqrt(2) * simplex @ basis.T
    else:
        means[:, :signal_dims] = mean_scale * torch.randn(
            num_classes, signal_dims, generator=g, dtype=torch.float64
        )
    std = torch.full((dim,), nuisance_std, dtype=torch.float64)
    std[:signal_dims] = signal_noise
    rotation, _ = torch.linalg.qr(
        torch.randn(dim, dim, generator=g, dtype=torch.float64)
    )
    labels = torch.randint(num_classes, (n,), generator=g)
    noise = std * torch.randn(n, dim, generator=g, dtype=torch.float64)
    fresh = std * torch.randn(n, dim, generator=g, dtype=torch.float64)
    noise_pos = math.sqrt(1 - aug_mix) * noise + math.sqrt(aug_mix) * fresh
    x = (means[labels] + noise) @ rotation.T
    x_pos = (means[labels] + noise_pos) @ rotation.T
    return x, x_pos, labels


# --------------------------------------------------------------------------------------
# 2. CL vs NSCL (Luthra, Yang & Galanti 2025)
# --------------------------------------------------------------------------------------


def global_dcl_nscl(
    views: torch.Tensor, labels: torch.Tensor, tau: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The global decoupled contrastive loss and the negatives-only supervised loss.

    For $N$ samples with $K$ views $z_i^l$ (cosine similarity $\mathrm{sim}$,
    temperature $\tau$):

    $$\mathcal L_\text{DCL} = -\frac{1}{K^2N}\sum_{i,l_1,l_2}\log
      \frac{e^{\mathrm{sim}(z_i^{l_1},z_i^{l_2})/\tau}}
           {\sum_{j\neq i}\sum_{l_3} e^{\mathrm{sim}(z_i^{l_1},z_j^{l_3})/\tau}},\qquad
      \mathcal L_\text{NSCL}: \ \sum_{j\neq i}\ \to\ \sum_{j:\,y_j\neq y_i}.$$

    The DCL denominator contains every other sample, NSCL's only the other classes
    (Luthra et al. 2025; the numerator runs over all view pairs, $l_1=l_2$ included).
    Unlike the mini-batch ``cl_lib.losses.nscl_loss``, the positive is not in the
    denominator (decoupled). Returns the two losses as differentiable scalars (``views``
    is ``(N, K, d)``, raw; normalised inside)."""
    _check_matrix(views, "views", ndim=3)
    n, k, _ = views.shape
    labels = _check_labels(labels, n)
    tau = _check_positive(tau, "tau")
    z = F.normalize(views, dim=-1)
    flat = z.reshape(n * k, -1)
    sim = flat @ flat.T / tau  # (NK, NK)
    owner = torch.arange(n).repeat_interleave(k)
    y = labels.repeat_interleave(k)
    other_sample = owner[:, None] != owner[None, :]
    other_class = y[:, None] != y[None, :]
    log_den_dcl = torch.logsumexp(sim.masked_fill(~other_sample, float("-inf")), dim=1)
    log_den_nscl = torch.logsumexp(sim.masked_fill(~other_class, float("-inf")), dim=1)
    pos = torch.einsum("ild,imd->ilm", z, z) / tau  # (N, K, K) numerators
    mean_pos = pos.mean(dim=2).reshape(-1)  # average over l2, per anchor view
    return (log_den_dcl - mean_pos).mean(), (log_den_nscl - mean_pos).mean()


def cl_nscl_gap_bound(
    labels: torch.Tensor | None = None,
    tau: float = 1.0,
    *,
    num_classes: int | None = None,
) -> float:
    r"""Upper bound on $\mathcal L_\text{DCL}-\mathcal L_\text{NSCL}$ (the CL--NSCL gap
    bound of Luthra et al. 2025, paraphrased from the abstract; our statement and
    proof).

    With $n_\max$ the largest class size among $N$ samples and similarities in
    $[-1/\tau,1/\tau]$:

    $$0\ \le\ \mathcal L_\text{DCL}(f)-\mathcal L_\text{NSCL}(f)\ \le\
      \log\Big(1+\frac{n_\max\,e^{2/\tau}}{N-n_\max}\Big),$$

    for every encoder $f$ (label-agnostic, architecture-independent). For $C$ balanced
    classes the right side is $\log(1+e^{2/\tau}/(C-1)) = O(1/C)$ -- pass
    ``num_classes`` instead of ``labels`` for that form. The paper uses plain cosine
    similarity ($\tau=1$, $e^2$); the same proof gives $e^{2/\tau}$ with a temperature.
    Proof: per anchor of class $y$ the gap is $\log(1+S_\text{same}/S_\text{neg})$, with
    $K(n_y-1)$ same-class terms $\le e^{1/\tau}$ and $K(N-n_y)$ negatives $\ge
    e^{-1/\tau}$; so it is at most $\log(1+(n_y-1)e^{2/\tau}/(N-n_y))$, which is
    increasing in $n_y$. We bound $n_y$ by $n_\max$ and drop the $-1$. The same bound
    holds for the mini-batch pairs ``infonce_loss - nscl_loss`` and ``dcl_loss -
    nscl_loss(decoupled=True)`` of :mod:`cl_lib.losses` (labels of the batch's samples);
    a positive in both denominators only lowers the ratio. """
    tau = _check_positive(tau, "tau")
    if (labels is None) == (num_classes is None):
        raise ValueError("pass exactly one of labels or num_classes")
    if num_classes is not None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        return math.log1p(math.exp(2 / tau) / (num_classes - 1))
    labels = _check_labels(labels, len(labels))
    counts = torch.bincount(labels)
    n_max, n_total = int(counts.max()), int(counts.sum())
    return math.log1p(n_max * math.exp(2 / tau) / (n_total - n_max))


def class_means(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-class mean rows ``(C, d)`` in sorted class order."""
    _check_matrix(z)
    labels = _check_labels(labels, z.shape[0], min_classes=1)
    dense, c = _dense_labels(labels)
    sums = torch.zeros(c, z.shape[1], dtype=z.dtype).index_add_(0, dense, z)
    return sums / torch.bincount(dense, minlength=c)[:, None].to(z.dtype)


def simplex_etf_cosine(num_classes: int) -> float:
    r"""
    Pairwise cosine of a simplex equiangular tight frame of $C$ vectors: $-1/(C-1)$.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return -1.0 / (num_classes - 1)


def collapse_metrics(views: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    r"""How close normalised views are to the NSCL minimiser geometry (Luthra et al.
    2025).

    - ``augmentation_spread``: mean squared distance of a view to its sample's mean view
      (0 = augmentation collapse);
    - ``within_class_spread``: mean squared distance of a sample mean to its class mean
      (0 = within-class collapse);
    - ``etf_cosine_error``: max over class pairs of $|\cos(\mu_c,\mu_{c'}) + 1/(C-1)|$
      (0 = simplex ETF angles);
    - ``mean_norm_ratio``: min/max class-mean norm (1 = equal norms);
    - ``global_mean_norm``: $\lVert\frac1C\sum_c\mu_c\rVert$ (0 = centred, as a simplex
      ETF is).
    """
    _check_matrix(views, "views", ndim=3)
    labels = _check_labels(labels, views.shape[0])
    z = F.normalize(views.detach().double(), dim=-1)
    sample_mean = z.mean(dim=1)
    aug = ((z - sample_mean[:, None]) ** 2).sum(-1).mean()
    mu = class_means(sample_mean, labels)
    dense, c = _dense_labels(labels)
    within = ((sample_mean - mu[dense]) ** 2).sum(-1).mean()
    cos = F.normalize(mu, dim=1) @ F.normalize(mu, dim=1).T
    off = ~torch.eye(c, dtype=torch.bool)
    norms = mu.norm(dim=1)
    return {
        "augmentation_spread": float(aug),
        "within_class_spread": float(within),
        "etf_cosine_error": float((cos[off] - simplex_etf_cosine(c)).abs().max()),
        "mean_norm_ratio": float(norms.min() / norms.max()),
        "global_mean_norm": float(mu.mean(0).norm()),
    }


def _class_stats(z: torch.Tensor, labels: torch.Tensor):
    z = _check_matrix(z).double()
    labels = _check_labels(labels, z.shape[0])
    dense, c = _dense_labels(labels)
    counts = torch.bincount(dense, minlength=c)
    if (counts < 2).any():
        raise ValueError("every class needs at least 2 samples to have a variance")
    mu = class_means(z, dense)
    return z, dense, c, mu


def cdnv(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""Class-distance normalised variance (Galanti et al. 2022), pairwise ``(C, C)``:

    $$V_f(i,j) = \frac{\mathrm{Var}_i +
    \mathrm{Var}_j}{2\lVert\mu_i-\mu_j\rVert^2},\qquad
      \mathrm{Var}_i = \mathbb E_{x\sim i}\lVert f(x)-\mu_i\rVert^2 .$$

    The diagonal is 0. Small CDNV = classes are tight compared with their distance.
    """
    z, dense, c, mu = _class_stats(z, labels)
    var = torch.stack([((z[dense == k] - mu[k]) ** 2).sum(1).mean() for k in range(c)])
    dist2 = torch.cdist(mu, mu) ** 2
    out = (var[:, None] + var[None, :]) / (2 * dist2.clamp_min(1e-300))
    return out.fill_diagonal_(0.0)


def directional_cdnv(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""Directional CDNV (Luthra et al. 2025), pairwise ``(C, C)``, not symmetric:

    $$\tilde V_f(i,j) = \frac{\mathbb E_{x\sim i}\langle f(x)-\mu_i,\,u_{ij}\rangle^2}
      {\lVert\mu_i-\mu_j\rVert^2},\qquad
      u_{ij}=\frac{\mu_j-\mu_i}{\lVert\mu_j-\mu_i\rVert}:$$

    class $i$'s variance *along the line to class $j$* only. $\tilde V\le$ the full
    $\mathrm{Var}_i/\lVert\mu_i-\mu_j\rVert^2$, usually far below it in high dimension.
    """
    z, dense, c, mu = _class_stats(z, labels)
    out = torch.zeros(c, c, dtype=torch.float64)
    for i in range(c):
        centred = z[dense == i] - mu[i]  # (n_i, d)
        diff = mu - mu[i]  # (C, d), row j = mu_j - mu_i
        dist2 = (diff**2).sum(1).clamp_min(1e-300)
        proj2 = ((centred @ diff.T) ** 2).mean(0)  # E <x - mu_i, mu_j - mu_i>^2
        out[i] = proj2 / dist2**2
    return out.fill_diagonal_(0.0)


def ncc_fewshot_error(
    z: torch.Tensor, labels: torch.Tensor, shots: int, trials: int = 20, seed: int = 0
) -> float:
    r"""Error of the nearest-class-centre classifier built from ``shots`` labelled
    samples per class (centres = means of the shots), tested on all remaining samples;
    averaged over ``trials`` random draws of the shots."""
    z, dense, c, _ = _class_stats(z, labels)
    counts = torch.bincount(dense, minlength=c)
    if shots < 1 or shots >= int(counts.min()):
        raise ValueError(f"shots must be in [1, smallest class size - 1], got {shots}")
    g = torch.Generator().manual_seed(seed)
    errors = []
    for _ in range(trials):
        train = torch.zeros(len(dense), dtype=torch.bool)
        for k in range(c):
            idx = (dense == k).nonzero().squeeze(1)
            train[idx[torch.randperm(len(idx), generator=g)[:shots]]] = True
        centres = class_means(z[train], dense[train])
        pred = torch.cdist(z[~train], centres).argmin(1)
        errors.append((pred != dense[~train]).double().mean())
    return float(torch.stack(errors).mean())


# Estimation radii r tried by fewshot_error_bound (the bound holds for every r in (0,
# 1/2), so its minimum over this fixed grid is a bound too).
_FS_RADII = (0.05, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


def fewshot_error_bound(z: torch.Tensor, labels: torch.Tensor, shots: int) -> float:
    r"""A Chebyshev bound on the ``shots``-shot NCC error of the form of Luthra et al.
    (2025): directional variation + (CDNV terms)/shots.

    For a test point of class $i$ and estimated centres $\hat\mu_k=\mu_k+\varepsilon_k$
    ($\mathbb E\lVert\varepsilon_k\rVert^2=\mathrm{Var}_k/m$), write $a=f(x)-\mu_i$,
    $\Delta=\mu_j-\mu_i$. If $\lVert\varepsilon_i\rVert,\lVert\varepsilon_j\rVert\le
    r\lVert\Delta\rVert$, a mistake $i\to j$ needs $\langle a,\Delta\rangle\ge
    t\lVert\Delta\rVert^2$ or $\langle a,\varepsilon_j-\varepsilon_i\rangle\ge
    t\lVert\Delta\rVert^2$ with $t=\big((1-r)^2-r^2\big)/4=(1-2r)/4$. Chebyshev/Markov
    on the three events give

    $$P(i\to j)\ \le\ \frac{\tilde V_f(i,j)}{t^2}
      + \frac{\mathrm{Var}_i(\mathrm{Var}_i+\mathrm{Var}_j)}{m\,t^2\lVert\Delta\rVert^4}
      + \frac{\mathrm{Var}_i+\mathrm{Var}_j}{m\,r^2\lVert\Delta\rVert^2},$$

    i.e. $\tilde V/t^2 + O(V_f(i,j)^2/m) + O(V_f(i,j)/m)$: the directional-CDNV term
    does not shrink with $m$, the CDNV terms do. Each pair takes the best $r$ of a fixed
    grid; the bound on the error is the average over classes $i$ of
    $\min\big(1,\sum_{j\ne i}P(i\to j)\big)$. This is our derivation with our constants
    (the paper's constants may differ); it is loose and informative only when the
    directional CDNV is small (below about $1/(16\,C)$) and $m$ is large.
    :func:`fewshot_bound_terms` with ``shots=None`` gives the $m\to\infty$ limit."""
    return fewshot_bound_terms(z, labels, shots)["bound"]


def fewshot_bound_terms(
    z: torch.Tensor, labels: torch.Tensor, shots: int | None
) -> dict[str, float]:
    r"""The few-shot bound of :func:`fewshot_error_bound` and its two parts, averaged
    over classes: ``directional`` (the $m$-free part at the chosen radii) and ``bound``.
    ``shots=None`` gives the $m\to\infty$ limit (only the directional term, with
    $r\to0$)."""
    if shots is not None and shots < 1:
        raise ValueError(f"shots must be >= 1 or None, got {shots}")
    z, dense, c, mu = _class_stats(z, labels)
    var = torch.stack([((z[dense == k] - mu[k]) ** 2).sum(1).mean() for k in range(c)])
    dist2 = (torch.cdist(mu, mu) ** 2).clamp_min(1e-300)
    vdir = directional_cdnv(z, dense)
    if shots is None:
        pair = (16 * vdir).fill_diagonal_(0.0)  # r -> 0: t = 1/4
        total = float(pair.sum(1).clamp(max=1.0).mean())
        return {"directional": total, "bound": total}
    best, best_dir = None, None
    for r in _FS_RADII:
        t = (1 - 2 * r) / 4
        dir_term = vdir / t**2
        cross = var[:, None] * (var[:, None] + var[None, :]) / (shots * t**2 * dist2**2)
        est = (var[:, None] + var[None, :]) / (shots * r**2 * dist2)
        pair = dir_term + cross + est
        if best is None:
            best, best_dir = pair, dir_term
        else:
            better = pair < best
            best, best_dir = (
                torch.where(better, pair, best),
                torch.where(better, dir_term, best_dir),
            )
    best, best_dir = best.fill_diagonal_(0.0), best_dir.fill_diagonal_(0.0)
    return {
        "directional": float(best_dir.sum(1).clamp(max=1.0).mean()),
        "bound": float(best.sum(1).clamp(max=1.0).mean()),
    }


def pairwise_ncc_error(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""Two-way nearest-class-centre error with exact centres, per ordered class pair.

    Entry $(i,j)$ is the fraction of class-$i$ samples closer to $\mu_j$ than to
    $\mu_i$, with $\mu$ the class means of all of ``z`` (the $m\to\infty$ limit of the
    $m$-shot rule on this finite set). ``(C, C)``, diagonal 0.
    """
    z, dense, c, mu = _class_stats(z, labels)
    dist = torch.cdist(z, mu) ** 2  # (N, C)
    own = dist[torch.arange(len(dense)), dense]
    wrong = (dist < own[:, None]).double()  # (N, C)
    return class_means(wrong, dense).fill_diagonal_(0.0)


def pairwise_cantelli_bound(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""A bound on :func:`pairwise_ncc_error` from the directional CDNV alone:
    $P(i\to j)\le\tilde V_f(i,j)/(\tilde V_f(i,j)+1/4)$.

    With exact centres a class-$i$ point $f(x)$ is closer to $\mu_j$ iff
    $X=\langle f(x)-\mu_i,\mu_j-\mu_i\rangle/\lVert\mu_j-\mu_i\rVert^2>1/2$; $X$ has
    mean 0 and variance $\tilde V_f(i,j)$, so Cantelli's (one-sided Chebyshev)
    inequality gives the bound. It is the $m\to\infty$, two-way form of the directional
    term of :func:`fewshot_error_bound` (which splits the margin and uses two-sided
    Chebyshev, hence its $16\tilde V$), and it is below 1 for every pair. ``(C, C)``,
    diagonal 0.
    """
    vdir = directional_cdnv(z, labels)
    return (vdir / (vdir + 0.25)).fill_diagonal_(0.0)


# ------------------------------------------------------------------------------------
# 2b. CL vs NSCL on learned features: data, a small training loop, embeddings
# ------------------------------------------------------------------------------------


def load_book_dataset(
    name: str, split: str, subset: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """:func:`cl_lib.data.load_dataset` for a chapter: same arguments and return value,
    but a missing archive raises ``FileNotFoundError`` saying which file to fetch and
    where to put it (the directory named by the environment variable
    ``CL_LIB_DATA``)."""
    from cl_lib.data import ARCHIVES, load_dataset

    try:
        return load_dataset(name, split=split, subset=subset, seed=seed)
    except (OSError, RuntimeError) as err:  # missing file; failed download (offline)
        fname = ARCHIVES.get(name, (f"the {name} archive",))[0]
        where = os.environ.get("CL_LIB_DATA") or "(CL_LIB_DATA is not set)"
        raise FileNotFoundError(
            f"This chapter needs the {name!r} images: the archive {fname} (an "
            f"ImageFolder tree <split>/<class>/<image>, gzipped tar). Put it in a "
            f"directory of your choice and set the environment variable CL_LIB_DATA to "
            f"that directory before starting Jupyter (now: {where}). See "
            f"cl_lib.data.load_dataset for the layout."
        ) from err


def _placement(model: torch.nn.Module) -> dict:
    """``{"dtype", "device"}`` of the model's parameters (inputs are moved there)."""
    params = list(model.parameters())
    if not params:
        raise ValueError("model has no parameters")
    return {"dtype": params[0].dtype, "device": params[0].device}


def embed_views(
    model: torch.nn.Module,
    images: torch.Tensor,
    augment,
    num_views: int = 2,
    seed: int = 0,
    batch_size: int = 1024,
) -> torch.Tensor:
    """``num_views`` augmented views of every image through ``model``
    (:func:`cl_lib.evaluate.extract_features`: eval mode, no gradients), as a CPU
    float64 tensor ``(N, num_views, d)``. ``augment(x, generator)`` makes the views
    (e.g. :class:`cl_lib.augment.SimCLRAugment`); a fixed ``seed`` gives the same views
    at every call, so checkpoints of one training run see identical inputs."""
    from cl_lib.evaluate import extract_features

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or len(images) == 0:
        raise ValueError("images must be a non-empty (N, C, H, W) tensor")
    if num_views < 1 or batch_size < 1:
        raise ValueError("num_views and batch_size must be >= 1")
    g = torch.Generator().manual_seed(seed)
    place = _placement(model)
    views = [
        extract_features(
            model,
            images,
            batch_size=batch_size,
            device=place["device"],
            preprocess=lambda x: augment(x, g).to(place["dtype"]),
        )
        for _ in range(num_views)
    ]
    return torch.stack(views, dim=1).cpu().double()


def train_contrastive(
    model: torch.nn.Module,
    images: torch.Tensor,
    augment,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 3e-3,
    loss_fn=None,
    labels: torch.Tensor | None = None,
    checkpoints=(),
    probe=None,
    seed: int = 0,
) -> list[dict]:
    r"""Train ``model`` with a contrastive loss (SimCLR's loop, Chen et al. 2020) and
    record measurements along the way.

    Each step draws ``batch_size`` images (epochs of a seeded permutation) and two views
    ``augment(x, generator)`` of each, and takes one Adam step (learning rate ``lr``) of
    the trainer's :func:`cl_lib.train.train_step` on ``loss_fn(z1, z2, y)`` (default:
    InfoNCE at $\tau=0.5$; ``y`` are the batch's ``labels`` if given, else None). At
    every step in ``checkpoints`` (0 = before training) ``probe(model)`` is called and
    its dict is recorded, with ``step`` and ``train_loss`` (mean loss since the previous
    record).

    The model may live on any device (inputs are moved to its parameters' device and
    dtype; ``augment`` runs where ``images`` are). Returns the list of records (one per
    checkpoint, in step order).
    """
    from cl_lib.losses import infonce_loss
    from cl_lib.train import train_step

    if not isinstance(images, torch.Tensor) or images.ndim < 2:
        raise ValueError("images must be a tensor with one row per sample, (N, ...)")
    if steps < 0 or not 1 <= batch_size <= len(images):
        raise ValueError(f"need steps >= 0 and 1 <= batch_size <= {len(images)}")
    lr = _check_positive(lr, "lr")
    marks = sorted(set(int(c) for c in checkpoints))
    if marks and (marks[0] < 0 or marks[-1] > steps):
        raise ValueError(f"checkpoints must lie in [0, steps={steps}], got {marks}")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
        raise ValueError("labels must be a 1-D tensor with one entry per image")
    loss_fn = loss_fn or (lambda z1, z2, y: infonce_loss(z1, z2, tau=0.5))
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    place = _placement(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    records, losses, order, pos = [], [], torch.empty(0, dtype=torch.long), 0

    def record(step):
        rec = {
            "step": step,
            "train_loss": float(sum(losses) / len(losses)) if losses else float("nan"),
        }
        rec.update(probe(model) if probe is not None else {})
        records.append(rec)
        losses.clear()

    model.train()
    for step in range(steps + 1):
        if step in marks:
            record(step)
        if step == steps:
            break
        if pos + batch_size > len(order):  # a new epoch: a fresh seeded permutation
            order, pos = torch.randperm(len(images), generator=g), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        x = images[idx]
        views = [augment(x, g).to(**place), augment(x, g).to(**place)]
        y = None if labels is None else labels[idx]
        losses.append(float(train_step(model, loss_fn, opt, views, y)))
    return records


def gap_similarity_ratio(gap: float, n_per_class: int, num_classes: int) -> float:
    r"""The same-class/other-class similarity ratio $\rho$ implied by a CL--NSCL gap.

    With $n$ samples in each of $C$ classes, if a same-class pair had on average $\rho$
    times the $e^{\mathrm{sim}/\tau}$ of a pair from different classes, every anchor's
    gap would be $\log\big(1+\rho\,\frac{n-1}{(C-1)n}\big)$; this returns the $\rho$
    solving that for the measured ``gap``. $\rho=1$: the embedding ignores classes
    (e.g. random features); the gap bound of :func:`cl_nscl_gap_bound` is the worst case
    $\rho\approx e^{2/\tau}$.
    """
    if n_per_class < 2 or num_classes < 2:
        raise ValueError("need n_per_class >= 2 and num_classes >= 2")
    if not (math.isfinite(gap) and gap >= 0):
        raise ValueError(f"gap must be a finite number >= 0, got {gap}")
    return math.expm1(gap) * (num_classes - 1) * n_per_class / (n_per_class - 1)


def gap_and_bound(
    views: torch.Tensor, labels: torch.Tensor, tau: float = 1.0
) -> tuple[float, float, float, float]:
    """The two global losses of :func:`global_dcl_nscl`, their gap and its bound.

    Args:
        views: ``(N, K, d)`` raw embeddings (normalised inside).
        labels: ``(N,)`` class labels.
        tau: temperature.

    Returns:
        ``(L_DCL, L_NSCL, L_DCL - L_NSCL, bound)`` as floats, the bound from
        :func:`cl_nscl_gap_bound` for these labels.
    """
    dcl, nscl = global_dcl_nscl(views, labels, tau)
    bound = cl_nscl_gap_bound(labels, tau)
    return float(dcl), float(nscl), float(dcl - nscl), bound


def subset_losses(
    views: torch.Tensor, labels: torch.Tensor, subsets: dict, tau: float = 1.0
) -> dict:
    """:func:`global_dcl_nscl` on class subsets, averaged over the subsets of each size.

    Args:
        views: ``(N, K, d)`` embeddings.
        labels: ``(N,)`` class labels.
        subsets: ``{C: [classes, ...]}``, each entry a 1-D tensor of class labels.
        tau: temperature.

    Returns:
        ``{C: array([L_DCL, L_NSCL])}``: float64 numpy arrays of shape ``(2,)``, the
        mean over the subsets of the losses on the samples of the subset's classes.
    """
    import numpy as np

    _check_matrix(views, "views", ndim=3)
    out = {}
    for c, chosen in subsets.items():
        pairs = []
        for s in chosen:
            keep = torch.isin(labels, torch.as_tensor(s))
            pairs.append(
                [float(v) for v in global_dcl_nscl(views[keep], labels[keep], tau)]
            )
        out[c] = np.mean(pairs, axis=0)
    return out


def backbone_features(
    model: torch.nn.Module, images: torch.Tensor, transform, batch_size: int = 512
) -> torch.Tensor:
    """Backbone features $h$ of ``images`` through ``model.backbone`` (eval mode).

    Args:
        model: a :class:`cl_lib.models.ContrastiveModel` (any parameter dtype).
        images: ``(N, C, H, W)`` images.
        transform: the deterministic preprocessing, e.g. an augment's
            ``eval_transform``; its output is cast to the model's dtype.
        batch_size: images per forward pass.

    Returns:
        ``(N, F)`` float64 features.
    """
    from cl_lib.evaluate import extract_features

    dtype = _placement(model)["dtype"]
    return extract_features(
        model.backbone,
        images,
        batch_size=batch_size,
        preprocess=lambda x: transform(x).to(dtype),
    ).double()


def nscl_free_points(
    num_classes: int,
    n_per_class: int = 5,
    num_views: int = 2,
    dim: int = 6,
    tau: float = 1.0,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Minimise the global NSCL loss over free points with Adam (no encoder).

    The points start i.i.d. standard normal (float64, seeded generator); each step is
    one Adam step on the NSCL value of :func:`global_dcl_nscl`.

    Args:
        num_classes: $C$; samples are labelled ``0..C-1`` in blocks of ``n_per_class``.
        n_per_class, num_views, dim: $n$, $K$ and $d$.
        tau, steps, lr, seed: temperature, Adam steps, learning rate and seed.

    Returns:
        ``(start, end, labels)``: the points before and after, ``(C n, K, d)`` each,
        and the labels ``(C n,)``.
    """
    if num_classes < 2 or n_per_class < 1 or num_views < 1 or dim < 1 or steps < 0:
        raise ValueError("need num_classes >= 2, positive sizes and steps >= 0")
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    g = torch.Generator().manual_seed(seed)
    shape = (num_classes * n_per_class, num_views, dim)
    pts = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    start, adam = pts.detach().clone(), torch.optim.Adam([pts], lr=lr)
    for _ in range(steps):
        _, value = global_dcl_nscl(pts, labels, tau)
        adam.zero_grad()
        value.backward()
        adam.step()
    return start, pts.detach(), labels


def simplex_view(
    points: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views in the $(C-1)$-dim span of their class means, and the matching simplex.

    The views are normalised, the class means of the per-sample mean views taken, and
    everything expressed in the top $C-1$ right singular vectors of the means. The
    regular simplex (unit ETF rows) is rotated onto the means by orthogonal Procrustes.

    Args:
        points: ``(N, K, d)`` raw views; labels ``0..C-1``, shape ``(N,)``.

    Returns:
        ``(views, means, simplex)``: ``(N K, C-1)``, ``(C, C-1)`` and ``(C, C-1)``.
    """
    _check_matrix(points, "points", ndim=3)
    labels = _check_labels(labels, points.shape[0])
    c = int(labels.max()) + 1
    unit = F.normalize(points, dim=-1)
    mu = class_means(unit.mean(1), labels)
    basis = torch.linalg.svd(mu, full_matrices=False).Vh[: c - 1].T  # (d, C-1)
    ref = math.sqrt(c / (c - 1)) * (torch.eye(c, dtype=torch.float64) - 1 / c)
    ref = ref @ torch.linalg.svd(ref).Vh[: c - 1].T  # (C, C-1), unit ETF rows
    u, _, vh = torch.linalg.svd(ref.T @ (mu @ basis))
    return (unit @ basis).reshape(-1, c - 1), mu @ basis, ref @ (u @ vh)


# --------------------------------------------------------------------------------------
# 3. Negative sample size K (Bao, Nagano & Nozawa 2022)
# --------------------------------------------------------------------------------------


def _unit_logits(z: torch.Tensor, labels: torch.Tensor, tau: float):
    z = F.normalize(_check_matrix(z).double(), dim=1)
    labels = _check_labels(labels, z.shape[0])
    tau = _check_positive(tau, "tau")
    dense, c = _dense_labels(labels)
    return z, dense, c, (z @ z.T) / tau


def contrastive_loss_mc(
    z: torch.Tensor,
    labels: torch.Tensor,
    num_negatives: int,
    tau: float = 1.0,
    num_anchors: int = 4096,
    seed: int = 0,
) -> tuple[float, float]:
    r"""Monte-Carlo value of the $K$-negative contrastive loss in Bao et al.'s setting.

    The finite sample set *is* the data distribution: anchor $x$ uniform, positive $x^+$
    a uniform draw from $x$'s class (the "true positive" setting, no augmentation), $K$
    negatives uniform from all samples (they may collide with $x$'s class):

    $$\mathcal L^K_\text{cont}(f)=\mathbb E\Big[-\log\frac{e^{f(x)^\top f(x^+)/\tau}}
      {e^{f(x)^\top f(x^+)/\tau}+\sum_{k=1}^K e^{f(x)^\top f(x_k^-)/\tau}}\Big],$$

    with unit-norm $f$. Returns (estimate, standard error).
    """
    if num_negatives < 1 or num_anchors < 2:
        raise ValueError("num_negatives must be >= 1 and num_anchors >= 2")
    z, dense, c, logits = _unit_logits(z, labels, tau)
    n = z.shape[0]
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randint(n, (num_anchors,), generator=g)
    # positive: a uniform member of the anchor's class (sorted members, random rank)
    order = torch.argsort(dense, stable=True)
    counts = torch.bincount(dense, minlength=c)
    starts = torch.cumsum(counts, 0) - counts
    y = dense[anchors]
    rank = (
        torch.rand(num_anchors, generator=g, dtype=torch.float64) * counts[y]
    ).long()
    positives = order[starts[y] + rank]
    negatives = torch.randint(n, (num_anchors, num_negatives), generator=g)
    pos = logits[anchors, positives]
    neg = logits[anchors[:, None], negatives]
    per = torch.logsumexp(torch.cat([pos[:, None], neg], 1), 1) - pos
    return float(per.mean()), float(per.std() / math.sqrt(num_anchors))


def mean_classifier_loss(
    z: torch.Tensor, labels: torch.Tensor, tau: float = 1.0
) -> float:
    r"""Downstream supervised loss of the mean classifier (Arora et al. 2019; Bao et al.
    2022): cross-entropy of $\mathrm{softmax}_c\big(f(x)^\top\mu_c/\tau\big)$ with
    $\mu_c=\mathbb E_{x\sim c}f(x)$ (unit-norm $f$)."""
    z, dense, c, logits = _unit_logits(z, labels, tau)
    s = class_means(logits.T, dense).T  # s[x, c] = f(x).mu_c / tau
    return float((torch.logsumexp(s, 1) - s[torch.arange(len(dense)), dense]).mean())


def surrogate_bounds(
    z: torch.Tensor,
    labels: torch.Tensor,
    num_negatives: int,
    tau: float = 1.0,
    num_draws: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    r"""Two-sided bounds relating the $K$-negative contrastive loss and the
    mean-classifier loss.

    Let $s_c(x)=f(x)^\top\mu_c/\tau$, $p(x)=\mathrm{softmax}(s(x))$, $M_c(x)=\mathbb
    E_{x'\sim c}e^{f(x)^\top f(x')/\tau}\ \ (\ge e^{s_c(x)})$, class priors $\pi_c$, and
    $n\sim\mathrm{Mult}(K,\pi)$ the class counts of the negatives. Jensen's inequality,
    once for the convex log-sum-exp within classes and once for the concave $\log$,
    gives for every $f$ and every $K\ge1$

    $$\underbrace{\mathcal L_\text{sup}+\mathbb E_{x,n}\log\big(p_y+\textstyle\sum_c n_c
    p_c\big)}_{\text{lower}}
      \ \le\ \mathcal L^K_\text{cont}\ \le\ \underbrace{\mathbb
      E_x\big[-s_y+\log\big(M_y+K\textstyle\sum_c\pi_c M_c\big)\big]}_{\text{upper}} .$$

    Rearranged, the supervised loss is sandwiched by the contrastive loss: $\mathcal
    L^K_\text{cont}-\Delta_\text{up}(K)\le\mathcal L_\text{sup}\le \mathcal
    L^K_\text{cont}-\Delta_\text{low}(K)$ with both shifts $\approx\log(K/C)$ for $K\gg
    C$; their difference is a label-sampling Jensen gap that decays with $K$ plus a
    within-class spread term $\log(M_c/e^{s_c})$ (0 under within-class collapse). This
    is the structure of Bao et al.'s bounds (valid for all $K$, gap decaying in $K$), in
    our own
    derivation. Returns the pieces as floats: ``supervised``, ``lower``, ``upper``
    (bounds on the contrastive loss), ``shift_low``/``shift_up``
    ($\Delta_\text{low/up}$) and the width split ``label_gap`` + ``spread_gap`` (the
    first is $\mathbb E\log(p_y+K\sum_c\pi_cp_c)- \Delta_\text{low}$). The multinomial
    expectation uses ``num_draws`` draws."""
    if num_negatives < 1 or num_draws < 1:
        raise ValueError("num_negatives and num_draws must be >= 1")
    z, dense, c, logits = _unit_logits(z, labels, tau)
    n = z.shape[0]
    rows = torch.arange(n)
    s = class_means(logits.T, dense).T  # (N, C)
    # log M_c(x)
    log_m = torch.stack(
        [
            torch.logsumexp(logits[:, dense == k], 1)
            - math.log(int((dense == k).sum()))
            for k in range(c)
        ],
        1,
    )
    prior = torch.bincount(dense, minlength=c).double() / n
    log_z = torch.logsumexp(s, 1)
    sup = (log_z - s[rows, dense]).mean()
    p = torch.softmax(s, 1)
    g = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(
        prior, num_negatives * num_draws, replacement=True, generator=g
    )
    # (R, C)
    counts = F.one_hot(draws.view(num_draws, num_negatives), c).sum(1).double()
    low_shift = torch.log(p[rows, dense][:, None] + p @ counts.T).mean()
    up_inner = torch.logaddexp(
        log_m[rows, dense],
        math.log(num_negatives) + torch.logsumexp(log_m + prior.log(), 1),
    )
    upper = (up_inner - s[rows, dense]).mean()
    # the width shift_up - shift_low splits into a label-sampling Jensen gap (-> 0 as K
    # grows) and a within-class spread gap (0 when classes are collapsed, M_c = e^{s_c})
    collapsed = torch.log(p[rows, dense] + num_negatives * (p @ prior)).mean()
    return {
        "supervised": float(sup),
        "lower": float(sup + low_shift),
        "upper": float(upper),
        "shift_low": float(low_shift),
        "shift_up": float(upper - sup),
        "label_gap": float(collapsed - low_shift),
        "spread_gap": float(upper - sup - collapsed),
    }


# --------------------------------------------------------------------------------------
# 4. Fisher LDA vs PCA subspaces (Bansal et al. 2024)
# --------------------------------------------------------------------------------------


def orthonormal_basis(a: torch.Tensor) -> torch.Tensor:
    """
    Orthonormal basis ``(d, k)`` of the column space of ``a`` ``(d, k)`` (full column
    rank).
    """
    _check_matrix(a, "a")
    q, r = torch.linalg.qr(a.double())
    if (r.diagonal().abs() < 1e-10 * r.diagonal().abs().max()).any():
        raise ValueError("a is (numerically) rank deficient")
    return q


def pca_subspace(x: torch.Tensor, k: int) -> torch.Tensor:
    """
    Top-``k`` principal directions of ``x`` ``(n, d)`` as an orthonormal ``(d, k)``
    basis.
    """
    x = _check_matrix(x, "x").double()
    if not 1 <= k <= x.shape[1]:
        raise ValueError(f"k must be in [1, {x.shape[1]}], got {k}")
    cov = torch.cov(x.T)
    _, vecs = torch.linalg.eigh(cov)
    return vecs[:, -k:].flip(1)


def lda_subspace(
    x: torch.Tensor, labels: torch.Tensor, k: int | None = None
) -> torch.Tensor:
    r"""Fisher LDA subspace: top-$k$ eigenvectors of $S_w^{-1}S_b$ (within- and
    between-class scatter), $k\le C-1$ (default $C-1$), as an orthonormal ``(d, k)``
    basis of their span."""
    x = _check_matrix(x, "x").double()
    labels = _check_labels(labels, x.shape[0])
    dense, c = _dense_labels(labels)
    k = c - 1 if k is None else k
    if not 1 <= k <= min(c - 1, x.shape[1]):
        raise ValueError(f"k must be in [1, C-1={c - 1}], got {k}")
    mu = class_means(x, dense)
    centred = x - mu[dense]
    s_w = centred.T @ centred / x.shape[0]
    weights = torch.bincount(dense, minlength=c).double() / x.shape[0]
    diff = mu - (weights[:, None] * mu).sum(0)
    s_b = (weights[:, None] * diff).T @ diff
    # symmetric form: S_w^{-1/2} S_b S_w^{-1/2}
    evals, evecs = torch.linalg.eigh(s_w)
    if evals.min() <= 1e-12 * evals.max():
        raise ValueError(
            "within-class scatter is singular; need more samples than dimensions"
        )
    w_inv_half = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    _, vecs = torch.linalg.eigh(w_inv_half @ s_b @ w_inv_half)
    return orthonormal_basis(w_inv_half @ vecs[:, -k:])


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Principal angles (radians, ascending) between the column spaces of ``a`` and
    ``b``: $\theta_i=\arccos\sigma_i(Q_a^\top Q_b)$ (Björck & Golub 1973)."""
    qa, qb = orthonormal_basis(a), orthonormal_basis(b)
    if qa.shape[0] != qb.shape[0]:
        raise ValueError("a and b must live in the same ambient dimension")
    sv = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
    return torch.arccos(sv).sort().values


def train_linear_infonce(
    x: torch.Tensor,
    x_pos: torch.Tensor,
    out_dim: int,
    steps: int = 300,
    batch_size: int = 256,
    lr: float = 0.01,
    tau: float = 0.5,
    seed: int = 0,
) -> torch.Tensor:
    r"""Train a linear encoder $z = W^\top x$ (no bias) with InfoNCE; return $W$.

    Each step draws ``batch_size`` pair indices with replacement (seeded generator) and
    takes one Adam step on ``cl_lib.losses.infonce_loss`` of the encoded pairs. The
    encoder is float64; :func:`cl_lib.profile.seed_everything` seeds its
    initialisation.

    Args:
        x, x_pos: ``(N, D)`` anchors and their positives.
        out_dim: $k$, the embedding dimension.
        steps, batch_size, lr, tau, seed: training length, batch, Adam's learning
            rate, temperature and seed.

    Returns:
        ``(D, k)``: the encoder's weight transposed; its columns span the learned
        subspace (compare with :func:`principal_angles`).
    """
    from cl_lib.losses import infonce_loss
    from cl_lib.profile import seed_everything

    _check_matrix(x, "x")
    if x_pos.shape != x.shape or out_dim < 1 or steps < 0 or batch_size < 1:
        raise ValueError("need x_pos like x, out_dim >= 1, steps >= 0, batch_size >= 1")
    seed_everything(seed)
    enc = torch.nn.Linear(x.shape[1], out_dim, bias=False).double()
    opt = torch.optim.Adam(enc.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(x), (batch_size,), generator=g)
        loss = infonce_loss(enc(x[idx]), enc(x_pos[idx]), tau=tau)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return enc.weight.detach().T


# --------------------------------------------------------------------------------------
# 5. alpha-CL (Tian 2022)
# --------------------------------------------------------------------------------------


def alpha_weights(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    r"""Pairwise importances $\alpha$ that InfoNCE puts on the negatives (Tian 2022,
    alpha-CL; our paraphrase of its InfoNCE case, with our normalisation of $d^2$).

    With unit embeddings and $d_{ij}^2=\lVert z^{(1)}_i-z^{(2)}_j\rVert^2$, the min
    player's optimum is the Gibbs distribution over distinct pairs

    $$\alpha_{ij}=\frac{e^{-d^2_{ij}/2\tau}}{\sum_{k\ne i}e^{-d^2_{ik}/2\tau}}
      =\mathrm{softmax}_{j\ne i}\big(z^{(1)\top}_i z^{(2)}_j/\tau\big),$$

    rows sum to 1, diagonal 0 (the positive is not a negative). Nearby (hard) negatives
    get large $\alpha$; how concentrated depends on $\tau$."""
    _check_matrix(z1, "z1")
    _check_matrix(z2, "z2")
    if z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError("z1 and z2 must have the same shape with at least 2 rows")
    tau = _check_positive(tau, "tau")
    sim = F.normalize(z1.double(), dim=1) @ F.normalize(z2.double(), dim=1).T / tau
    sim = sim.masked_fill(torch.eye(len(sim), dtype=torch.bool), float("-inf"))
    return torch.softmax(sim, dim=1)


def alpha_entropy(alpha: torch.Tensor) -> float:
    r"""
    Mean row entropy $-\sum_j\alpha_{ij}\log\alpha_{ij}$ (nats); $\log(N-1)$ = uniform.
    """
    _check_matrix(alpha, "alpha")
    if (alpha < 0).any() or not torch.allclose(
        alpha.sum(1), torch.ones(len(alpha), dtype=alpha.dtype)
    ):
        raise ValueError("alpha rows must be probability vectors")
    return float(-(torch.special.xlogy(alpha, alpha)).sum(1).mean())


def min_player_objective(
    alpha: torch.Tensor, d2: torch.Tensor, tau: float
) -> torch.Tensor:
    r"""Entropy-regularised objective of the min player, per row: $\sum_j\alpha_j
    d^2_j/2 + \tau\sum_j\alpha_j\log\alpha_j$. Its minimum over the simplex is
    $-\tau\log\sum_j e^{-d^2_j/2\tau}$, attained at
    $\alpha=\mathrm{softmax}(-d^2/2\tau)$ (Gibbs variational principle). For unit
    vectors with $d^2_j=\lVert z_i-z^+_j\rVert^2$, that minimum is $1-\tau\log\sum_j
    e^{z_i^\top z^+_j/\tau}$: up to sign, the factor $\tau$ and a constant, the
    negatives' log-sum-exp in InfoNCE's denominator."""
    tau = _check_positive(tau, "tau")
    if alpha.shape != d2.shape:
        raise ValueError("alpha and d2 must have the same shape")
    return (alpha * d2 / 2).sum(-1) + tau * torch.special.xlogy(alpha, alpha).sum(-1)
