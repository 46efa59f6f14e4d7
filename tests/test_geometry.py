"""Tests for cl_lib.experiments.geometry: closed-form energies, the minimiser, and config_distance."""
import math

import pytest
import torch

from cl_lib.experiments.geometry import (THOMSON_ENERGIES, bipyramid, config_distance, cross_polytope,
                             gaussian_energy, icosahedron, imq_energy, log_energy, minimise_energy,
                             octahedron, pairwise_distances, regular_simplex, riesz_energy,
                             uniform_sphere)
from cl_lib.metrics import uniformity


def _random_orthogonal(d, seed):
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def _scramble(x, seed=0):
    """A rotated (possibly reflected) and permuted copy of x."""
    g = torch.Generator().manual_seed(seed)
    return (x @ _random_orthogonal(x.shape[1], seed))[torch.randperm(x.shape[0], generator=g)]


# ---------------------------------------------------------------- sampling and shapes
def test_uniform_sphere_shapes_and_norms():
    g = torch.Generator().manual_seed(0)
    x = uniform_sphere(7, 4, g)
    xb = uniform_sphere(7, 4, g, restarts=3)
    assert x.shape == (7, 4) and xb.shape == (3, 7, 4)
    assert torch.allclose(xb.norm(dim=-1), torch.ones(3, 7, dtype=torch.float64))


def test_uniform_sphere_is_seeded_and_centred():
    a = uniform_sphere(5, 3, torch.Generator().manual_seed(1))
    b = uniform_sphere(5, 3, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    big = uniform_sphere(20000, 3, torch.Generator().manual_seed(2))
    assert big.mean(0).norm() < 0.03


def test_energies_are_batched():
    x = uniform_sphere(6, 3, torch.Generator().manual_seed(0), restarts=4)
    for fn in (lambda y: riesz_energy(y, 1), log_energy, gaussian_energy, imq_energy):
        e = fn(x)
        assert e.shape == (4,)
        assert torch.allclose(e[2], fn(x[2]))


# ---------------------------------------------------------------- known configurations
def test_regular_simplex_gram():
    for d in (2, 3, 5, 8):
        for m in range(2, d + 2):
            x = regular_simplex(m, d)
            gram = x @ x.T
            want = torch.full((m, m), -1.0 / (m - 1), dtype=torch.float64).fill_diagonal_(1.0)
            assert x.shape == (m, d)
            assert torch.allclose(gram, want, atol=1e-12)


def test_known_shapes():
    assert cross_polytope(4).shape == (8, 4)
    assert octahedron().shape == (6, 3)
    assert bipyramid().shape == (5, 3)
    ico = icosahedron()
    assert ico.shape == (12, 3)
    # every vertex of the icosahedron has 5 nearest neighbours at the same distance
    dist = torch.cdist(ico, ico)
    nn = dist.masked_fill(torch.eye(12, dtype=torch.bool), 9).min(dim=1).values
    assert torch.allclose((dist - nn[:, None]).abs().lt(1e-12).sum(1), torch.full((12,), 5))


@pytest.mark.parametrize("m, config", [
    (2, lambda: regular_simplex(2, 3)), (3, lambda: regular_simplex(3, 3)),
    (4, lambda: regular_simplex(4, 3)), (5, lambda: bipyramid(3)), (6, octahedron),
    (7, lambda: bipyramid(5)), (12, icosahedron)])
def test_thomson_closed_forms_match_published(m, config):
    assert abs(float(riesz_energy(config(), 1.0)) - THOMSON_ENERGIES[m]) < 1e-9


def test_closed_form_energies_by_hand():
    # tetrahedron: 6 edges of length sqrt(8/3)
    assert float(riesz_energy(regular_simplex(4, 3), 1)) == pytest.approx(6 / math.sqrt(8 / 3), abs=1e-12)
    # octahedron: 12 edges sqrt(2) and 3 antipodal pairs at 2
    assert float(riesz_energy(octahedron(), 1)) == pytest.approx(12 / math.sqrt(2) + 1.5, abs=1e-12)
    # icosahedron: 30 edges, 30 "second neighbours", 6 antipodal pairs; edge^2 = 2 - 2/sqrt5
    e1, e2 = math.sqrt(2 - 2 / math.sqrt(5)), math.sqrt(2 + 2 / math.sqrt(5))
    assert float(riesz_energy(icosahedron(), 1)) == pytest.approx(30 / e1 + 30 / e2 + 3, abs=1e-12)
    # log energy of the antipodal pair and the Gaussian and IMQ energies of the cross-polytope
    assert float(log_energy(regular_simplex(2, 2))) == pytest.approx(-math.log(2))
    d = 5  # 2d(2d-2)/2 pairs at distance sqrt 2, d pairs at distance 2
    n_orth = 2 * d * (2 * d - 2) // 2
    assert float(gaussian_energy(cross_polytope(d), 2)) == pytest.approx(n_orth * math.exp(-4) + d * math.exp(-8))
    assert float(imq_energy(cross_polytope(d), 2)) == pytest.approx(n_orth * 2 / math.sqrt(6) + d * 2 / math.sqrt(8))
    assert float(riesz_energy(regular_simplex(2, 3), -1)) == pytest.approx(-2.0)


def test_uniformity_is_log_mean_gaussian_energy():
    x = uniform_sphere(30, 5, torch.Generator().manual_seed(3))
    pairs = 30 * 29 / 2
    assert uniformity(x, t=2) == pytest.approx(math.log(float(gaussian_energy(x, 2)) / pairs), abs=1e-12)


def test_pairwise_distances_order():
    x = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(pairwise_distances(x), torch.full((3,), math.sqrt(2), dtype=torch.float64))


# ---------------------------------------------------------------- minimiser
def _riesz1(x):
    return riesz_energy(x, 1.0)


@pytest.mark.parametrize("m, exact", [(4, lambda: regular_simplex(4, 3)), (6, octahedron), (12, icosahedron)])
def test_minimiser_recovers_thomson_configurations(m, exact):
    res = minimise_energy(_riesz1, m, 3, restarts=8, steps=600, seed=0)
    assert abs(res.best_energy - THOMSON_ENERGIES[m]) < 1e-7
    assert config_distance(res.best, exact()) < 1e-4
    assert torch.allclose(res.best.norm(dim=1), torch.ones(m, dtype=torch.float64))
    assert res.energies.shape == (8,) and res.configs.shape == (8, m, 3)


@pytest.mark.parametrize("m", [8, 9, 10, 11])
def test_minimiser_matches_published_thomson_values(m):
    res = minimise_energy(_riesz1, m, 3, restarts=8, steps=1500, seed=0)
    assert abs(res.best_energy - THOMSON_ENERGIES[m]) < 1e-6


@pytest.mark.parametrize("d", [2, 4, 6])
def test_minimiser_finds_simplex_in_higher_dimension(d):
    res = minimise_energy(_riesz1, d + 1, d, restarts=4, steps=800, seed=1)
    assert config_distance(res.best, regular_simplex(d + 1, d)) < 1e-4


def test_minimiser_gaussian_cross_polytope():
    # M = 2d points under the Gaussian kernel: the cross-polytope (Koromilas et al. 2024, KCL section)
    res = minimise_energy(lambda x: gaussian_energy(x, 2.0), 8, 4, restarts=6, steps=800, seed=0)
    assert config_distance(res.best, cross_polytope(4)) < 1e-4


def test_minimiser_is_seeded_and_accepts_x0():
    a = minimise_energy(_riesz1, 5, 3, restarts=3, steps=50, seed=4)
    b = minimise_energy(_riesz1, 5, 3, restarts=3, steps=50, seed=4)
    assert torch.equal(a.configs, b.configs)
    c = minimise_energy(_riesz1, 5, 3, restarts=3, steps=0, x0=a.configs)
    assert torch.allclose(c.energies, a.energies)


# ---------------------------------------------------------------- config_distance
@pytest.mark.parametrize("config", [lambda: regular_simplex(4, 3), octahedron, icosahedron, bipyramid,
                                    lambda: cross_polytope(5), lambda: regular_simplex(6, 7),
                                    lambda: uniform_sphere(9, 4, torch.Generator().manual_seed(0))])
def test_config_distance_zero_for_rotated_permuted_copy(config):
    x = config()
    for seed in range(3):
        assert config_distance(x, _scramble(x, seed)) < 1e-9


def test_config_distance_positive_for_different_configurations():
    assert config_distance(octahedron(), uniform_sphere(6, 3, torch.Generator().manual_seed(0))) > 0.05
    assert config_distance(bipyramid(3), regular_simplex(5, 4)[:, :3] / regular_simplex(5, 4)[:, :3].norm(dim=1, keepdim=True)) > 0.05
    # a small perturbation is detected and of the right size
    x = icosahedron()
    y = x.clone()
    y[0] = torch.nn.functional.normalize(y[0] + torch.tensor([0.01, 0.0, 0.0], dtype=torch.float64), dim=0)
    dist = config_distance(x, _scramble(y, 1))
    assert 0 < dist < (y - x).norm() / math.sqrt(12) + 1e-12


def test_config_distance_symmetric():
    a = uniform_sphere(7, 3, torch.Generator().manual_seed(5))
    b = uniform_sphere(7, 3, torch.Generator().manual_seed(6))
    assert config_distance(a, b) == pytest.approx(config_distance(b, a), abs=1e-9)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("call", [
    lambda: uniform_sphere(0, 3),
    lambda: uniform_sphere(3, 3, restarts=0),
    lambda: riesz_energy(torch.randn(1, 3)),
    lambda: riesz_energy(torch.randn(2, 3, 4, 5)),
    lambda: gaussian_energy(torch.randn(4, 3), t=0),
    lambda: imq_energy(torch.randn(4, 3), c=-1),
    lambda: regular_simplex(5, 3),
    lambda: cross_polytope(0),
    lambda: bipyramid(2),
    lambda: minimise_energy(_riesz1, 1, 3),
    lambda: minimise_energy(_riesz1, 4, 3, lr=0),
    lambda: minimise_energy(_riesz1, 4, 3, restarts=2, x0=torch.randn(3, 4, 3)),
    lambda: minimise_energy(lambda x: riesz_energy(x, 1).sum(), 4, 3, restarts=2, steps=1),
    lambda: config_distance(octahedron(), icosahedron()),
    lambda: config_distance(octahedron().numpy(), octahedron()),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------- contrastive losses as energies
def test_logsumexp_energy_equals_losses_at_perfect_alignment():
    from cl_lib.experiments.geometry import aligned_loss_energy, logsumexp_energy
    from cl_lib.losses import dcl_loss, dhel_loss, infonce_loss

    x = uniform_sphere(7, 4, torch.Generator().manual_seed(0), restarts=3)
    for tau in (0.1, 0.5):
        cases = [(infonce_loss, 1.0, 2.0), (dcl_loss, 0.0, 2.0), (dhel_loss, 0.0, 1.0)]
        for loss, a, b in cases:
            want = aligned_loss_energy(loss, tau=tau)(x)
            got = logsumexp_energy(x, tau, positive_weight=a, negative_weight=b) - 1 / tau
            assert torch.allclose(got, want, atol=1e-10)


def test_logsumexp_energy_by_hand_and_validation():
    from cl_lib.experiments.geometry import logsumexp_energy

    # antipodal pair, DHEL weights: log e^{-1/tau}
    assert float(logsumexp_energy(regular_simplex(2, 3), tau=0.5)) == pytest.approx(-2.0)
    with pytest.raises(ValueError):
        logsumexp_energy(octahedron(), tau=0)


def test_pair_loss_energy_splits_views():
    from cl_lib.experiments.geometry import pair_loss_energy
    from cl_lib.losses import dhel_loss

    g = torch.Generator().manual_seed(1)
    u, v = uniform_sphere(5, 3, g), uniform_sphere(5, 3, g)
    energy = pair_loss_energy(dhel_loss, 5, tau=0.3)
    assert float(energy(torch.cat([u, v])[None])[0]) == pytest.approx(float(dhel_loss(u, v, tau=0.3)))
    with pytest.raises(ValueError):
        energy(u[None])


def test_free_point_dhel_minimiser_is_aligned_simplex():
    from cl_lib.experiments.geometry import pair_loss_energy
    from cl_lib.losses import dhel_loss

    res = minimise_energy(pair_loss_energy(dhel_loss, 4, tau=0.5), 8, 3, restarts=3, steps=300, seed=0)
    u, v = res.best[:4], res.best[4:]
    assert (u - v).norm(dim=1).max() < 1e-4
    assert config_distance(u, regular_simplex(4, 3)) < 1e-4
