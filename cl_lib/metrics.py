"""Representation metrics: how aligned, how uniform, how many dimensions are used.

All functions take torch tensors and return Python floats.

- :func:`alignment`, :func:`uniformity` -- Wang & Isola (2020), on L2-normalised
  embeddings.
- :func:`rank`, :func:`effective_rank` -- numerical rank and RankMe (Garrido et al.,
  2023).
- :func:`embedding_variance` -- sum of per-dimension variances (Li & Pimentel-Alarcón
  2024).
- :func:`wasserstein_uniformity` -- 1-D Wasserstein distance between the pairwise cosine
  similarities of the embeddings and those of the uniform distribution on the sphere
  (the uniformity metric of Koromilas et al. 2024).

Which metrics normalise? Those defined on the sphere (alignment, uniformity, Wasserstein
uniformity) L2-normalise inside, exactly as the losses do. Rank, effective rank and
variance describe the *raw* embedding matrix (they are the collapse diagnostics of the
papers above, measured on encoder/projector outputs before normalisation).

Bad input raises ``ValueError`` in the style of :mod:`cl_lib.checks`. Equation numbers
of the cited papers are not given: their texts were not at hand to check them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cl_lib import checks

__all__ = [
    "alignment",
    "uniformity",
    "rank",
    "effective_rank",
    "embedding_variance",
    "wasserstein_uniformity",
    "uniform_sphere_cosine_quantile",
]


def _matrix(z: torch.Tensor, name: str, where: str, min_rows: int = 1) -> torch.Tensor:
    """Check an (N, d) embedding matrix (integer dtypes allowed); a float64 copy."""
    checks.embeddings(z, name, where, min_rows=min_rows, floating=False)
    return z.detach().double()


def _normalise(z: torch.Tensor, name: str, where: str) -> torch.Tensor:
    norms = z.norm(dim=1)
    if (norms == 0).any():
        raise checks.fail(
            where,
            name,
            "free of zero rows (they cannot be normalised onto the sphere)",
            f"{int((norms == 0).sum())} zero rows",
        )
    return z / norms[:, None]


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2) -> float:
    r"""Alignment loss of Wang & Isola (2020), on L2-normalised rows:

    $$\mathcal{L}_\text{align} = \frac1N \sum_i \lVert u_i - v_i \rVert_2^{\alpha}.$$

    Args:
        z1: First view, shape ``(N, d)``, no zero row.
        z2: Second view, shape ``(N, d)``; ``z2[i]`` is the positive of ``z1[i]``.
        alpha: Exponent, > 0.

    Returns:
        The alignment, a float in ``[0, 2**alpha]``; 0 means perfectly aligned pairs.
    """
    z1, z2 = _matrix(z1, "z1", "alignment"), _matrix(z2, "z2", "alignment")
    if z1.shape != z2.shape:
        raise checks.fail(
            "alignment",
            "z2",
            f"the same shape as z1 {tuple(z1.shape)}",
            f"shape {tuple(z2.shape)}",
        )
    alpha = checks.positive(alpha, "alpha", "alignment")
    u, v = _normalise(z1, "z1", "alignment"), _normalise(z2, "z2", "alignment")
    return float((u - v).norm(dim=1).pow(alpha).mean())


def uniformity(z: torch.Tensor, t: float = 2) -> float:
    r"""Uniformity loss of Wang & Isola (2020), over the pairs $i<j$ of normalised rows:

    $$\mathcal{L}_\text{uniform} = \log \frac{2}{N(N-1)}
      \sum_{i<j} e^{-t \lVert u_i - u_j \rVert_2^2}.$$

    It is the log of the mean Gaussian-kernel energy (``cl_lib.kernels.kernel_energy``).
    For uniform points on $S^2$ it tends to $\log\frac{1-e^{-4t}}{4t}$ as $N\to\infty$.

    Args:
        z: Embeddings, shape ``(N, d)``, ``N >= 2``, no zero row.
        t: Scale of the Gaussian kernel, > 0.

    Returns:
        The uniformity, a float <= 0; 0 for fully collapsed points (its maximum).
    """
    z = _matrix(z, "z", "uniformity", min_rows=2)
    t = checks.positive(t, "t", "uniformity")
    u = _normalise(z, "z", "uniformity")
    sq = torch.pdist(u, p=2).pow(2)
    # log-mean-exp for numerical safety when t * distance^2 is large
    return float(torch.logsumexp(-t * sq, dim=0) - math.log(sq.numel()))


def rank(z: torch.Tensor, tol: float | None = None) -> int:
    r"""Numerical rank of the raw (uncentred) embedding matrix
    $Z \in \mathbb{R}^{N\times d}$.

    Number of singular values $> \text{tol}$; the default tol is
    $\sigma_\max \cdot \max(N, d) \cdot \varepsilon$ with $\varepsilon$ the machine
    epsilon of the *input* dtype (as ``torch.linalg.matrix_rank``), so float32 round-off
    is not counted as rank. Uncentred on purpose: N copies of one non-zero vector have
    rank 1 (a collapse to a point), while centring would call that rank 0 and lose the
    distinction from the zero matrix.

    Args:
        z: Raw embeddings, shape ``(N, d)`` (integer dtypes allowed).
        tol: Threshold on the singular values, >= 0; ``None`` for the default above.

    Returns:
        The rank, an int in ``[0, min(N, d)]``.
    """
    in_dtype = (
        z.dtype
        if isinstance(z, torch.Tensor) and z.is_floating_point()
        else torch.float64
    )
    z = _matrix(z, "z", "rank")
    if tol is not None:
        tol = checks.nonnegative(tol, "tol", "rank")
    s = torch.linalg.svdvals(z)
    if tol is None:
        tol = float(s.max()) * max(z.shape) * torch.finfo(in_dtype).eps
    return int((s > tol).sum())


def effective_rank(z: torch.Tensor, eps: float = 1e-7) -> float:
    r"""RankMe (Garrido et al. 2023): the exponential of the entropy of the normalised
    singular values of the raw embedding matrix,

    $$\operatorname{RankMe}(Z) = \exp\Big(-\sum_k p_k \log p_k\Big), \qquad
      p_k = \frac{\sigma_k(Z)}{\lVert \sigma(Z) \rVert_1} + \varepsilon .$$

    Args:
        z: Raw embeddings, shape ``(N, d)``, not all zero.
        eps: Smoothing $\varepsilon$ added to each normalised singular value, >= 0.

    Returns:
        RankMe, a float between 1 (one direction, up to the $\varepsilon$ smoothing) and
        $\min(N, d)$ (all singular values equal, e.g. an orthonormal frame).
    """
    z = _matrix(z, "z", "effective_rank")
    eps = checks.nonnegative(eps, "eps", "effective_rank")
    s = torch.linalg.svdvals(z)
    if s.sum() == 0:
        raise checks.fail(
            "effective_rank",
            "z",
            "non-zero (RankMe is undefined for the zero matrix)",
            "the zero matrix",
        )
    p = s / s.sum() + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def embedding_variance(z: torch.Tensor) -> float:
    r"""Total variance of the raw embeddings,
    $\sum_{k=1}^d \operatorname{Var}_i(z_{ik})$ (population variance, divisor $N$), the
    collapse diagnostic of Li & Pimentel-Alarcón (2024), who plot it against the
    learning rate ("aggregating the variances across each dimension").

    Args:
        z: Raw embeddings, shape ``(N, d)``.

    Returns:
        The total variance, a float >= 0; 0 means all embeddings are equal.
    """
    z = _matrix(z, "z", "embedding_variance")
    return float(z.var(dim=0, correction=0).sum())


def uniform_sphere_cosine_quantile(q: np.ndarray, d: int) -> np.ndarray:
    r"""Quantile function of $t = u^\top v$ for $u, v$ independent and uniform on
    $S^{d-1}$.

    $t$ has density $\propto (1-t^2)^{(d-3)/2}$ on $[-1, 1]$, i.e.
    $(t+1)/2 \sim \operatorname{Beta}\big(\tfrac{d-1}{2}, \tfrac{d-1}{2}\big)$ (for
    $d\ge2$).

    Args:
        q: Probability levels in ``[0, 1]``, any shape.
        d: Ambient dimension, >= 2.

    Returns:
        The quantiles, an array of the shape of ``q`` with values in ``[-1, 1]``.
    """
    from scipy.stats import beta

    d = checks.integer(d, "d", "uniform_sphere_cosine_quantile", minimum=2)
    a = (d - 1) / 2
    return 2.0 * beta.ppf(np.asarray(q, dtype=float), a, a) - 1.0


def wasserstein_uniformity(
    z: torch.Tensor, n_ref: int = 10_000, seed: int = 0, max_pairs: int = 1_000_000
) -> float:
    r"""Wasserstein uniformity (Koromilas et al. 2024): the 1-D Wasserstein-1
    distance between the empirical law $\hat\mu$ of the pairwise cosine similarities
    $\{u_i^\top u_j\}_{i<j}$ of the normalised rows and the law $\mu_d$ of $u^\top v$
    for independent uniform points on $S^{d-1}$:

    $$W_1(\hat\mu, \mu_d) = \int_0^1 \big| \hat Q(q) - Q_d(q) \big| \, dq,$$

    where $Q$ are quantile functions. $Q_d$ is exact (Beta law, see
    :func:`uniform_sphere_cosine_quantile`); the integral is a midpoint rule over
    ``n_ref`` quantile levels, so no reference sample is drawn. 0 for a perfectly
    uniform sample (up to sampling noise $O(N^{-1/2})$); large for collapse (all cosines
    1 gives $W_1 = 1$). If there are more than ``max_pairs`` pairs, a random subset
    (``seed``) is used.

    The authors' code (github.com/pakoromilas/DHEL-KCL, ``metrics.py``) estimates the
    same distance against 10,000 samples drawn from the density; using the exact
    quantiles removes that sampling noise and works for any $d$.

    Args:
        z: Embeddings, shape ``(N, d)``, ``N >= 2``, ``d >= 2``, no zero row.
        n_ref: Number of quantile levels of the midpoint rule, >= 1.
        seed: Seed of the pair subsample (used only above ``max_pairs`` pairs).
        max_pairs: Largest number of pairs used, >= 1.

    Returns:
        $W_1$, a float in ``[0, 2]``.
    """
    where = "wasserstein_uniformity"
    z = _matrix(z, "z", where, min_rows=2)
    d = z.shape[1]
    if d < 2:
        raise checks.fail(
            where,
            "z",
            "(N, d) with d >= 2 (a sphere of dimension >= 1)",
            f"shape {tuple(z.shape)}",
        )
    n_ref = checks.integer(n_ref, "n_ref", where, minimum=1)
    max_pairs = checks.integer(max_pairs, "max_pairs", where, minimum=1)
    u = _normalise(z, "z", where)
    n = u.shape[0]
    i, j = torch.triu_indices(n, n, offset=1)
    if i.numel() > max_pairs:
        g = torch.Generator().manual_seed(seed)
        keep = torch.randperm(i.numel(), generator=g)[:max_pairs]
        i, j = i[keep], j[keep]
    cos = (u[i] * u[j]).sum(dim=1).clamp(-1.0, 1.0)
    cos_sorted = np.sort(cos.cpu().numpy())  # .cpu(): inputs may live on a GPU
    q = (np.arange(n_ref) + 0.5) / n_ref
    empirical_q = cos_sorted[
        np.minimum((q * cos_sorted.size).astype(np.int64), cos_sorted.size - 1)
    ]
    return float(np.mean(np.abs(empirical_q - uniform_sphere_cosine_quantile(q, d))))
