"""Tests for cl_lib.experiments.hem_experiments (free-point experiments of chapters 4 and 5).

The helpers take any loss callable, so the tests use tiny self-contained losses.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from cl_lib.experiments import hem_experiments as hem


def _simplex(m: int) -> torch.Tensor:
    """Regular simplex of m points in R^m (centred standard basis, normalised)."""
    e = torch.eye(m, dtype=torch.float64)
    return F.normalize(e - e.mean(0), dim=1)


def _align_energy_loss(z1, z2, t=2.0):
    """-alignment + Gaussian energy of z1: views talk only through the alignment term."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    return -(z1 * z2).sum(1).mean() + torch.exp(-t * torch.pdist(z1).pow(2)).mean()


def _coupled_loss(z1, z2, tau=0.5):
    """InfoNCE with one view: the positive sits in the denominator."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    return F.cross_entropy(z1 @ z2.T / tau, torch.arange(z1.shape[0]))


def test_sorted_gram_gap_invariances():
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    assert hem.sorted_gram_gap(x[torch.randperm(6, generator=g)] @ q, x) < 1e-12
    assert hem.sorted_gram_gap(_simplex(6), x) > 0.1
    with pytest.raises(ValueError):
        hem.sorted_gram_gap(x, x[:5])


def test_optimise_free_points_finds_simplex_and_aligns():
    g = torch.Generator().manual_seed(1)
    u0, v0 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    trace = hem.optimise_free_points(_align_energy_loss, u0, v0, steps=400, lr=0.05,
                                     target=_simplex(4))
    assert len(trace["loss"]) == len(trace["gap"]) == 400
    assert trace["alignment"][-1] < 1e-3 and trace["gap"][-1] < 1e-2
    assert torch.allclose(trace["u"].norm(dim=1), torch.ones(4))
    with pytest.raises(ValueError):
        hem.optimise_free_points(_align_energy_loss, u0, v0[:3], steps=1)
    with pytest.raises(ValueError):
        hem.optimise_free_points(_align_energy_loss, u0, v0, steps=1, optimizer="lbfgs")


def test_steps_to_tolerance():
    assert hem.steps_to_tolerance([3, 0.5, 2, 0.1, 0.05], tol=1.0) == 3
    assert hem.steps_to_tolerance([0.1, 0.2], tol=1.0) == 0
    assert hem.steps_to_tolerance([0.1, float("nan")], tol=1.0) is None
    with pytest.raises(ValueError):
        hem.steps_to_tolerance([1.0], tol=0)


def test_cross_hessian_blocks_decoupled_vs_coupled():
    g = torch.Generator().manual_seed(2)
    u = F.normalize(torch.randn(5, 3, generator=g), dim=1)
    v = F.normalize(torch.randn(5, 3, generator=g), dim=1)
    off = ~torch.eye(5, dtype=torch.bool)
    h = hem.cross_hessian_blocks(_align_energy_loss, u, v)
    assert h.shape == (5, 5, 3, 3)
    assert h[off].abs().max() < 1e-12          # v_i steers only u_i
    assert h[~off].abs().max() > 1e-3
    assert hem.cross_hessian_blocks(_coupled_loss, u, v)[off].abs().max() > 1e-3


def test_noisy_cap_pairs_and_monte_carlo():
    g = torch.Generator().manual_seed(3)
    u, v = hem.noisy_cap_pairs(2000, 5, generator=g)
    assert torch.allclose(u.norm(dim=1), torch.ones(2000), atol=1e-5)
    assert u[:, 0].mean() > 0.5                 # non-uniform: concentrated around e_1
    assert (u * v).sum(1).mean() > 0.8          # noisy but related positives
    mean, se = hem.monte_carlo_loss(lambda a, b: (a * b).sum(1).mean(), 64, 50, 5,
                                    torch.Generator().manual_seed(4))
    assert 0 < se < 0.01 and abs(mean - float((u * v).sum(1).mean())) < 5 * se + 0.01
    with pytest.raises(ValueError):
        hem.noisy_cap_pairs(10, 1)
    with pytest.raises(ValueError):
        hem.monte_carlo_loss(lambda a, b: a.sum(), 1, 5, 3, g)


def test_optimise_class_points_tradeoff():
    def kcl_like(gamma):
        return lambda z1, z2: (-torch.exp(-2 * (z1 - z2).pow(2).sum(1)).mean()
                               + gamma * torch.exp(-2 * torch.pdist(z1).pow(2)).mean())
    small = hem.optimise_class_points(kcl_like(0.1), 4, 4, 3, steps=150, seed=0)
    large = hem.optimise_class_points(kcl_like(10.0), 4, 4, 3, steps=150, seed=0)
    assert small["u"].shape == (16, 3) and small["labels"].tolist()[:5] == [0, 0, 0, 0, 1]
    assert small["alignment"] < large["alignment"]      # weak energy: classes collapse
    assert large["uniformity"] < small["uniformity"]    # strong energy: spread out
    assert math.isfinite(small["uniformity"])
    with pytest.raises(ValueError):
        hem.optimise_class_points(kcl_like(1.0), 2, 1, 3, steps=1)


def test_energy_part_gradient():
    g = torch.Generator().manual_seed(5)
    u = F.normalize(torch.randn(6, 3, generator=g), dim=1)
    v1, v2 = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)

    def decoupled(z1, z2, tau=0.5):  # DHEL: alignment + log-sum-exp energy of z1 only
        a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        e = (a @ a.T / tau).masked_fill(torch.eye(6, dtype=torch.bool), float("-inf"))
        return (-(a * b).sum(1) / tau + torch.logsumexp(e, 1)).mean()

    d1 = hem.energy_part_gradient(decoupled, u, v1, 0.5)
    assert torch.allclose(d1, hem.energy_part_gradient(decoupled, u, v2, 0.5), atol=1e-12)
    c1 = hem.energy_part_gradient(_coupled_loss, u, v1, 0.5)
    assert (c1 - hem.energy_part_gradient(_coupled_loss, u, v2, 0.5)).abs().max() > 1e-3
    with pytest.raises(ValueError):
        hem.energy_part_gradient(decoupled, u, v1, 0.0)
