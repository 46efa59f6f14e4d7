"""Tests for cl_lib.kernels and cl_lib.experiments.sphere.

The kernel table and its convention, closed-form energies, the one free-point minimiser,
batched losses, config_distance, and the free-point helpers of chapters 4 and 5.
"""

import functools
import math

import pytest
import torch
import torch.nn.functional as F

from cl_lib import kernels, losses
from cl_lib.experiments import sphere
from cl_lib.experiments.sphere import (
    THOMSON_ENERGIES,
    bipyramid,
    config_distance,
    cross_polytope,
    icosahedron,
    kernel_energy,
    minimise,
    octahedron,
    regular_simplex,
    uniform_sphere,
)
from cl_lib.metrics import uniformity


def _random_orthogonal(d, seed):
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def _scramble(x, seed=0):
    """A rotated (possibly reflected) and permuted copy of x."""
    g = torch.Generator().manual_seed(seed)
    return (x @ _random_orthogonal(x.shape[1], seed))[
        torch.randperm(x.shape[0], generator=g)
    ]


def _coulomb(x):
    return kernel_energy(x, "riesz", s=1.0)


def _thomson_sum(x):
    """Published Thomson energies are sums over pairs; kernel_energy is the mean."""
    return float(_coulomb(x)) * math.comb(x.shape[-2], 2)


# -------------------- the kernel table
def test_kernel_table_convention_squared_distance_and_mean():
    x = uniform_sphere(7, 4, torch.Generator().manual_seed(0))
    i, j = torch.triu_indices(7, 7, offset=1)
    r = (x[i] - x[j]).pow(2).sum(1)  # squared distances, by hand
    for name, (fn, pname, default) in kernels.KERNELS.items():
        want = fn(r, default).mean()
        assert torch.allclose(kernel_energy(x, name), want, atol=1e-12), name
    by_hand = {
        "gaussian": torch.exp(-2 * r),
        "log": -torch.log1p(2 * r),
        "imq": 2 / torch.sqrt(4 + r),
        "riesz": -r.sqrt(),
    }
    for name, k in by_hand.items():
        assert torch.allclose(kernels.kernel_values(r, name), k, atol=1e-12), name
    # Riesz s is the exponent of the distance, s = 0 the logarithmic kernel
    assert torch.allclose(kernels.kernel_values(r, "riesz", s=1.0), 1 / r.sqrt())
    assert torch.allclose(
        kernels.kernel_values(r, "riesz", s=0.0), -torch.log(r.sqrt())
    )


def test_kcl_loss_uses_the_table():
    g = torch.Generator().manual_seed(1)
    u, v = uniform_sphere(6, 3, g), uniform_sphere(6, 3, g)
    for name, p in {
        "gaussian": {"t": 1.5},
        "log": {"t": 3.0},
        "imq": {"c": 0.5},
        "riesz": {"s": -1.5},
    }.items():
        fn = kernels.KERNELS[name].fn
        want = -2 * fn((u - v).pow(2).sum(1), *p.values()).mean() + 3.0 * (
            kernel_energy(u, name, **p) + kernel_energy(v, name, **p)
        )
        assert torch.allclose(
            losses.kcl_loss(u, v, kernel=name, gamma=3.0, **p), want, atol=1e-12
        ), name


@pytest.mark.parametrize(
    "call",
    [
        lambda: kernels.resolve_kernel("laplace", {}),
        lambda: kernels.resolve_kernel("imq", {"t": 1.0}),
        lambda: kernels.resolve_kernel("gaussian", {"t": 0.0}),
        lambda: kernels.resolve_kernel("riesz", {"s": float("nan")}),
        lambda: kernels.resolve_kernel("riesz", {"s": 0.0}, allow_logarithmic=False),
        lambda: kernels.resolve_kernel("log", {"t": "two"}),
        lambda: kernel_energy(torch.randn(1, 3)),
    ],
)
def test_kernel_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


# -------------------- sampling and shapes
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
    for name in ("riesz", "log", "gaussian", "imq"):
        e = kernel_energy(x, name)
        fn = functools.partial(kernel_energy, kernel=name)
        assert e.shape == (4,)
        assert torch.allclose(e[2], fn(x[2]))


# -------------------- known configurations
def test_regular_simplex_gram():
    for d in (2, 3, 5, 8):
        for m in range(2, d + 2):
            x = regular_simplex(m, d)
            gram = x @ x.T
            want = torch.full(
                (m, m), -1.0 / (m - 1), dtype=torch.float64
            ).fill_diagonal_(1.0)
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
    assert torch.allclose(
        (dist - nn[:, None]).abs().lt(1e-12).sum(1), torch.full((12,), 5)
    )


@pytest.mark.parametrize(
    "m, config",
    [
        (2, lambda: regular_simplex(2, 3)),
        (3, lambda: regular_simplex(3, 3)),
        (4, lambda: regular_simplex(4, 3)),
        (5, lambda: bipyramid(3)),
        (6, octahedron),
        (7, lambda: bipyramid(5)),
        (12, icosahedron),
    ],
)
def test_thomson_closed_forms_match_published(m, config):
    assert abs(_thomson_sum(config()) - THOMSON_ENERGIES[m]) < 1e-9


def test_closed_form_energies_by_hand():
    # sums over pairs = comb(M, 2) x the mean that kernel_energy returns
    # tetrahedron: 6 edges of length sqrt(8/3)
    assert _thomson_sum(regular_simplex(4, 3)) == pytest.approx(
        6 / math.sqrt(8 / 3), abs=1e-12
    )
    # octahedron: 12 edges sqrt(2) and 3 antipodal pairs at 2
    assert _thomson_sum(octahedron()) == pytest.approx(
        12 / math.sqrt(2) + 1.5, abs=1e-12
    )
    # icosahedron: 30 edges, 30 "second neighbours", 6 antipodal pairs; edge^2 = 2 -
    # 2/sqrt5
    e1, e2 = math.sqrt(2 - 2 / math.sqrt(5)), math.sqrt(2 + 2 / math.sqrt(5))
    assert _thomson_sum(icosahedron()) == pytest.approx(
        30 / e1 + 30 / e2 + 3, abs=1e-12
    )
    # logarithmic (Riesz s = 0) energy of the antipodal pair: -log 2
    assert float(kernel_energy(regular_simplex(2, 2), "riesz", s=0.0)) == pytest.approx(
        -math.log(2)
    )
    d = 5  # cross-polytope: 2d(2d-2)/2 pairs at squared distance 2, d pairs at 4
    n_orth, n_pairs = 2 * d * (2 * d - 2) // 2, math.comb(2 * d, 2)
    mean = lambda a, b: (n_orth * a + d * b) / n_pairs
    assert float(kernel_energy(cross_polytope(d), "gaussian", t=2)) == pytest.approx(
        mean(math.exp(-4), math.exp(-8))
    )
    assert float(kernel_energy(cross_polytope(d), "imq", c=2)) == pytest.approx(
        mean(2 / math.sqrt(6), 2 / math.sqrt(8))
    )
    assert float(kernel_energy(cross_polytope(d), "log", t=2)) == pytest.approx(
        mean(-math.log(5), -math.log(9))
    )
    assert float(kernel_energy(regular_simplex(2, 3), "riesz", s=-1)) == pytest.approx(
        -2.0
    )


def test_uniformity_is_log_mean_gaussian_energy():
    x = uniform_sphere(30, 5, torch.Generator().manual_seed(3))
    assert uniformity(x, t=2) == pytest.approx(
        math.log(float(kernel_energy(x, "gaussian", t=2))), abs=1e-12
    )


# -------------------- minimiser
_riesz1 = _coulomb


@pytest.mark.parametrize(
    "m, exact", [(4, lambda: regular_simplex(4, 3)), (6, octahedron), (12, icosahedron)]
)
def test_minimiser_recovers_thomson_configurations(m, exact):
    res = minimise(_riesz1, m, 3, restarts=8, steps=600, seed=0)
    assert abs(res.best_energy * math.comb(m, 2) - THOMSON_ENERGIES[m]) < 1e-7
    assert config_distance(res.best, exact()) < 1e-4
    assert torch.allclose(res.best.norm(dim=1), torch.ones(m, dtype=torch.float64))
    assert res.energies.shape == (8,) and res.configs.shape == (8, m, 3)


@pytest.mark.parametrize("m", [8, 9, 10, 11])
def test_minimiser_matches_published_thomson_values(m):
    res = minimise(_riesz1, m, 3, restarts=8, steps=1500, seed=0)
    assert abs(res.best_energy * math.comb(m, 2) - THOMSON_ENERGIES[m]) < 1e-6


@pytest.mark.parametrize("d", [2, 4, 6])
def test_minimiser_finds_simplex_in_higher_dimension(d):
    res = minimise(_riesz1, d + 1, d, restarts=4, steps=800, seed=1)
    assert config_distance(res.best, regular_simplex(d + 1, d)) < 1e-4


def test_minimiser_gaussian_cross_polytope():
    # M = 2d points under the Gaussian kernel: the cross-polytope (Koromilas et al.
    # 2024, KCL section)
    res = minimise(
        lambda x: kernel_energy(x, "gaussian", t=2.0),
        8,
        4,
        restarts=6,
        steps=800,
        seed=0,
    )
    assert config_distance(res.best, cross_polytope(4)) < 1e-4


def test_minimiser_is_seeded_and_accepts_x0():
    a = minimise(_riesz1, 5, 3, restarts=3, steps=50, seed=4)
    b = minimise(_riesz1, 5, 3, restarts=3, steps=50, seed=4)
    assert torch.equal(a.configs, b.configs)
    c = minimise(_riesz1, 5, 3, restarts=3, steps=0, x0=a.configs)
    assert torch.allclose(c.energies, a.energies)


# -------------------- config_distance
@pytest.mark.parametrize(
    "config",
    [
        lambda: regular_simplex(4, 3),
        octahedron,
        icosahedron,
        bipyramid,
        lambda: cross_polytope(5),
        lambda: regular_simplex(6, 7),
        lambda: uniform_sphere(9, 4, torch.Generator().manual_seed(0)),
    ],
)
def test_config_distance_zero_for_rotated_permuted_copy(config):
    x = config()
    for seed in range(3):
        assert config_distance(x, _scramble(x, seed)) < 1e-9


def test_config_distance_positive_for_different_configurations():
    assert (
        config_distance(
            octahedron(), uniform_sphere(6, 3, torch.Generator().manual_seed(0))
        )
        > 0.05
    )
    assert (
        config_distance(
            bipyramid(3),
            regular_simplex(5, 4)[:, :3]
            / regular_simplex(5, 4)[:, :3].norm(dim=1, keepdim=True),
        )
        > 0.05
    )
    # a small perturbation is detected and of the right size
    x = icosahedron()
    y = x.clone()
    y[0] = torch.nn.functional.normalize(
        y[0] + torch.tensor([0.01, 0.0, 0.0], dtype=torch.float64), dim=0
    )
    dist = config_distance(x, _scramble(y, 1))
    assert 0 < dist < (y - x).norm() / math.sqrt(12) + 1e-12


def test_config_distance_symmetric():
    a = uniform_sphere(7, 3, torch.Generator().manual_seed(5))
    b = uniform_sphere(7, 3, torch.Generator().manual_seed(6))
    assert config_distance(a, b) == pytest.approx(config_distance(b, a), abs=1e-9)


# -------------------- validation
@pytest.mark.parametrize(
    "call",
    [
        lambda: uniform_sphere(0, 3),
        lambda: uniform_sphere(3, 3, restarts=0),
        lambda: kernel_energy(torch.randn(1, 3), "riesz"),
        lambda: kernel_energy(torch.randn(4, 3), "gaussian", t=0),
        lambda: kernel_energy(torch.randn(4, 3), "imq", c=-1),
        lambda: minimise(_riesz1, 4, 3, method="lbfgs"),
        lambda: regular_simplex(5, 3),
        lambda: cross_polytope(0),
        lambda: bipyramid(2),
        lambda: minimise(_riesz1, 1, 3),
        lambda: minimise(_riesz1, 4, 3, lr=0),
        lambda: minimise(_riesz1, 4, 3, restarts=2, x0=torch.randn(3, 4, 3)),
        lambda: minimise(lambda x: _riesz1(x).sum(), 4, 3, restarts=2, steps=1),
        lambda: config_distance(octahedron(), icosahedron()),
        lambda: config_distance(octahedron().numpy(), octahedron()),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


# -------------------- contrastive losses as energies
def test_logsumexp_energy_equals_losses_at_perfect_alignment():
    from cl_lib.experiments.sphere import aligned_loss_energy, logsumexp_energy
    from cl_lib.losses import dcl_loss, dhel_loss, infonce_loss

    x = uniform_sphere(7, 4, torch.Generator().manual_seed(0), restarts=3)
    for tau in (0.1, 0.5):
        cases = [(infonce_loss, 1.0, 2.0), (dcl_loss, 0.0, 2.0), (dhel_loss, 0.0, 1.0)]
        for loss, a, b in cases:
            want = aligned_loss_energy(loss, tau=tau)(x)
            got = (
                logsumexp_energy(x, tau, positive_weight=a, negative_weight=b) - 1 / tau
            )
            assert torch.allclose(got, want, atol=1e-10)


def test_logsumexp_energy_by_hand_and_validation():
    from cl_lib.experiments.sphere import logsumexp_energy

    # antipodal pair, DHEL weights: log e^{-1/tau}
    assert float(logsumexp_energy(regular_simplex(2, 3), tau=0.5)) == pytest.approx(
        -2.0
    )
    with pytest.raises(ValueError):
        logsumexp_energy(octahedron(), tau=0)


def test_pair_loss_energy_splits_views():
    from cl_lib.experiments.sphere import pair_loss_energy
    from cl_lib.losses import dhel_loss

    g = torch.Generator().manual_seed(1)
    u, v = uniform_sphere(5, 3, g), uniform_sphere(5, 3, g)
    energy = pair_loss_energy(dhel_loss, 5, tau=0.3)
    assert float(energy(torch.cat([u, v])[None])[0]) == pytest.approx(
        float(dhel_loss(u, v, tau=0.3))
    )
    with pytest.raises(ValueError):
        energy(u[None])


def test_free_point_dhel_minimiser_is_aligned_simplex():
    from cl_lib.experiments.sphere import pair_loss_energy
    from cl_lib.losses import dhel_loss

    res = minimise(
        pair_loss_energy(dhel_loss, 4, tau=0.5), 8, 3, restarts=3, steps=300, seed=0
    )
    u, v = res.best[:4], res.best[4:]
    assert (u - v).norm(dim=1).max() < 1e-4
    assert config_distance(u, regular_simplex(4, 3)) < 1e-4


def test_squared_distances_order():
    x = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(
        kernels.squared_distances(x), torch.full((3,), 2.0, dtype=torch.float64)
    )


# -------------------- batched losses
@pytest.mark.parametrize(
    "name, hyper",
    [
        ("infonce", {"tau": 0.2}),
        ("dcl", {"tau": 0.5}),
        ("dhel", {"tau": 0.3}),
        ("dhel", {"tau": 0.3, "both_views": True}),
        ("kcl", {"kernel": "imq", "c": 1.0}),
        ("kcl", {"kernel": "gaussian", "gamma": 2.0, "t": 3.0}),
    ],
)
def test_batched_loss_equals_the_engine_loss(name, hyper):
    g = torch.Generator().manual_seed(2)
    u = torch.randn(4, 6, 5, generator=g, dtype=torch.float64)
    v = torch.randn(4, 6, 5, generator=g, dtype=torch.float64)
    got = sphere.batched_loss(name, u, v, **hyper)
    want = torch.stack([losses.get_loss(name, **hyper)(a, b) for a, b in zip(u, v)])
    assert got.shape == (4,) and torch.allclose(got, want, atol=1e-12)
    energy = sphere.pair_loss_energy(name, 6, **hyper)
    assert torch.allclose(energy(torch.cat([u, v], dim=1)), want, atol=1e-12)


def test_batched_loss_takes_one_temperature_per_batch():
    g = torch.Generator().manual_seed(4)
    u, v = torch.randn(4, 5, 4, generator=g), torch.randn(4, 5, 4, generator=g)
    taus = [0.5, 0.1, 0.5, 1.0]  # a repeated one: batches grouped by temperature
    for name in ("infonce", "dcl", "dhel"):
        got = sphere.batched_loss(name, u, v, tau=torch.tensor(taus))
        want = torch.stack(
            [losses.get_loss(name, tau=t)(u[k], v[k]) for k, t in enumerate(taus)]
        )
        assert torch.allclose(got, want, atol=1e-6), name


def test_batched_loss_bad_input():
    x = torch.randn(2, 4, 3)
    for call in (
        lambda: sphere.batched_loss("vicreg", x, x),
        lambda: sphere.batched_loss("infonce", x, x[:, :3]),
        lambda: sphere.batched_loss("infonce", x, x, tau=0.0),
        lambda: sphere.batched_loss("dhel", x, x, tau=-1.0),
        lambda: sphere.batched_loss("dhel", x, x, tau=torch.ones(3)),
        lambda: sphere.batched_loss("infonce", x[0], x[0]),
        lambda: sphere.batched_loss("dcl", x, x, both_views=True),
    ):
        with pytest.raises(ValueError):
            call()


# -------------------- projected Adam and traces
def test_adam_restarts_are_independent_and_find_the_aligned_simplex():
    energy = sphere.pair_loss_energy("dhel", 4, tau=0.5)
    target = regular_simplex(4, 3)
    record = lambda x: {
        "gap": sphere.gram_gap(x[:, :4], target),
        "alignment": (x[:, :4] - x[:, 4:]).pow(2).sum(-1).mean(-1),
    }
    both = minimise(
        energy,
        8,
        3,
        restarts=2,
        steps=300,
        lr=0.05,
        seed=3,
        method="adam",
        record=record,
    )
    second_start = uniform_sphere(8, 3, torch.Generator().manual_seed(3), restarts=2)[
        1:
    ]
    one = minimise(
        energy,
        8,
        3,
        restarts=1,
        steps=300,
        lr=0.05,
        method="adam",
        x0=second_start,
        record=record,
    )
    assert torch.allclose(one.configs[0], both.configs[1], atol=1e-10)
    assert both.trace["gap"].shape == (300, 2)
    assert float(both.trace["gap"][-1].max()) < 1e-3
    assert float(both.trace["alignment"][-1].max()) < 1e-6
    assert torch.allclose(
        both.configs.norm(dim=-1), torch.ones(2, 8, dtype=torch.float64)
    )


def test_gram_gap_invariances():
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    q = _random_orthogonal(4, 1)
    assert float(sphere.gram_gap(x[torch.randperm(6, generator=g)] @ q, x)) < 1e-12
    assert float(sphere.gram_gap(uniform_sphere(6, 4, g), x)) > 0.1
    with pytest.raises(ValueError):
        sphere.gram_gap(x, x[:5])


def test_steps_to_tolerance():
    assert sphere.steps_to_tolerance([3, 0.5, 2, 0.1, 0.05], tol=1.0) == 3
    assert sphere.steps_to_tolerance([0.1, 0.2], tol=1.0) == 0
    assert sphere.steps_to_tolerance([0.1, float("nan")], tol=1.0) is None
    cols = torch.tensor([[3.0, 0.1], [0.5, 2.0], [0.1, 3.0]])
    assert sphere.steps_to_tolerance(cols, tol=1.0) == [1, None]
    with pytest.raises(ValueError):
        sphere.steps_to_tolerance([1.0], tol=0)


# -------------------- who pushes whom
def _align_energy_loss(z1, z2, t=2.0):
    """-alignment + Gaussian energy of z1: views meet only in the alignment term."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    return -(z1 * z2).sum(1).mean() + torch.exp(-t * torch.pdist(z1).pow(2)).mean()


def _coupled_loss(z1, z2, tau=0.5):
    """InfoNCE with one view: the positive sits in the denominator."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    return F.cross_entropy(z1 @ z2.T / tau, torch.arange(z1.shape[0]))


def test_cross_hessian_blocks_decoupled_vs_coupled():
    g = torch.Generator().manual_seed(2)
    u = F.normalize(torch.randn(5, 3, generator=g), dim=1)
    v = F.normalize(torch.randn(5, 3, generator=g), dim=1)
    off = ~torch.eye(5, dtype=torch.bool)
    h = sphere.cross_hessian_blocks(_align_energy_loss, u, v)
    assert h.shape == (5, 5, 3, 3)
    assert h[off].abs().max() < 1e-12  # v_i steers only u_i
    assert h[~off].abs().max() > 1e-3
    assert sphere.cross_hessian_blocks(_coupled_loss, u, v)[off].abs().max() > 1e-3


def test_energy_part_gradient():
    g = torch.Generator().manual_seed(5)
    u = F.normalize(torch.randn(6, 3, generator=g), dim=1)
    v1, v2 = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    dhel = functools.partial(losses.dhel_loss, tau=0.5)
    d1 = sphere.energy_part_gradient(dhel, u, v1, 0.5)
    assert torch.allclose(d1, sphere.energy_part_gradient(dhel, u, v2, 0.5), atol=1e-12)
    c1 = sphere.energy_part_gradient(_coupled_loss, u, v1, 0.5)
    assert (
        c1 - sphere.energy_part_gradient(_coupled_loss, u, v2, 0.5)
    ).abs().max() > 1e-3
    with pytest.raises(ValueError):
        sphere.energy_part_gradient(dhel, u, v1, 0.0)


# -------------------- expected losses, class positives
def test_noisy_cap_pairs_and_monte_carlo():
    g = torch.Generator().manual_seed(3)
    u, v = sphere.noisy_cap_pairs(2000, 5, generator=g)
    assert torch.allclose(u.norm(dim=1), torch.ones(2000), atol=1e-5)
    assert u[:, 0].mean() > 0.5  # non-uniform: concentrated around e_1
    assert (u * v).sum(1).mean() > 0.8  # noisy but related positives
    mean, se = sphere.monte_carlo_loss(
        lambda a, b: (a * b).sum(1).mean(), 64, 50, 5, torch.Generator().manual_seed(4)
    )
    assert 0 < se < 0.01 and abs(mean - float((u * v).sum(1).mean())) < 5 * se + 0.01
    with pytest.raises(ValueError):
        sphere.noisy_cap_pairs(10, 1)
    with pytest.raises(ValueError):
        sphere.monte_carlo_loss(lambda a, b: a.sum(), 1, 5, 3, g)


def test_class_positive_energy_tradeoff():
    def kcl(gamma):
        return functools.partial(losses.kcl_loss, kernel="gaussian", gamma=gamma, t=2.0)

    def run(gamma):
        energy, labels = sphere.class_positive_energy(kcl(gamma), 4, 4)
        res = minimise(energy, 16, 3, restarts=1, steps=150, method="adam", seed=0)
        x = res.best
        same = (labels[:, None] == labels[None]) & ~torch.eye(16, dtype=torch.bool)
        return float(torch.cdist(x, x).pow(2)[same].mean()), uniformity(x), labels

    small, large = run(0.1), run(10.0)
    assert small[2].tolist()[:5] == [0, 0, 0, 0, 1]
    assert small[0] < large[0]  # weak energy: classes collapse
    assert large[1] < small[1]  # strong energy: spread out
    with pytest.raises(ValueError):
        sphere.class_positive_energy(kcl(1.0), 2, 1)


# -------------------- minimisers of the losses (U = V)
def _tetrahedron():
    x = torch.tensor(
        [[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64
    )
    return x / math.sqrt(3)


def _sorted_gram(x):
    return (x @ x.T)[~torch.eye(x.shape[0], dtype=torch.bool)].sort().values


ALIGNED = {
    "infonce": functools.partial(losses.infonce_loss, tau=0.5),
    "dhel": functools.partial(losses.dhel_loss, tau=0.5),
    "dhel_both_views": functools.partial(losses.dhel_loss, tau=0.5, both_views=True),
    "kcl_gaussian": functools.partial(losses.kcl_loss, kernel="gaussian"),
    "kcl_log": functools.partial(losses.kcl_loss, kernel="log"),
    "kcl_imq": functools.partial(losses.kcl_loss, kernel="imq"),
    "kcl_riesz": functools.partial(losses.kcl_loss, kernel="riesz", s=-1.0),
}


@pytest.mark.parametrize("m, target", [(4, _tetrahedron), (6, octahedron)])
@pytest.mark.parametrize("name", list(ALIGNED))
def test_aligned_minimiser_is_simplex_or_cross_polytope(name, m, target):
    """Koromilas et al. (2024): with U = V, these losses are minimised by the simplex
    (M = d + 1) and the cross-polytope (M = 2d); on S^2 the tetrahedron and the
    octahedron.
    """
    energy = sphere.aligned_loss_energy(ALIGNED[name])
    res = minimise(energy, m, 3, restarts=3, steps=300, seed=11)
    exact = target()
    assert torch.allclose(_sorted_gram(res.best), _sorted_gram(exact), atol=2e-3), name
    assert config_distance(res.best, exact, n_random=4) < 1e-2
    assert abs(res.best_energy - float(energy(exact[None]))) < 1e-5
    random_points = uniform_sphere(m, 3, torch.Generator().manual_seed(7), restarts=50)
    assert bool((energy(random_points) > float(energy(exact[None]))).all())


# -------------------- helpers of chapters 2 and 3
def test_coulomb_energy_and_sum_match_thomson_table():
    x = icosahedron()
    assert abs(sphere.coulomb_sum(x) - THOMSON_ENERGIES[12]) < 1e-8
    assert torch.allclose(
        sphere.coulomb_energy(x[None]), kernel_energy(x, "riesz", s=1.0)[None]
    )
    with pytest.raises(ValueError):
        sphere.coulomb_sum(x[None])


def test_square_antiprism_is_unit_and_minimises_at_the_thomson_height():
    from scipy.optimize import minimize_scalar

    x = sphere.square_antiprism(0.5)
    assert x.shape == (8, 3) and x.dtype == torch.float64
    assert torch.allclose(x.norm(dim=1), torch.ones(8, dtype=torch.float64))
    assert torch.allclose(x[::2, 2], torch.full((4,), 0.5, dtype=torch.float64))
    best = minimize_scalar(
        lambda h: sphere.coulomb_sum(sphere.square_antiprism(h)),
        bounds=(0.1, 0.9),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert abs(best.fun - THOMSON_ENERGIES[8]) < 1e-6
    with pytest.raises(ValueError):
        sphere.square_antiprism(1.0)


@pytest.mark.parametrize("name", ["infonce", "dcl", "dhel"])
def test_aligned_energy_is_the_loss_of_aligned_views(name):
    loss = {"infonce": losses.infonce_loss, "dcl": losses.dcl_loss}.get(
        name, losses.dhel_loss
    )
    x = uniform_sphere(7, 4, torch.Generator().manual_seed(0), restarts=3)
    for tau in (0.2, 1.0):
        closed = sphere.aligned_energy(name.upper(), tau)(x)
        assert torch.allclose(closed, sphere.aligned_loss_energy(loss, tau=tau)(x))
    with pytest.raises(ValueError, match="knows"):
        sphere.aligned_energy("kcl", 0.5)


def test_symmetric_pair_loss_averages_both_anchor_views():
    g = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(2, 8, 3, generator=g, dtype=torch.float64), dim=-1)
    sym = sphere.symmetric_pair_loss("dhel", 4, tau=0.3)(x)
    u, v = x[:, :4], x[:, 4:]
    uv = sphere.batched_loss("dhel", u, v, tau=0.3)
    vu = sphere.batched_loss("dhel", v, u, tau=0.3)
    assert sym.shape == (2,) and torch.allclose(sym, (uv + vu) / 2)
    assert not torch.allclose(uv, vu)  # DHEL is not symmetric in its views
    with pytest.raises(ValueError, match="rows"):
        sphere.symmetric_pair_loss("dhel", 3)(x)


def test_inner_product_counts_fingerprint():
    tetra = regular_simplex(4, 3)
    assert sphere.inner_product_counts(tetra) == {-0.333: 6}
    assert sphere.inner_product_counts(_scramble(octahedron())) == {-1.0: 3, 0.0: 12}


def test_five_point_shapes():
    assert sphere.five_point_shape(_scramble(bipyramid(3))) == "bipyramid"
    h = 0.2  # a square at height -h and the north pole: a square pyramid
    r = math.sqrt(1 - h * h)
    square = [[r, 0, -h], [0, r, -h], [-r, 0, -h], [0, -r, -h]]
    pyramid = torch.tensor([[0.0, 0.0, 1.0], *square], dtype=torch.float64)
    assert sphere.is_square_pyramid(_scramble(pyramid))
    assert sphere.five_point_shape(pyramid) == "square pyramid"
    rect = pyramid.clone()
    rect[1:, 0] *= 0.9  # a rhombus, not a square
    rect = F.normalize(rect, dim=1)
    assert sphere.five_point_shape(rect) == "other"
    with pytest.raises(ValueError):
        sphere.is_square_pyramid(pyramid[:4])


def test_kcl_class_level_run_collapses_classes_under_a_weak_energy():
    """Chapter 5's class-level run: a weak energy (small gamma) lets class-mates meet;
    a strong one spreads them and makes the points more uniform."""
    weak = sphere.kcl_class_level_run(0.25, 2.0, seed=0)
    strong = sphere.kcl_class_level_run(16.0, 2.0, seed=0)
    assert weak[0] < 0.01 < 0.5 < strong[0]
    assert strong[1] < weak[1] - 0.2
    assert weak[2].shape == (32, 4) and weak[3].shape == (32,)
    al, un = sphere.kcl_tradeoff(0.25, 2.0, seeds=(0,))
    assert (al, un) == pytest.approx(weak[:2])
