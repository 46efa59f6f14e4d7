"""Tests for cl_lib.metrics on inputs whose answers are known in closed form."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from cl_lib.metrics import (alignment, effective_rank, embedding_variance, rank, uniformity,
                            uniform_sphere_cosine_quantile, wasserstein_uniformity)


def _uniform_sphere(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def _collapsed(n=20, d=5):
    return torch.ones(n, d) * torch.tensor([3.0, -1.0, 2.0, 0.5, 1.0])[:d]


# ---------------------------------------------------------------- alignment
def test_alignment_perfect_is_zero_and_scale_invariant():
    z = torch.randn(32, 8)
    assert alignment(z, 3.0 * z) == pytest.approx(0.0, abs=1e-12)


def test_alignment_antipodal_is_two_to_alpha():
    z = torch.randn(16, 4)
    for alpha in (1, 2, 3):
        assert alignment(z, -z, alpha=alpha) == pytest.approx(2.0 ** alpha)


def test_alignment_orthogonal_pairs():
    z1, z2 = torch.eye(4)[:2], torch.eye(4)[2:]
    assert alignment(z1, z2, alpha=2) == pytest.approx(2.0)


# ---------------------------------------------------------------- uniformity
def test_uniformity_collapsed_is_zero():
    assert uniformity(_collapsed()) == pytest.approx(0.0, abs=1e-12)


def test_uniformity_antipodal_pair():
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert uniformity(z, t=2) == pytest.approx(-8.0)  # log exp(-2 * 4)


def test_uniformity_matches_definition():
    z = torch.randn(10, 3, dtype=torch.float64)
    u = z / z.norm(dim=1, keepdim=True)
    vals = [math.exp(-2 * float((u[i] - u[j]).pow(2).sum())) for i in range(10) for j in range(i + 1, 10)]
    assert uniformity(z) == pytest.approx(math.log(np.mean(vals)), rel=1e-10)


def test_uniformity_uniform_s2_close_to_analytic_limit():
    # on S^2 the cosine is uniform on [-1, 1] (Archimedes), so E exp(-t|u-v|^2) = (1-e^{-4t})/(4t)
    limit = math.log((1 - math.exp(-8)) / 8)
    assert uniformity(_uniform_sphere(4000, 3)) == pytest.approx(limit, abs=0.02)


def test_uniformity_is_large_t_stable():
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert uniformity(z, t=500) == pytest.approx(-2000.0)


# ---------------------------------------------------------------- rank / effective rank / variance
def test_collapsed_rank_effective_rank_variance():
    z = _collapsed()
    assert rank(z) == 1
    assert effective_rank(z) == pytest.approx(1.0, abs=1e-4)
    assert embedding_variance(z) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("d", [2, 5, 16])
def test_orthonormal_frame_full_rank(d):
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))
    assert rank(q) == d
    assert effective_rank(q) == pytest.approx(d, rel=1e-4)


def test_rank_counts_spanned_subspace_and_tol():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, 3, generator=g) @ torch.randn(3, 10, generator=g)
    assert rank(z) == 3
    assert rank(z, tol=1e6) == 0


def test_effective_rank_between_one_and_min_dim():
    z = torch.randn(40, 6) * torch.tensor([10.0, 5.0, 1.0, 0.1, 0.01, 0.0])
    er = effective_rank(z)
    assert 1.0 < er < 6.0


def test_embedding_variance_known_value():
    z = torch.tensor([[0.0, 0.0], [2.0, 4.0]])  # per-dim population variances 1 and 4
    assert embedding_variance(z) == pytest.approx(5.0)


# ---------------------------------------------------------------- Wasserstein uniformity
@pytest.mark.parametrize("d", [2, 3, 8])
def test_cosine_quantile_matches_density(d):
    # median 0 by symmetry, and the CDF of the density (1-t^2)^{(d-3)/2} at the 0.8-quantile is 0.8
    assert uniform_sphere_cosine_quantile(np.array([0.5]), d)[0] == pytest.approx(0.0, abs=1e-12)
    q80 = uniform_sphere_cosine_quantile(np.array([0.8]), d)[0]
    dens = lambda t: (1 - t * t) ** ((d - 3) / 2)  # noqa: E731
    num = integrate.quad(dens, -1, q80)[0] / integrate.quad(dens, -1, 1)[0]
    assert num == pytest.approx(0.8, abs=1e-6)


def test_cosine_quantile_s2_is_uniform():
    q = np.linspace(0.01, 0.99, 7)
    assert np.allclose(uniform_sphere_cosine_quantile(q, 3), 2 * q - 1)


@pytest.mark.parametrize("d", [3, 16])
def test_wasserstein_uniform_sample_near_zero(d):
    assert wasserstein_uniformity(_uniform_sphere(1500, d)) < 0.01


def test_wasserstein_collapsed_is_one():
    assert wasserstein_uniformity(_collapsed()) == pytest.approx(1.0, abs=1e-3)


def test_wasserstein_orders_uniform_before_clustered():
    u = _uniform_sphere(400, 3)
    clustered = u.clone()
    clustered[:, 0] += 3.0  # pushes every point towards the pole e_1
    assert wasserstein_uniformity(clustered) > wasserstein_uniformity(u) + 0.2


def test_wasserstein_pair_subsampling_is_seeded():
    u = _uniform_sphere(300, 4)
    a = wasserstein_uniformity(u, max_pairs=2000, seed=1)
    b = wasserstein_uniformity(u, max_pairs=2000, seed=1)
    assert a == b and a < 0.05


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("call", [
    lambda: alignment(torch.randn(4, 3), torch.randn(5, 3)),
    lambda: alignment(torch.randn(4, 3), torch.randn(4, 3), alpha=0),
    lambda: alignment(torch.zeros(4, 3), torch.randn(4, 3)),
    lambda: uniformity(torch.randn(1, 3)),
    lambda: uniformity(torch.randn(4, 3), t=-1),
    lambda: uniformity(torch.randn(4)),
    lambda: uniformity(np.zeros((4, 3))),
    lambda: rank(torch.full((3, 3), float("nan"))),
    lambda: rank(torch.randn(3, 3), tol=-1.0),
    lambda: effective_rank(torch.zeros(3, 3)),
    lambda: embedding_variance(torch.randn(2, 3, 4)),
    lambda: wasserstein_uniformity(torch.randn(5, 1)),
    lambda: wasserstein_uniformity(torch.randn(5, 3), n_ref=0),
    lambda: uniform_sphere_cosine_quantile(np.array([0.5]), 1),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def test_returns_python_numbers():
    z = torch.randn(10, 4)
    for v in (alignment(z, z), uniformity(z), effective_rank(z), embedding_variance(z), wasserstein_uniformity(z)):
        assert isinstance(v, float)
    assert isinstance(rank(z), int)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: checks that CUDA input works")
def test_wasserstein_uniformity_accepts_cuda_input():
    u = _uniform_sphere(200, 3)
    assert wasserstein_uniformity(u.cuda()) == pytest.approx(wasserstein_uniformity(u), abs=1e-9)


def test_error_messages_name_the_function_and_argument():
    """Messages follow cl_lib.checks: '<function>: <argument> must be ..., got ...'."""
    with pytest.raises(ValueError, match=r"^alignment: z2 must be the same shape"):
        alignment(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"^uniformity: t must be a finite number > 0"):
        uniformity(torch.randn(4, 3), t=0)
    with pytest.raises(ValueError, match=r"^rank: z must be finite"):
        rank(torch.full((3, 3), float("nan")))
    with pytest.raises(ValueError, match=r"^effective_rank: z must be non-zero"):
        effective_rank(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"^wasserstein_uniformity: n_ref must be an integer"):
        wasserstein_uniformity(torch.randn(5, 3), n_ref=0)
    assert rank(torch.eye(3, dtype=torch.long)) == 3   # integer matrices are accepted
