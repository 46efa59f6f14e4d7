"""Tests of cl_lib.losses.

Every loss is compared with an independent, deliberately naive float64 reference written
with plain Python loops over i and j (no masks, no logsumexp, no matrix products), on
random inputs for several (N, d, tau). Then: gradcheck, invariances, bad-input errors,
bf16, CUDA, CLOA specifics, the registry.
"""

from __future__ import annotations

import math

import pytest
import torch

from cl_lib import losses as L

# --------------------------------------------------------------------------------------
# Naive references (float64, Python loops)
# --------------------------------------------------------------------------------------


def _rows(z: torch.Tensor) -> list[list[float]]:
    return z.detach().to(torch.float64).tolist()


def _unit(z: torch.Tensor) -> list[list[float]]:
    out = []
    for row in _rows(z):
        norm = math.sqrt(sum(x * x for x in row))
        out.append([x / norm for x in row])
    return out


def _dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))


def _sqdist(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b))


def ref_infonce(z1, z2, tau):
    w = _unit(z1) + _unit(z2)
    n2 = len(w)
    total = 0.0
    for a in range(n2):
        p = (a + n2 // 2) % n2
        den = sum(math.exp(_dot(w[a], w[b]) / tau) for b in range(n2) if b != a)
        total += -math.log(math.exp(_dot(w[a], w[p]) / tau) / den)
    return total / n2


def ref_dcl(z1, z2, tau):
    w = _unit(z1) + _unit(z2)
    n2 = len(w)
    total = 0.0
    for a in range(n2):
        p = (a + n2 // 2) % n2
        den = sum(
            math.exp(_dot(w[a], w[b]) / tau) for b in range(n2) if b not in (a, p)
        )
        total += -_dot(w[a], w[p]) / tau + math.log(den)
    return total / n2


def ref_dhel(z1, z2, tau, both_views=False):
    u, v = _unit(z1), _unit(z2)
    n = len(u)
    total = 0.0
    for i in range(n):
        total += -_dot(u[i], v[i]) / tau
        total += math.log(
            sum(math.exp(_dot(u[i], u[j]) / tau) for j in range(n) if j != i)
        )
        if both_views:
            total += math.log(
                sum(math.exp(_dot(v[i], v[j]) / tau) for j in range(n) if j != i)
            )
    return total / n


def _ref_kernel(kernel, param, r):
    if kernel == "gaussian":
        return math.exp(-param * r)
    if kernel == "log":
        return -math.log(1 + param * r)
    if kernel == "imq":
        return param / math.sqrt(param**2 + r)
    if kernel == "riesz":
        dist = math.sqrt(r)
        return dist ** (-param) if param > 0 else -(dist ** (-param))
    raise AssertionError(kernel)


def ref_kcl(z1, z2, kernel, param, gamma):
    u, v = _unit(z1), _unit(z2)
    n = len(u)
    align = sum(_ref_kernel(kernel, param, _sqdist(u[i], v[i])) for i in range(n)) / n
    energy = 0.0
    for x in (u, v):
        energy += sum(
            _ref_kernel(kernel, param, _sqdist(x[i], x[j]))
            for i in range(n)
            for j in range(n)
            if i != j
        ) / (n * (n - 1))
    return -2 * align + gamma * energy


def ref_cloa(z, labels, anchors):
    u, c = _unit(z), _unit(anchors)
    total, count = 0.0, 0
    for i, y in enumerate(labels.tolist()):
        if y >= 0:
            total += 1 - _dot(u[i], c[y])
            count += 1
    return total / count if count else 0.0


def ref_vicreg(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    x, y = _rows(z1), _rows(z2)
    n, d = len(x), len(x[0])
    inv = sum((x[i][k] - y[i][k]) ** 2 for i in range(n) for k in range(d)) / (n * d)

    def stats(a):
        mean = [sum(a[i][k] for i in range(n)) / n for k in range(d)]
        cov = [
            [
                sum((a[i][k] - mean[k]) * (a[i][l] - mean[l]) for i in range(n))
                / (n - 1)
                for l in range(d)
            ]
            for k in range(d)
        ]
        var_term = sum(max(0.0, 1 - math.sqrt(cov[k][k] + 1e-4)) for k in range(d)) / d
        cov_term = sum(cov[k][l] ** 2 for k in range(d) for l in range(d) if k != l) / d
        return var_term, cov_term

    (vx, cx), (vy, cy) = stats(x), stats(y)
    return sim_coeff * inv + std_coeff * (vx + vy) / 2 + cov_coeff * (cx + cy)


def ref_barlow(z1, z2, lambd=5e-3):
    x, y = _rows(z1), _rows(z2)
    n, d = len(x), len(x[0])

    def standardise(a):
        cols = []
        for k in range(d):
            col = [a[i][k] for i in range(n)]
            mean = sum(col) / n
            std = math.sqrt(sum((c - mean) ** 2 for c in col) / n + 1e-5)
            cols.append([(c - mean) / std for c in col])
        return cols  # cols[k][i]

    xs, ys = standardise(x), standardise(y)
    total = 0.0
    for k in range(d):
        for l in range(d):
            c = sum(xs[k][i] * ys[l][i] for i in range(n)) / n
            total += (1 - c) ** 2 if k == l else lambd * c**2
    return total


def ref_supcon(z1, z2, labels, tau):
    w = _unit(z1) + _unit(z2)
    y = labels.tolist() * 2
    n2 = len(w)
    total = 0.0
    for a in range(n2):
        den = sum(math.exp(_dot(w[a], w[b]) / tau) for b in range(n2) if b != a)
        positives = [p for p in range(n2) if p != a and y[p] == y[a]]
        total += -sum(
            math.log(math.exp(_dot(w[a], w[p]) / tau) / den) for p in positives
        ) / len(positives)
    return total / n2


def ref_nscl(z1, z2, labels, tau, decoupled=False):
    w = _unit(z1) + _unit(z2)
    y = labels.tolist() * 2
    n2 = len(w)
    total = 0.0
    for a in range(n2):
        p = (a + n2 // 2) % n2
        pos = math.exp(_dot(w[a], w[p]) / tau)
        den = (0.0 if decoupled else pos) + sum(
            math.exp(_dot(w[a], w[b]) / tau) for b in range(n2) if y[b] != y[a]
        )
        total += -math.log(pos / den)
    return total / n2


# --------------------------------------------------------------------------------------
# Cases: name -> (library call, reference call), both f(z1, z2, labels, tau)
# --------------------------------------------------------------------------------------

ANCHOR_SEED = 3


def _anchors(d, c=3):
    return L.make_anchors(c, d, seed=ANCHOR_SEED).to(torch.float64)


CASES = {
    "infonce": (
        lambda a, b, y, t: L.infonce_loss(a, b, tau=t),
        lambda a, b, y, t: ref_infonce(a, b, t),
    ),
    "dcl": (
        lambda a, b, y, t: L.dcl_loss(a, b, tau=t),
        lambda a, b, y, t: ref_dcl(a, b, t),
    ),
    "dhel": (
        lambda a, b, y, t: L.dhel_loss(a, b, tau=t),
        lambda a, b, y, t: ref_dhel(a, b, t),
    ),
    "dhel_both": (
        lambda a, b, y, t: L.dhel_loss(a, b, tau=t, both_views=True),
        lambda a, b, y, t: ref_dhel(a, b, t, both_views=True),
    ),
    "kcl_gaussian": (
        lambda a, b, y, t: L.kcl_loss(a, b, kernel="gaussian", gamma=3.0, t=1 / t),
        lambda a, b, y, t: ref_kcl(a, b, "gaussian", 1 / t, 3.0),
    ),
    "kcl_log": (
        lambda a, b, y, t: L.kcl_loss(a, b, kernel="log", gamma=2.0, t=1 / t),
        lambda a, b, y, t: ref_kcl(a, b, "log", 1 / t, 2.0),
    ),
    "kcl_imq": (
        lambda a, b, y, t: L.kcl_loss(a, b, kernel="imq", c=2 * t),
        lambda a, b, y, t: ref_kcl(a, b, "imq", 2 * t, 16.0),
    ),
    "kcl_riesz_neg": (
        lambda a, b, y, t: L.kcl_loss(a, b, kernel="riesz", s=-t),
        lambda a, b, y, t: ref_kcl(a, b, "riesz", -t, 16.0),
    ),
    "kcl_riesz_pos": (
        lambda a, b, y, t: L.kcl_loss(a, b, kernel="riesz", s=t, gamma=0.5),
        lambda a, b, y, t: ref_kcl(a, b, "riesz", t, 0.5),
    ),
    "cloa_anchor_term": (
        lambda a, b, y, t: L.cloa_anchor_term(a, y, _anchors(a.shape[1])),
        lambda a, b, y, t: ref_cloa(a, y, _anchors(a.shape[1])),
    ),
    "cloa": (
        lambda a, b, y, t: L.cloa_loss(
            a, b, y, anchors=_anchors(a.shape[1]), weight=0.7, tau=t
        ),
        lambda a, b, y, t: ref_infonce(a, b, t)
        + 0.7 * ref_cloa(torch.cat([a, b]), torch.cat([y, y]), _anchors(a.shape[1])),
    ),
    "cloa_num_classes": (
        lambda a, b, y, t: L.cloa_loss(
            a, b, y, num_classes=3, seed=ANCHOR_SEED, base="dcl", tau=t
        ),
        lambda a, b, y, t: ref_dcl(a, b, t)
        + ref_cloa(torch.cat([a, b]), torch.cat([y, y]), _anchors(a.shape[1])),
    ),
    "vicreg": (
        lambda a, b, y, t: L.vicreg_loss(a, b),
        lambda a, b, y, t: ref_vicreg(a, b),
    ),
    "vicreg_coeffs": (
        lambda a, b, y, t: L.vicreg_loss(
            a, b, sim_coeff=1.0, std_coeff=t, cov_coeff=3.0
        ),
        lambda a, b, y, t: ref_vicreg(a, b, 1.0, t, 3.0),
    ),
    "barlow_twins": (
        lambda a, b, y, t: L.barlow_twins_loss(a, b),
        lambda a, b, y, t: ref_barlow(a, b),
    ),
    "barlow_twins_lambd": (
        lambda a, b, y, t: L.barlow_twins_loss(a, b, lambd=t),
        lambda a, b, y, t: ref_barlow(a, b, t),
    ),
    "supcon": (
        lambda a, b, y, t: L.supcon_loss(a, b, y, tau=t),
        lambda a, b, y, t: ref_supcon(a, b, y, t),
    ),
    "nscl": (
        lambda a, b, y, t: L.nscl_loss(a, b, y, tau=t),
        lambda a, b, y, t: ref_nscl(a, b, y, t),
    ),
    "nscl_decoupled": (
        lambda a, b, y, t: L.nscl_loss(a, b, _two_classes(y), tau=t, decoupled=True),
        lambda a, b, y, t: ref_nscl(a, b, _two_classes(y), t, decoupled=True),
    ),
}


def _two_classes(y):
    """Labels with at least two classes (decoupled NSCL needs a non-empty denominator);
    unchanged unless all labels are equal, so batch permutations commute with it."""
    return y if bool((y != y[0]).any()) else y ^ (torch.arange(len(y)) % 2)


# losses that take labels >= 0 only (CLOA accepts -1 = unlabelled)
NONNEGATIVE_LABELS = {"supcon", "nscl", "nscl_decoupled"}
# sphere losses: invariant to a common rotation of both views (and to row scaling)
ROTATION_INVARIANT = [
    "infonce",
    "dcl",
    "dhel",
    "dhel_both",
    "kcl_gaussian",
    "kcl_log",
    "kcl_imq",
    "kcl_riesz_neg",
    "kcl_riesz_pos",
    "supcon",
    "nscl",
    "nscl_decoupled",
]


def _inputs(n, d, seed, dtype=torch.float64, case=""):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=dtype)
    z2 = z1 + 0.7 * torch.randn(
        n, d, generator=g, dtype=dtype
    )  # correlated views, like augmentations
    low = 0 if case in NONNEGATIVE_LABELS else -1
    labels = torch.randint(low, 3, (n,), generator=g)
    return z1, z2, labels


SIZES = [(2, 3, 0.5), (5, 4, 0.1), (8, 6, 1.0), (6, 2, 0.3)]


@pytest.mark.parametrize("n,d,tau", SIZES)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_naive_reference(case, n, d, tau):
    fn, ref = CASES[case]
    for seed in range(2):
        z1, z2, y = _inputs(n, d, seed=100 * n + seed, case=case)
        if case.startswith("cloa") and d < 3:
            pytest.skip("3 orthonormal anchors need d >= 3")
        got = fn(z1, z2, y, tau)
        assert got.dim() == 0 and got.dtype == torch.float64
        assert got.item() == pytest.approx(ref(z1, z2, y, tau), rel=1e-9, abs=1e-10)


@pytest.mark.parametrize("case", list(CASES))
def test_gradcheck(case):
    fn, _ = CASES[case]
    z1, z2, y = _inputs(4, 3, seed=5, case=case)
    z1.requires_grad_()
    z2.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: fn(a, b, y, 0.5), (z1, z2), eps=1e-6, atol=1e-5
    )


# the losses that take a leading dimension of independent batches, (R, N, d) -> (R,)
BATCHED = ["infonce", "dcl", "dhel", "dhel_both", "kcl_gaussian", "kcl_log", "kcl_imq"]


@pytest.mark.parametrize("case", BATCHED)
def test_batched_views_give_one_loss_per_batch(case):
    """(R, N, d) views: exactly the loss of each batch on its own, gradients too; the
    free-point chapters minimise many restarts in one call through this."""
    fn, ref = CASES[case]
    g = torch.Generator().manual_seed(9)
    z1 = torch.randn(3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    got = fn(z1, z2, None, 0.3)
    each = torch.stack([fn(a, b, None, 0.3) for a, b in zip(z1, z2)])
    assert got.shape == (3,) and torch.allclose(got, each, rtol=0, atol=1e-14)
    assert got[1].item() == pytest.approx(ref(z1[1], z2[1], None, 0.3), rel=1e-9)
    grads = torch.autograd.grad(got.sum(), (z1, z2))
    each_grads = torch.autograd.grad(each.sum(), (z1, z2))
    assert all(torch.allclose(a, b, atol=1e-14) for a, b in zip(grads, each_grads))


def test_batched_views_are_checked():
    x = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="N >= 2"):
        L.infonce_loss(x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="same shape"):
        L.dhel_loss(x, x[:1])
    with pytest.raises(ValueError, match="2-D"):  # labelled losses: one batch only
        L.supcon_loss(x, x, torch.zeros(4, dtype=torch.long))


# --------------------------------------------------------------------------------------
# Invariances
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_batch_permutation_invariance(case):
    """Reordering the batch (same permutation of both views and the labels) changes
    nothing: every loss is a mean over anchors of a function of the set of other
    samples."""
    fn, _ = CASES[case]
    z1, z2, y = _inputs(7, 5, seed=11, case=case)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(1))
    assert fn(z1[perm], z2[perm], y[perm], 0.4).item() == pytest.approx(
        fn(z1, z2, y, 0.4).item(), rel=1e-12
    )


def _random_orthogonal(d, seed):
    q, r = torch.linalg.qr(
        torch.randn(
            d, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
        )
    )
    return q * torch.sign(torch.diagonal(r))


@pytest.mark.parametrize("case", ROTATION_INVARIANT)
def test_rotation_and_scale_invariance(case):
    """Sphere losses depend only on inner products of normalised rows: a common
    orthogonal map of both views, and a positive rescaling of each row, leave them
    unchanged."""
    fn, _ = CASES[case]
    z1, z2, y = _inputs(6, 5, seed=12, case=case)
    q = _random_orthogonal(5, seed=2)
    base = fn(z1, z2, y, 0.4).item()
    assert fn(z1 @ q, z2 @ q, y, 0.4).item() == pytest.approx(base, rel=1e-10)
    scale = (
        torch.rand(
            6, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
        )
        + 0.5
    )
    assert fn(z1 * scale, z2 * 2 * scale, y, 0.4).item() == pytest.approx(
        base, rel=1e-10
    )


def test_cloa_rotation_invariant_when_anchors_rotate_too():
    z, z2, y = _inputs(8, 5, seed=13)
    anchors, q = _anchors(5), _random_orthogonal(5, seed=4)
    assert L.cloa_anchor_term(z @ q, y, anchors @ q).item() == pytest.approx(
        L.cloa_anchor_term(z, y, anchors).item(), rel=1e-12
    )
    assert L.cloa_loss(z @ q, z2 @ q, y, anchors=anchors @ q).item() == pytest.approx(
        L.cloa_loss(z, z2, y, anchors=anchors).item(), rel=1e-12
    )


def test_cloa_anchor_only_is_the_anchor_term_on_both_views():
    # base="none": the control that trains on the labelled samples' anchors alone
    z, z2, y = _inputs(8, 5, seed=14)
    y = torch.where(torch.arange(8) % 3 == 0, -1, y)  # some unlabelled samples
    anchors = _anchors(5)
    got = L.cloa_loss(z, z2, y, anchors=anchors, base="none", weight=0.7)
    want = 0.7 * ref_cloa(torch.cat([z, z2]), torch.cat([y, y]), anchors)
    assert got.item() == pytest.approx(float(want), rel=1e-12)
    # unlabelled samples get no gradient: nothing pulls them anywhere
    z = z.clone().requires_grad_(True)
    L.cloa_loss(z, z2, y, anchors=anchors, base="none").backward()
    assert torch.all(z.grad[y < 0] == 0) and torch.any(z.grad[y >= 0] != 0)


@pytest.mark.parametrize("case", ["vicreg", "barlow_twins"])
def test_vicreg_barlow_invariances(case):
    """VICReg and Barlow Twins act on per-dimension (coordinate-wise) batch statistics
    -- the variance of each feature, the (cross-)covariance/correlation matrix entries
    -- so they are NOT rotation invariant: a generic rotation mixes coordinates and
    changes the off-diagonal terms. What holds is invariance under a common *signed
    permutation* of the coordinates (relabelling features and flipping their signs; both
    views together) and under a common translation of both views (all terms are centred;
    VICReg's invariance term sees only z1-z2).
    """
    fn, _ = CASES[case]
    z1, z2, y = _inputs(10, 4, seed=14, case=case)
    base = fn(z1, z2, y, 0.1).item()
    signed_perm = torch.eye(4, dtype=torch.float64)[[2, 0, 3, 1]] * torch.tensor(
        [1.0, -1.0, -1.0, 1.0], dtype=torch.float64
    )
    assert fn(z1 @ signed_perm, z2 @ signed_perm, y, 0.1).item() == pytest.approx(
        base, rel=1e-10
    )
    shift = torch.randn(4, dtype=torch.float64)
    assert fn(z1 + shift, z2 + shift, y, 0.1).item() == pytest.approx(base, rel=1e-10)
    q = _random_orthogonal(4, seed=5)
    assert abs(fn(z1 @ q, z2 @ q, y, 0.1).item() - base) > 1e-3 * abs(
        base
    )  # documented: not invariant


# --------------------------------------------------------------------------------------
# Relations between losses and with the authors' code
# --------------------------------------------------------------------------------------


def test_distinct_labels_reduce_supcon_and_nscl_to_infonce():
    z1, z2, _ = _inputs(6, 4, seed=15)
    distinct = torch.arange(6)
    base = L.infonce_loss(z1, z2, tau=0.3)
    assert torch.allclose(L.nscl_loss(z1, z2, distinct, tau=0.3), base)
    assert torch.allclose(L.supcon_loss(z1, z2, distinct, tau=0.3), base)


def test_decoupled_nscl_with_distinct_labels_is_dcl():
    z1, z2, _ = _inputs(6, 4, seed=27)
    assert torch.allclose(
        L.nscl_loss(z1, z2, torch.arange(6), tau=0.3, decoupled=True),
        L.dcl_loss(z1, z2, tau=0.3),
    )
    assert L.nscl_loss(
        z1, z2, torch.tensor([0, 0, 1, 1, 2, 2]), decoupled=True
    ) < L.nscl_loss(z1, z2, torch.tensor([0, 0, 1, 1, 2, 2]))


def test_nscl_not_above_infonce():
    """Dropping same-class terms from the denominator can only lower each term."""
    z1, z2, y = _inputs(9, 4, seed=16, case="nscl")
    assert L.nscl_loss(z1, z2, y, tau=0.5) <= L.infonce_loss(z1, z2, tau=0.5)


def test_dcl_below_infonce_and_dhel_asymmetric():
    z1, z2, _ = _inputs(6, 4, seed=17)
    assert L.dcl_loss(z1, z2) < L.infonce_loss(z1, z2)
    assert not torch.allclose(L.dhel_loss(z1, z2), L.dhel_loss(z2, z1))
    assert torch.allclose(
        L.dhel_loss(z1, z2, both_views=True), L.dhel_loss(z2, z1, both_views=True)
    )


def test_dhel_and_kcl_match_the_authors_formulation():
    """Re-expresses the computation of github.com/pakoromilas/DHEL-KCL
    losses.py/utils.py (product of the two views' denominators; pdist-based Gaussian
    energy, mean over i < j)."""
    z1, z2, _ = _inputs(7, 5, seed=18)
    u, v = torch.nn.functional.normalize(z1, dim=1), torch.nn.functional.normalize(
        z2, dim=1
    )
    tau, mask = 0.3, torch.eye(7, dtype=torch.bool)
    sim_u = torch.exp(u @ u.T / tau).masked_fill(mask, 0)
    sim_v = torch.exp(v @ v.T / tau).masked_fill(mask, 0)
    pos = torch.exp((u * v).sum(1) / tau)
    authors_dhel = -torch.log(pos / (sim_u.sum(-1) * sim_v.sum(-1))).mean()
    assert torch.allclose(L.dhel_loss(z1, z2, tau=tau, both_views=True), authors_dhel)
    t, gamma = 2.0, 16.0
    energy = (
        torch.pdist(u).pow(2).mul(-t).exp().mean()
        + torch.pdist(v).pow(2).mul(-t).exp().mean()
    )
    alignment = 2 * (u - v).norm(dim=1).pow(2).mul(-t).exp().mean()
    assert torch.allclose(
        L.kcl_loss(z1, z2, kernel="gaussian", gamma=gamma, t=t),
        -alignment + gamma * energy,
    )
    # their log kernel: -0.5 log(1 + t r) in the energy, -log(1 + t r) in the alignment,
    # i.e. this library's single-kernel loss with gamma / 2 (documented deviation)
    energy = (
        -0.5 * torch.log(t * torch.pdist(u).pow(2) + 1).mean()
        - 0.5 * torch.log(t * torch.pdist(v).pow(2) + 1).mean()
    )
    alignment = 2 * -torch.log(t * (u - v).norm(dim=1).pow(2) + 1).mean()
    assert torch.allclose(
        L.kcl_loss(z1, z2, kernel="log", gamma=gamma / 2, t=t),
        -alignment + gamma * energy,
    )
    # their IMQ kernel c / sqrt(c^2 + r) and Riesz s < 0 kernel -||x - y||^{|s|}
    energy = sum((2.0 / (4.0 + torch.pdist(x).pow(2)).sqrt()).mean() for x in (u, v))
    alignment = 2 * (2.0 / (4.0 + (u - v).norm(dim=1).pow(2)).sqrt()).mean()
    assert torch.allclose(
        L.kcl_loss(z1, z2, kernel="imq", gamma=gamma, c=2.0),
        -alignment + gamma * energy,
    )
    energy = sum(-torch.pdist(x).pow(1.5).mean() for x in (u, v))
    alignment = 2 * -(u - v).norm(dim=1).pow(1.5).mean()
    assert torch.allclose(
        L.kcl_loss(z1, z2, kernel="riesz", gamma=gamma, s=-1.5),
        -alignment + gamma * energy,
    )


def test_nscl_matches_the_authors_formulation():
    """Re-expresses WeakNTXentLoss of github.com/DLFundamentals/understanding-ssl
    (utils/losses.py): cross-entropy with target 0 over the logits [positive, samples of
    another class]."""
    z1, z2, y = _inputs(8, 5, seed=28, case="nscl")
    tau = 0.5
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    labels = torch.cat([y, y])
    sim = z @ z.T / tau
    positive = torch.cat([torch.diag(sim, 8), torch.diag(sim, -8)]).reshape(16, 1)
    negatives = sim.masked_fill(labels[:, None] == labels[None, :], float("-inf"))
    logits = torch.cat([positive, negatives], dim=1)
    authors = torch.nn.functional.cross_entropy(
        logits, torch.zeros(16, dtype=torch.long)
    )
    assert torch.allclose(L.nscl_loss(z1, z2, y, tau=tau), authors)


def test_kcl_riesz_negative_s_has_finite_gradient_at_perfect_alignment():
    z = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    loss = L.kcl_loss(z, z, kernel="riesz", s=-1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_default_hyperparameters():
    z1, z2, y = _inputs(5, 4, seed=19, case="supcon")
    assert torch.allclose(L.infonce_loss(z1, z2), L.infonce_loss(z1, z2, tau=0.5))
    assert torch.allclose(
        L.kcl_loss(z1, z2), L.kcl_loss(z1, z2, kernel="gaussian", gamma=16.0, t=2.0)
    )
    assert torch.allclose(
        L.kcl_loss(z1, z2, kernel="riesz"), L.kcl_loss(z1, z2, kernel="riesz", s=-1.0)
    )
    assert torch.allclose(L.supcon_loss(z1, z2, y), L.supcon_loss(z1, z2, y, tau=0.1))


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------

_Z = torch.randn(4, 3)
_Y = torch.tensor([0, 1, 0, 1])
_A = L.make_anchors(2, 3)
BAD_CALLS = {
    "z1 not 2-D": (lambda: L.infonce_loss(torch.randn(4), torch.randn(4)), "2-D"),
    "z2 3-D": (lambda: L.dcl_loss(_Z, torch.randn(4, 3, 1)), "same shape"),
    "shape mismatch": (lambda: L.dhel_loss(_Z, torch.randn(5, 3)), "same shape"),
    "dim mismatch": (lambda: L.kcl_loss(_Z, torch.randn(4, 2)), "same shape"),
    "N < 2": (lambda: L.infonce_loss(torch.randn(1, 3), torch.randn(1, 3)), "N >= 2"),
    "NaN": (
        lambda: L.vicreg_loss(
            _Z, _Z.clone().index_fill_(0, torch.tensor([1]), float("nan"))
        ),
        "NaN or Inf",
    ),
    "Inf": (
        lambda: L.barlow_twins_loss(
            _Z.clone().index_fill_(1, torch.tensor([0]), float("inf")), _Z
        ),
        "NaN",
    ),
    "integer z": (
        lambda: L.infonce_loss(torch.ones(4, 3, dtype=torch.long), _Z),
        "floating",
    ),
    "not a tensor": (lambda: L.infonce_loss([[1.0, 2.0]], _Z), "torch.Tensor"),
    "tau = 0": (lambda: L.infonce_loss(_Z, _Z, tau=0.0), "tau"),
    "tau < 0": (lambda: L.supcon_loss(_Z, _Z, _Y, tau=-1.0), "tau"),
    "tau nan": (lambda: L.nscl_loss(_Z, _Z, _Y, tau=float("nan")), "tau"),
    "tau string": (lambda: L.dcl_loss(_Z, _Z, tau="x"), "tau"),
    "unknown kernel": (lambda: L.kcl_loss(_Z, _Z, kernel="laplace"), "unknown kernel"),
    "bad kernel param name": (
        lambda: L.kcl_loss(_Z, _Z, kernel="imq", t=1.0),
        "only the parameter",
    ),
    "gaussian t <= 0": (
        lambda: L.kcl_loss(_Z, _Z, kernel="gaussian", t=0.0),
        "parameter t",
    ),
    "imq c < 0": (lambda: L.kcl_loss(_Z, _Z, kernel="imq", c=-2.0), "parameter c"),
    "riesz s = 0": (lambda: L.kcl_loss(_Z, _Z, kernel="riesz", s=0.0), "non-zero"),
    "negative gamma": (lambda: L.kcl_loss(_Z, _Z, gamma=-1.0), "gamma"),
    "labels missing supcon": (lambda: L.supcon_loss(_Z, _Z, None), "needs labels"),
    "labels missing nscl": (lambda: L.nscl_loss(_Z, _Z, None), "needs labels"),
    "labels missing cloa": (lambda: L.cloa_loss(_Z, _Z, anchors=_A), "needs labels"),
    "labels missing anchor term": (
        lambda: L.cloa_anchor_term(_Z, None, _A),
        "needs labels",
    ),
    "tau given by position": (lambda: L.infonce_loss(_Z, _Z, 0.5), "keyword arguments"),
    "labels wrong length, unused": (
        lambda: L.dcl_loss(_Z, _Z, torch.tensor([0, 1])),
        "length",
    ),
    "labels float, unused": (lambda: L.vicreg_loss(_Z, _Z, torch.ones(4)), "integer"),
    "both_views not a bool": (
        lambda: L.dhel_loss(_Z, _Z, both_views="yes"),
        "both_views",
    ),
    "labels missing registry cloa": (
        lambda: L.get_loss("cloa", anchors=_A)(_Z, _Z),
        "needs labels",
    ),
    "labels wrong length": (
        lambda: L.supcon_loss(_Z, _Z, torch.tensor([0, 1, 0])),
        "length",
    ),
    "labels float": (
        lambda: L.nscl_loss(_Z, _Z, torch.tensor([0.0, 1.0, 0.0, 1.0])),
        "integer",
    ),
    "labels bool": (
        lambda: L.nscl_loss(_Z, _Z, torch.tensor([True, False, True, False])),
        "integer",
    ),
    "labels 2-D": (lambda: L.supcon_loss(_Z, _Z, _Y.view(2, 2)), "1-D"),
    "decoupled nscl one class": (
        lambda: L.nscl_loss(_Z, _Z, torch.zeros(4, dtype=torch.long), decoupled=True),
        "2 different classes",
    ),
    "labels -1 in supcon": (
        lambda: L.supcon_loss(_Z, _Z, torch.tensor([0, -1, 0, 1])),
        ">= 0",
    ),
    "labels < -1 in cloa": (
        lambda: L.cloa_anchor_term(_Z, torch.tensor([0, -2, 0, 1]), _A),
        "-1",
    ),
    "label without anchor": (
        lambda: L.cloa_anchor_term(_Z, torch.tensor([0, 2, 0, 1]), _A),
        "no anchor",
    ),
    "label without anchor, cloa": (
        lambda: L.cloa_loss(_Z, _Z, torch.tensor([0, 2, 0, 1]), anchors=_A),
        "no anchor",
    ),
    "anchors wrong dim": (
        lambda: L.cloa_anchor_term(_Z, _Y, L.make_anchors(2, 4)),
        "anchors must be of shape",
    ),
    "anchors wrong dim, cloa": (
        lambda: L.cloa_loss(_Z, _Z, _Y, anchors=L.make_anchors(2, 4)),
        "anchors must be of shape",
    ),
    "anchors 1-D": (lambda: L.cloa_anchor_term(_Z, _Y, torch.ones(3)), "2-D"),
    "anchors and num_classes": (
        lambda: L.cloa_loss(_Z, _Z, _Y, anchors=_A, num_classes=2),
        "exactly one of",
    ),
    "too many classes": (lambda: L.make_anchors(5, 3), "num_classes <= dim"),
    "zero classes": (lambda: L.make_anchors(0, 3), "num_classes"),
    "negative weight": (
        lambda: L.cloa_loss(_Z, _Z, _Y, anchors=_A, weight=-1.0),
        "weight",
    ),
    "cloa base none with tau": (
        lambda: L.cloa_loss(_Z, _Z, _Y, anchors=_A, base="none", tau=0.5),
        "base='none'",
    ),
    "cloa base cloa": (
        lambda: L.cloa_loss(_Z, _Z, _Y, anchors=_A, base="cloa"),
        "base",
    ),
    "cloa base unknown": (
        lambda: L.get_loss("cloa", num_classes=2, base="simclr"),
        "base",
    ),
    "cloa base bad kwarg": (
        lambda: L.get_loss("cloa", num_classes=2, temperature=0.1),
        "hyper-parameters",
    ),
    "vicreg negative coeff": (
        lambda: L.vicreg_loss(_Z, _Z, cov_coeff=-1.0),
        "cov_coeff",
    ),
    "unknown loss": (lambda: L.get_loss("simclr"), "unknown loss"),
    "misspelt kwarg": (
        lambda: L.get_loss("infonce", temperature=0.5),
        "hyper-parameters",
    ),
    "registry tau checked early": (lambda: L.get_loss("supcon", tau=0.0), "tau"),
    "registry kernel checked early": (
        lambda: L.get_loss("kcl", kernel="rbf"),
        "unknown kernel",
    ),
    "registry cloa no anchors": (lambda: L.get_loss("cloa"), "exactly one of"),
}


@pytest.mark.parametrize("what", list(BAD_CALLS))
def test_bad_input_raises_value_error(what):
    call, message = BAD_CALLS[what]
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------------
# Precision and devices
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_bf16_input_gives_float32_close_to_fp32(case):
    fn, _ = CASES[case]
    z1, z2, y = _inputs(8, 6, seed=21, dtype=torch.float32, case=case)
    full = fn(z1, z2, y, 0.5)
    low = fn(z1.bfloat16(), z2.bfloat16(), y, 0.5)
    assert (
        low.dtype == torch.float32
        and full.dtype == torch.float32
        and torch.isfinite(low)
    )
    # computed in float32 from the bf16 values: equal to the float32 loss of those ...
    rounded = fn(z1.bfloat16().float(), z2.bfloat16().float(), y, 0.5)
    assert torch.allclose(low, rounded, rtol=1e-6, atol=1e-6)
    # ... and close to the float32 loss of the unrounded inputs (bf16: ~3 digits)
    assert torch.allclose(low, full, rtol=3e-2, atol=3e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("case", list(CASES))
def test_cuda_matches_cpu(case):
    fn, _ = CASES[case]
    z1, z2, y = _inputs(16, 8, seed=22, dtype=torch.float32, case=case)
    cpu = fn(z1, z2, y, 0.5)
    gpu = fn(z1.cuda(), z2.cuda(), y.cuda(), 0.5)
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)
    low = fn(z1.cuda().bfloat16(), z2.cuda().bfloat16(), y.cuda(), 0.5)
    assert low.dtype == torch.float32 and torch.isfinite(low)


# --------------------------------------------------------------------------------------
# CLOA specifics
# --------------------------------------------------------------------------------------


def test_cloa_unlabelled_samples_contribute_nothing():
    z, _, _ = _inputs(6, 4, seed=23)
    anchors = _anchors(4)
    labels = torch.tensor([0, -1, 2, -1, 1, 0])
    z = z.clone().requires_grad_()
    loss = L.cloa_anchor_term(z, labels, anchors)
    loss.backward()
    assert torch.all(z.grad[labels == -1] == 0)
    moved = z.detach().clone()
    moved[labels == -1] = torch.randn(2, 4, dtype=torch.float64)
    assert L.cloa_anchor_term(moved, labels, anchors).item() == pytest.approx(
        loss.item(), rel=1e-12
    )
    labelled = labels >= 0
    assert loss.item() == pytest.approx(
        L.cloa_anchor_term(z.detach()[labelled], labels[labelled], anchors).item()
    )


def test_cloa_all_unlabelled_is_zero_with_grad():
    z = torch.randn(5, 4, requires_grad=True)
    loss = L.cloa_anchor_term(z, torch.full((5,), -1), L.make_anchors(3, 4))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.all(z.grad == 0)


def test_cloa_perfect_alignment_is_zero():
    anchors = L.make_anchors(4, 6, seed=1)
    labels = torch.tensor([3, 0, 1, 1, 2, 0, 3])
    scale = torch.rand(7, 1) + 0.1  # cosine ignores the norm
    z = anchors[labels] * scale
    assert L.cloa_anchor_term(z, labels, anchors).item() == pytest.approx(0.0, abs=1e-6)
    # antipodal: 1 - (-1)
    assert L.cloa_anchor_term(-z, labels, anchors).item() == pytest.approx(
        2.0, abs=1e-6
    )


def test_cloa_combined_is_base_plus_weighted_mean_over_both_views():
    z1, z2, _ = _inputs(6, 5, seed=24)
    labels, anchors = torch.tensor([0, -1, 1, 2, -1, 0]), _anchors(5)
    expected = L.dcl_loss(z1, z2, tau=0.2) + 0.3 * L.cloa_anchor_term(
        torch.cat([z1, z2]), torch.cat([labels, labels]), anchors
    )
    got = L.cloa_loss(z1, z2, labels, anchors=anchors, base="dcl", weight=0.3, tau=0.2)
    assert torch.allclose(got, expected)
    assert torch.allclose(
        L.cloa_loss(z1, z2, labels, anchors=anchors, weight=0.0), L.infonce_loss(z1, z2)
    )
    # a base loss that needs labels gets them (here all labelled)
    full = torch.tensor([0, 1, 1, 2, 0, 0])
    expected = L.supcon_loss(z1, z2, full, tau=0.2) + L.cloa_anchor_term(
        torch.cat([z1, z2]), torch.cat([full, full]), anchors
    )
    got = L.cloa_loss(z1, z2, full, anchors=anchors, base="supcon", tau=0.2)
    assert torch.allclose(got, expected)


def test_make_anchors_orthonormal_and_deterministic():
    for c, d in [(1, 1), (3, 3), (10, 128), (7, 16)]:
        a = L.make_anchors(c, d, seed=5)
        assert a.shape == (c, d) and a.dtype == torch.float32
        assert torch.allclose(a @ a.T, torch.eye(c), atol=1e-6)
        assert torch.equal(a, L.make_anchors(c, d, seed=5))
    assert not torch.allclose(
        L.make_anchors(3, 8, seed=0), L.make_anchors(3, 8, seed=1)
    )
    torch.manual_seed(0)
    first = L.make_anchors(3, 8, seed=2)
    torch.manual_seed(99)  # the global RNG does not matter
    assert torch.equal(first, L.make_anchors(3, 8, seed=2))


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


def test_registry_names_and_calls():
    assert set(L.LOSS_NAMES) == {
        "infonce",
        "dcl",
        "dhel",
        "kcl",
        "cloa",
        "vicreg",
        "barlow_twins",
        "supcon",
        "nscl",
    }
    z1, z2, y = _inputs(6, 5, seed=25, dtype=torch.float32, case="supcon")
    direct = {
        "infonce": L.infonce_loss(z1, z2, tau=0.2),
        "dcl": L.dcl_loss(z1, z2, tau=0.2),
        "dhel": L.dhel_loss(z1, z2, tau=0.2),
        "kcl": L.kcl_loss(z1, z2, kernel="imq", c=1.0),
        "vicreg": L.vicreg_loss(z1, z2),
        "barlow_twins": L.barlow_twins_loss(z1, z2),
        "supcon": L.supcon_loss(z1, z2, y, tau=0.2),
        "nscl": L.nscl_loss(z1, z2, y, tau=0.2),
        "cloa": L.cloa_loss(
            z1, z2, y, anchors=L.make_anchors(3, 5, seed=4), weight=2.0, tau=0.2
        ),
    }
    kwargs = {
        "infonce": {"tau": 0.2},
        "dcl": {"tau": 0.2},
        "dhel": {"tau": 0.2},
        "kcl": {"kernel": "imq", "c": 1.0},
        "vicreg": {},
        "barlow_twins": {},
        "supcon": {"tau": 0.2},
        "nscl": {"tau": 0.2},
        "cloa": {"num_classes": 3, "seed": 4, "weight": 2.0, "tau": 0.2},
    }
    for name in L.LOSS_NAMES:
        loss_fn = L.get_loss(name, **kwargs[name])
        assert torch.allclose(loss_fn(z1, z2, y), direct[name]), name
        assert torch.allclose(loss_fn(z1, z2, labels=y), direct[name]), name
    # label-free losses ignore labels
    assert torch.allclose(L.get_loss("infonce")(z1, z2), L.infonce_loss(z1, z2))
    # cloa with explicit anchors
    anchors = L.make_anchors(3, 5, seed=4)
    assert torch.allclose(
        L.get_loss("cloa", anchors=anchors, weight=2.0, tau=0.2)(z1, z2, y),
        direct["cloa"],
    )


@pytest.mark.parametrize("case", list(CASES))
def test_autocast_does_not_lower_precision(case):
    """Inside torch.autocast the losses still compute in float32 (autocast is switched
    off)."""
    fn, _ = CASES[case]
    z1, z2, y = _inputs(8, 6, seed=26, dtype=torch.float32, case=case)
    full = fn(z1, z2, y, 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = fn(z1, z2, y, 0.5)
    assert inside.dtype == torch.float32
    assert torch.allclose(inside, full, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------
# VICReg and Barlow Twins terms
# --------------------------------------------------------------------------------------


def ref_vicreg_terms(z1, z2, eps=1e-4):
    """Invariance, variance of each view, covariance of each view (float64 loops)."""
    x, y = _rows(z1), _rows(z2)
    n, d = len(x), len(x[0])
    inv = sum((x[i][k] - y[i][k]) ** 2 for i in range(n) for k in range(d)) / (n * d)

    def var_cov(a):
        mean = [sum(a[i][k] for i in range(n)) / n for k in range(d)]
        cov = [
            [
                sum((a[i][k] - mean[k]) * (a[i][l] - mean[l]) for i in range(n))
                / (n - 1)
                for l in range(d)
            ]
            for k in range(d)
        ]
        var = sum(max(0.0, 1 - math.sqrt(cov[k][k] + eps)) for k in range(d)) / d
        return (
            var,
            sum(cov[k][l] ** 2 for k in range(d) for l in range(d) if k != l) / d,
        )

    return inv, var_cov(x), var_cov(y)


@pytest.mark.parametrize("n,d", [(2, 3), (5, 4), (9, 2)])
def test_vicreg_terms_match_reference_and_compose_the_loss(n, d):
    z1, z2, _ = _inputs(n, d, seed=40 + n)
    z1, z2 = 0.5 * z1, 0.5 * z2  # small spread: the variance hinge is active
    inv, (vx, cx), (vy, cy) = ref_vicreg_terms(z1, z2)
    assert L.vicreg_invariance_term(z1, z2).item() == pytest.approx(inv, rel=1e-12)
    assert L.vicreg_variance_term(z1).item() == pytest.approx(vx, rel=1e-12)
    assert L.vicreg_covariance_term(z2).item() == pytest.approx(cy, rel=1e-12)
    assert vx > 0 and cx > 0
    composed = (
        2.0 * L.vicreg_invariance_term(z1, z2)
        + 3.0 * (L.vicreg_variance_term(z1) + L.vicreg_variance_term(z2)) / 2
        + 0.5 * (L.vicreg_covariance_term(z1) + L.vicreg_covariance_term(z2))
    )
    loss = L.vicreg_loss(z1, z2, sim_coeff=2.0, std_coeff=3.0, cov_coeff=0.5)
    assert loss.item() == pytest.approx(composed.item(), rel=1e-12)
    assert L.vicreg_variance_term(z1, eps=0.5).item() == pytest.approx(
        ref_vicreg_terms(z1, z2, eps=0.5)[1][0], rel=1e-12
    )


@pytest.mark.parametrize("n,d", [(2, 3), (5, 4), (9, 2)])
def test_barlow_twins_terms_compose_the_loss(n, d):
    z1, z2, _ = _inputs(n, d, seed=50 + n)
    c = L.barlow_twins_cross_correlation(z1, z2)
    assert c.shape == (d, d)
    invariance = L.barlow_twins_invariance_term(c)
    redundancy = L.barlow_twins_redundancy_term(c)
    assert invariance.item() == pytest.approx(
        float(((1 - torch.diagonal(c)) ** 2).sum())
    )
    assert redundancy.item() == pytest.approx(
        float((c**2).sum() - (torch.diagonal(c) ** 2).sum())
    )
    for lambd in (5e-3, 0.7):
        assert L.barlow_twins_loss(z1, z2, lambd=lambd).item() == pytest.approx(
            (invariance + lambd * redundancy).item(), rel=1e-12
        )
    assert L.barlow_twins_loss(z1, z2).item() == pytest.approx(
        ref_barlow(z1, z2), rel=1e-9
    )


@pytest.mark.parametrize(
    "term", ["invariance", "variance", "covariance", "cross_correlation"]
)
def test_terms_gradcheck(term):
    z1, z2, _ = _inputs(5, 3, seed=60)
    z1.requires_grad_()
    z2.requires_grad_()
    fn = {
        "invariance": lambda a, b: L.vicreg_invariance_term(a, b),
        "variance": lambda a, b: L.vicreg_variance_term(0.3 * a)
        + L.vicreg_variance_term(b),
        "covariance": lambda a, b: L.vicreg_covariance_term(a + b),
        "cross_correlation": lambda a, b: L.barlow_twins_redundancy_term(
            L.barlow_twins_cross_correlation(a, b)
        )
        + L.barlow_twins_invariance_term(L.barlow_twins_cross_correlation(a, b)),
    }[term]
    assert torch.autograd.gradcheck(fn, (z1, z2), eps=1e-6, atol=1e-5)


def test_vicreg_and_barlow_match_lightly_and_solo_learn_formulations():
    """Re-expresses lightly's VICRegLoss / BarlowTwinsLoss (lightly/loss/*.py, main
    branch) and solo-learn's vicreg_loss_func / barlow_loss_func (solo/losses/*.py): the
    same computation up to the documented differences (solo-learn sums the two variance
    terms and scales Barlow Twins by scale_loss)."""
    z1, z2, _ = _inputs(12, 5, seed=61)
    z1, z2 = 0.6 * z1, 0.6 * z2
    F = torch.nn.functional

    def variance(x):  # lightly's variance_loss(x, eps=1e-4)
        x = x - x.mean(dim=0)
        return F.relu(1.0 - torch.sqrt(x.var(dim=0) + 1e-4)).mean()

    def covariance(x):  # lightly's covariance_loss(x) for 2-D x
        x = x - x.mean(dim=0)
        cov = x.T @ x / (x.shape[0] - 1)
        return cov[~torch.eye(x.shape[1], dtype=torch.bool)].pow(2).sum() / x.shape[1]

    lightly_vicreg = (
        25 * F.mse_loss(z1, z2)
        + 25 * 0.5 * (variance(z1) + variance(z2))
        + 1 * (covariance(z1) + covariance(z2))
    )
    assert torch.allclose(L.vicreg_loss(z1, z2), lightly_vicreg)
    solo_vicreg = (
        25 * F.mse_loss(z1, z2)
        + 25 * (variance(z1) + variance(z2))
        + 1 * (covariance(z1) + covariance(z2))
    )
    assert torch.allclose(L.vicreg_loss(z1, z2, std_coeff=50.0), solo_vicreg)

    def batch_norm(z):  # lightly's _normalize; solo-learn's BatchNorm1d(affine=False)
        return F.batch_norm(z, None, None, training=True)

    c = batch_norm(z1).T @ batch_norm(z2) / z1.shape[0]
    off = ~torch.eye(5, dtype=torch.bool)
    lightly_barlow = (torch.diagonal(c) - 1).pow(2).sum() + 5e-3 * c[off].pow(2).sum()
    assert torch.allclose(L.barlow_twins_loss(z1, z2), lightly_barlow)
    assert torch.allclose(L.barlow_twins_cross_correlation(z1, z2), c)


def test_dcl_matches_lightly_formulation():
    """lightly's DCLLoss (weight_fn=None, lightly >= 1.5.21): mean of the two
    directions, one log-sum-exp over the other samples of both views."""
    z1, z2, _ = _inputs(7, 4, seed=62)
    u, v = torch.nn.functional.normalize(z1, dim=1), torch.nn.functional.normalize(
        z2, dim=1
    )
    eye = torch.eye(7, dtype=torch.bool)

    def one_direction(a, b, tau):
        sim_aa, sim_ab = a @ a.T / tau, a @ b.T / tau
        positive = -sim_ab[eye]
        negatives = torch.cat(
            [sim_aa[~eye].view(7, -1), sim_ab[~eye].view(7, -1)], dim=1
        )
        return (positive + torch.logsumexp(negatives, dim=1)).mean()

    lightly = 0.5 * (one_direction(u, v, 0.1) + one_direction(v, u, 0.1))
    assert torch.allclose(L.dcl_loss(z1, z2, tau=0.1), lightly)


def test_infonce_matches_lightly_ntxent_formulation():
    """lightly's NTXentLoss (no memory bank): cross-entropy over [positive, the 2N - 2
    other samples] for each of the 2N anchors."""
    z1, z2, _ = _inputs(7, 4, seed=63)
    w = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = w @ w.T
    positive = torch.cat([torch.diag(sim, 7), torch.diag(sim, -7)]).view(14, 1)
    drop = torch.eye(14, dtype=torch.bool)
    drop[torch.arange(14), (torch.arange(14) + 7) % 14] = True
    logits = torch.cat([positive, sim[~drop].view(14, -1)], dim=1) / 0.5
    target = torch.zeros(14, dtype=torch.long)
    lightly = torch.nn.functional.cross_entropy(logits, target)
    assert torch.allclose(L.infonce_loss(z1, z2), lightly)


# --------------------------------------------------------------------------------------
# Known minimisers of VICReg and Barlow Twins
# --------------------------------------------------------------------------------------


def _whitened(n, d, seed, scale=1.0):
    """n x d, columns centred, uncorrelated, each of (unbiased) variance scale**2."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, d, dtype=torch.float64, generator=g))
    q = q - q.mean(dim=0)
    q, _ = torch.linalg.qr(q)  # orthonormal columns, still centred (orthogonal to ones)
    return q * math.sqrt(n - 1) * scale


def test_vicreg_zero_at_identical_whitened_views():
    z = _whitened(16, 4, seed=70, scale=1.5)  # std >= 1: variance hinge inactive
    assert L.vicreg_loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-10)
    # and positive as soon as one of the three terms is active
    assert L.vicreg_loss(z, z + 0.1).item() > 0.1  # invariance
    assert L.vicreg_loss(0.5 * z, 0.5 * z).item() > 1.0  # variance hinge
    mixed = z @ torch.tensor(
        [[1.0, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        dtype=torch.float64,
    )
    assert L.vicreg_loss(mixed, mixed).item() > 0.1  # covariance


def test_barlow_twins_zero_at_identical_decorrelated_views():
    z = _whitened(16, 4, seed=71)
    # C = I up to BatchNorm's eps and the biased standardisation: the loss is tiny
    assert L.barlow_twins_loss(z, z.clone()).item() < 1e-6
    assert (
        L.barlow_twins_loss(
            z, z[torch.randperm(16, generator=torch.Generator().manual_seed(0))]
        ).item()
        > 0.5
    )


# --------------------------------------------------------------------------------------
# One signature, one registry
# --------------------------------------------------------------------------------------


def test_every_registered_loss_has_the_common_signature():
    import inspect

    for name, spec in L.LOSSES.items():
        params = list(inspect.signature(spec.function).parameters.values())
        assert [p.name for p in params[:3]] == ["z1", "z2", "labels"], name
        assert params[2].default is None
        assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[3:]), name
        assert dict(spec.defaults) == {
            p.name: p.default for p in params[3:] if p.kind is p.KEYWORD_ONLY
        }
        assert (
            spec.needs_labels
            == L.needs_labels(name)
            == (name in {"supcon", "nscl", "cloa"})
        )
        assert bool(spec.more_hyperparameters) == (name in {"kcl", "cloa"})
    assert L.LOSS_NAMES == tuple(L.LOSSES)
    assert L.LOSSES["infonce"].defaults == {"tau": 0.5}
    assert L.LOSSES["vicreg"].hyperparameters == ("sim_coeff", "std_coeff", "cov_coeff")


_REGISTRY_KWARGS = {"cloa": {"num_classes": 3}}


@pytest.mark.parametrize(
    "name",
    [
        "infonce",
        "dcl",
        "dhel",
        "kcl",
        "vicreg",
        "barlow_twins",
        "cloa",
        "supcon",
        "nscl",
    ],
)
def test_registry_labels_contract(name):
    """Label-free losses accept and ignore labels; the others raise without them."""
    z1, z2, y = _inputs(6, 4, seed=72, case="supcon")
    loss = L.get_loss(name, **_REGISTRY_KWARGS.get(name, {}))
    if L.needs_labels(name):
        with pytest.raises(ValueError, match="needs labels"):
            loss(z1, z2)
        with pytest.raises(ValueError, match="needs labels"):
            L.LOSSES[name].function(z1, z2, **_REGISTRY_KWARGS.get(name, {}))
        assert torch.isfinite(loss(z1, z2, y))
    else:
        assert torch.equal(loss(z1, z2, y), loss(z1, z2))
        assert torch.equal(L.LOSSES[name].function(z1, z2, y), loss(z1, z2))


_BAD_VIEWS = {
    "shape mismatch": (torch.randn(4, 3), torch.randn(4, 2), "same shape"),
    "batch of one": (torch.randn(1, 3), torch.randn(1, 3), "N >= 2"),
    "NaN": (
        torch.randn(4, 3).index_fill_(0, torch.tensor([2]), float("nan")),
        torch.randn(4, 3),
        "NaN or Inf",
    ),
    "Inf": (
        torch.randn(4, 3),
        torch.randn(4, 3).index_fill_(1, torch.tensor([0]), float("inf")),
        "NaN or Inf",
    ),
    "1-D": (torch.randn(4), torch.randn(4), "2-D"),
    "integer": (
        torch.ones(4, 3, dtype=torch.long),
        torch.ones(4, 3, dtype=torch.long),
        "floating",
    ),
}


@pytest.mark.parametrize("bad", list(_BAD_VIEWS))
@pytest.mark.parametrize(
    "name",
    [
        "infonce",
        "dcl",
        "dhel",
        "kcl",
        "vicreg",
        "barlow_twins",
        "cloa",
        "supcon",
        "nscl",
    ],
)
def test_every_loss_rejects_bad_views(name, bad):
    z1, z2, message = _BAD_VIEWS[bad]
    loss = L.get_loss(name, **_REGISTRY_KWARGS.get(name, {}))
    labels = torch.zeros(z1.shape[0], dtype=torch.long)
    with pytest.raises(ValueError, match=message):
        loss(z1, z2, labels)


def test_get_loss_checks_hyperparameters_once(monkeypatch):
    """Hyper-parameters are checked when get_loss is called, not at every step, and
    CLOA's anchors are made once per embedding dimension."""
    calls = {"positive": 0, "anchors": 0}
    real_positive, real_make_anchors = L.checks.positive, L.make_anchors

    def counting_positive(*args, **kwargs):
        calls["positive"] += 1
        return real_positive(*args, **kwargs)

    def counting_make_anchors(*args, **kwargs):
        calls["anchors"] += 1
        return real_make_anchors(*args, **kwargs)

    monkeypatch.setattr(L.checks, "positive", counting_positive)
    monkeypatch.setattr(L, "make_anchors", counting_make_anchors)
    z1, z2, y = _inputs(6, 4, seed=73, case="supcon")
    for name, kwargs in [
        ("infonce", {"tau": 0.2}),
        ("cloa", {"num_classes": 3, "tau": 0.2}),
        ("supcon", {}),
    ]:
        loss = L.get_loss(name, **kwargs)
        after_setup = dict(calls)
        values = [loss(z1, z2, y) for _ in range(3)]
        assert calls["positive"] == after_setup["positive"], name
        assert torch.equal(values[0], values[2])
    assert calls["anchors"] == 1


def test_direct_call_equals_registry_call_for_every_loss():
    z1, z2, y = _inputs(7, 5, seed=74, case="supcon")
    for name, spec in L.LOSSES.items():
        kwargs = _REGISTRY_KWARGS.get(name, {})
        assert torch.equal(
            spec.function(z1, z2, y, **kwargs), L.get_loss(name, **kwargs)(z1, z2, y)
        )
