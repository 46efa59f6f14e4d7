"""Tests for cl_lib.experiments.theory (fast: small synthetic data only)."""

import math

import pytest
import torch
import torch.nn.functional as F

from cl_lib.experiments import theory as th


@pytest.fixture(scope="module")
def data():
    return th.make_class_data(5, 8, 16, num_views=2, seed=1)


def test_make_class_data_shapes_and_errors():
    views, labels = th.make_class_data(3, 4, 6, num_views=3, seed=0)
    assert views.shape == (12, 3, 6) and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    again, _ = th.make_class_data(3, 4, 6, num_views=3, seed=0)
    assert torch.equal(views, again)
    with pytest.raises(ValueError, match="num_classes"):
        th.make_class_data(1, 4, 6)
    with pytest.raises(ValueError, match="within_std"):
        th.make_class_data(3, 4, 6, within_std=-1)


def test_global_dcl_nscl_matches_loop(data):
    views, labels = data
    tau = 0.7
    dcl, nscl = th.global_dcl_nscl(views, labels, tau)
    z = F.normalize(views, dim=-1)
    n, k, _ = z.shape
    tot_d = tot_n = 0.0
    for i in range(n):
        for l1 in range(k):
            den_d = sum(
                math.exp(float(z[i, l1] @ z[j, l3]) / tau)
                for j in range(n)
                if j != i
                for l3 in range(k)
            )
            den_n = sum(
                math.exp(float(z[i, l1] @ z[j, l3]) / tau)
                for j in range(n)
                if labels[j] != labels[i]
                for l3 in range(k)
            )
            for l2 in range(k):
                num = float(z[i, l1] @ z[i, l2]) / tau
                tot_d += math.log(den_d) - num
                tot_n += math.log(den_n) - num
    assert float(dcl) == pytest.approx(tot_d / (n * k * k), rel=1e-10)
    assert float(nscl) == pytest.approx(tot_n / (n * k * k), rel=1e-10)


@pytest.mark.parametrize("tau", [0.3, 1.0])
def test_gap_between_zero_and_bound(tau):
    for seed in range(3):
        views, labels = th.make_class_data(4, 6, 8, seed=seed, class_std=0.3)
        dcl, nscl = th.global_dcl_nscl(views, labels, tau)
        gap = float(dcl - nscl)
        assert 0.0 <= gap <= th.cl_nscl_gap_bound(labels, tau)
    # balanced classes: the n_max form equals the C form
    assert th.cl_nscl_gap_bound(labels, 1.0) == pytest.approx(
        th.cl_nscl_gap_bound(num_classes=4)
    )
    assert th.cl_nscl_gap_bound(num_classes=100) < th.cl_nscl_gap_bound(num_classes=10)
    with pytest.raises(ValueError, match="exactly one"):
        th.cl_nscl_gap_bound()
    with pytest.raises(ValueError, match="tau"):
        th.cl_nscl_gap_bound(num_classes=3, tau=0)


def test_collapse_metrics_on_ideal_etf():
    c = 4
    etf = torch.eye(c, dtype=torch.float64) - 1.0 / c  # simplex ETF in R^c
    labels = torch.arange(c).repeat_interleave(3)
    views = etf[labels][:, None, :].repeat(1, 2, 1)
    m = th.collapse_metrics(views, labels)
    assert m["augmentation_spread"] < 1e-12 and m["within_class_spread"] < 1e-12
    assert m["etf_cosine_error"] < 1e-12 and m["mean_norm_ratio"] == pytest.approx(1.0)
    assert m["global_mean_norm"] < 1e-12
    assert th.simplex_etf_cosine(c) == pytest.approx(-1 / 3)


def test_cdnv_and_directional(data):
    views, labels = data
    z = views[:, 0]
    v, vd = th.cdnv(z, labels), th.directional_cdnv(z, labels)
    assert torch.allclose(v, v.T) and (v.diagonal() == 0).all()
    mu = th.class_means(z, labels)
    var0 = ((z[labels == 0] - mu[0]) ** 2).sum(1).mean()
    assert float(vd[0, 1]) <= float(var0 / ((mu[0] - mu[1]) ** 2).sum()) + 1e-12
    # isotropic class noise in d dims: directional variance ~ 1/d of the full one
    assert float(vd.sum()) < float(v.sum())
    with pytest.raises(ValueError, match="at least 2 samples"):
        th.cdnv(z[:6], torch.tensor([0, 0, 0, 0, 0, 1]))


def test_fewshot_error_and_bound(data):
    views, labels = data
    z = views[:, 0]
    err = th.ncc_fewshot_error(z, labels, shots=2, trials=5)
    assert 0.0 <= err <= 1.0
    b1, b5 = th.fewshot_error_bound(z, labels, 1), th.fewshot_error_bound(z, labels, 5)
    assert err <= b1 and b5 <= b1
    with pytest.raises(ValueError, match="shots"):
        th.ncc_fewshot_error(z, labels, shots=8)


def test_surrogate_bounds_sandwich():
    views, labels = th.make_class_data(4, 30, 8, within_std=0.4, seed=2)
    z = views[:, 0]
    sup = th.mean_classifier_loss(z, labels, tau=0.5)
    for k in (1, 8, 64):
        b = th.surrogate_bounds(z, labels, k, tau=0.5, num_draws=512)
        est, se = th.contrastive_loss_mc(z, labels, k, tau=0.5, num_anchors=20000)
        assert b["supervised"] == pytest.approx(sup)
        assert b["lower"] - 4 * se <= est <= b["upper"] + 4 * se
        assert b["shift_low"] <= b["shift_up"] + 1e-12
        assert b["label_gap"] >= -1e-9 and b["spread_gap"] >= -1e-12
        assert b["label_gap"] + b["spread_gap"] == pytest.approx(
            b["shift_up"] - b["shift_low"]
        )
    with pytest.raises(ValueError):
        th.contrastive_loss_mc(z, labels, 0)


def test_subspaces_and_angles():
    x, xp, y = th.make_gmm_pairs(3000, num_classes=3, dim=8, signal_dims=2, seed=0)
    assert x.shape == xp.shape == (3000, 8)
    lda, pca = th.lda_subspace(x, y), th.pca_subspace(x, 2)
    assert lda.shape == pca.shape == (8, 2)
    assert torch.allclose(lda.T @ lda, torch.eye(2, dtype=torch.float64), atol=1e-10)
    assert th.principal_angles(lda, lda).max() < 1e-6
    assert th.principal_angles(lda, pca).max() > 1.0  # designed to disagree
    a = th.principal_angles(torch.eye(3)[:, :1], torch.tensor([[1.0], [1.0], [0.0]]))
    assert float(a[0]) == pytest.approx(math.pi / 4)
    with pytest.raises(ValueError, match="k must"):
        th.lda_subspace(x, y, k=3)


def test_alpha_weights_and_min_player():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g)
    ents = [th.alpha_entropy(th.alpha_weights(z1, z2, t)) for t in (2.0, 0.5, 0.1)]
    assert ents[0] > ents[1] > ents[2]
    a = th.alpha_weights(z1, z2, 0.5)
    assert (
        torch.allclose(a.sum(1), torch.ones(16, dtype=torch.float64))
        and (a.diagonal() == 0).all()
    )
    # Gibbs variational principle: softmax(-d2/2tau) minimises the min player's objective
    d2 = torch.rand(5, 7, generator=g, dtype=torch.float64) * 4
    tau = 0.3
    best = torch.softmax(-d2 / (2 * tau), 1)
    val = th.min_player_objective(best, d2, tau)
    assert torch.allclose(val, -tau * torch.logsumexp(-d2 / (2 * tau), 1))
    other = torch.softmax(torch.randn(5, 7, generator=g, dtype=torch.float64), 1)
    assert (th.min_player_objective(other, d2, tau) >= val).all()
    with pytest.raises(ValueError):
        th.alpha_entropy(torch.ones(3, 3))


# ------------------------------------------------------------------------------------
# learned features: data loading message, the training loop, embeddings, rho
# ------------------------------------------------------------------------------------


def test_load_book_dataset_says_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("CL_LIB_DATA", str(tmp_path))
    monkeypatch.setenv("CL_LIB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-32.tar.gz") as info:
        th.load_book_dataset("tiny-imagenet-32", "val")
    assert "CL_LIB_DATA" in str(info.value) and str(tmp_path) in str(info.value)


def _jitter(x, g):
    """A cheap stand-in augmentation: pixels in [0, 1] plus seeded noise."""
    x = x.float() / 255
    return x + 0.1 * torch.randn(x.shape, generator=g)


def _tiny_model():
    from cl_lib.models import build_model

    torch.manual_seed(0)
    return build_model("small_cnn", proj_dim=8, width=2).double()


def test_train_contrastive_records_checkpoints_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (24, 3, 8, 8), generator=g, dtype=torch.uint8)
    runs = []
    for _ in range(2):
        model = _tiny_model()
        recs = th.train_contrastive(
            model,
            images,
            _jitter,
            steps=5,
            batch_size=8,
            lr=1e-2,
            checkpoints=[0, 2, 5],
            probe=lambda m: {"training": m.training},
        )
        runs.append(recs)
    assert [r["step"] for r in runs[0]] == [0, 2, 5]
    assert math.isnan(runs[0][0]["train_loss"]) and all(r["training"] for r in runs[0])
    assert all(math.isfinite(r["train_loss"]) for r in runs[0][1:])
    losses = [[r["train_loss"] for r in run[1:]] for run in runs]
    assert losses[0] == losses[1]
    # a labelled loss gets the batch's labels
    seen = []

    def loss_fn(z1, z2, y):
        seen.append(y)
        return (z1 - z2).pow(2).mean()

    th.train_contrastive(
        _tiny_model(),
        images,
        _jitter,
        steps=2,
        batch_size=8,
        loss_fn=loss_fn,
        labels=torch.arange(24) % 3,
    )
    assert len(seen) == 2 and all(y.shape == (8,) for y in seen)
    with pytest.raises(ValueError, match="checkpoints"):
        th.train_contrastive(
            _tiny_model(), images, _jitter, steps=2, checkpoints=[3], batch_size=8
        )
    with pytest.raises(ValueError, match="batch_size"):
        th.train_contrastive(_tiny_model(), images, _jitter, steps=2, batch_size=25)


def test_embed_views():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (10, 3, 8, 8), generator=g, dtype=torch.uint8)
    model = _tiny_model()
    v1 = th.embed_views(model, images, _jitter, num_views=3, seed=4, batch_size=4)
    v2 = th.embed_views(model, images, _jitter, num_views=3, seed=4)
    assert v1.shape == (10, 3, 8) and v1.dtype == torch.float64 and model.training
    assert torch.allclose(v1, v2)  # same seed, same views, any batch size
    with pytest.raises(ValueError):
        th.embed_views(model, images[0], _jitter)


def test_gap_similarity_ratio_inverts_the_gap():
    n, c, rho = 6, 5, 2.5
    gap = math.log1p(rho * (n - 1) / ((c - 1) * n))
    assert th.gap_similarity_ratio(gap, n, c) == pytest.approx(rho)
    # an embedding blind to classes (all views equal) has rho = 1 exactly
    labels = torch.arange(c).repeat_interleave(n)
    views = torch.ones(c * n, 2, 4, dtype=torch.float64)
    dcl, nscl = th.global_dcl_nscl(views, labels, 0.5)
    assert th.gap_similarity_ratio(float(dcl - nscl), n, c) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_per_class"):
        th.gap_similarity_ratio(0.1, 1, 3)
    with pytest.raises(ValueError, match="gap"):
        th.gap_similarity_ratio(-0.1, 4, 3)


def test_pairwise_ncc_error_and_cantelli_bound():
    views, labels = th.make_class_data(4, 60, 8, num_views=1, within_std=0.8, seed=5)
    z = views[:, 0]
    err, bound = th.pairwise_ncc_error(z, labels), th.pairwise_cantelli_bound(z, labels)
    assert err.shape == bound.shape == (4, 4)
    assert (err.diagonal() == 0).all() and (bound.diagonal() == 0).all()
    assert (err <= bound + 1e-12).all() and (bound < 1).all()
    # entry (i, j) by a loop: class-i points closer to mu_j than to mu_i
    mu = th.class_means(z, labels)
    zi = z[labels == 1]
    closer = ((zi - mu[3]).norm(dim=1) < (zi - mu[1]).norm(dim=1)).double().mean()
    assert float(err[1, 3]) == pytest.approx(float(closer))
    vdir = th.directional_cdnv(z, labels)
    assert torch.allclose(bound, (vdir / (vdir + 0.25)).fill_diagonal_(0.0))


def test_gap_and_bound_and_subset_losses(data):
    views, labels = data
    dcl, nscl, gap, bound = th.gap_and_bound(views, labels, 0.5)
    ref = th.global_dcl_nscl(views, labels, 0.5)
    assert (dcl, nscl) == (float(ref[0]), float(ref[1]))
    assert gap == float(ref[0] - ref[1]) and 0 <= gap <= bound
    assert bound == th.cl_nscl_gap_bound(labels, 0.5)
    subsets = {2: [torch.tensor([0, 1]), torch.tensor([2, 4])], 5: [torch.arange(5)]}
    out = th.subset_losses(views, labels, subsets, 0.5)
    assert list(out) == [2, 5] and out[2].shape == (2,)
    assert out[5].tolist() == [dcl, nscl]  # all classes: the full losses
    keep = torch.isin(labels, torch.tensor([2, 4]))
    other = [float(v) for v in th.global_dcl_nscl(views[keep], labels[keep], 0.5)]
    assert (
        abs(
            out[2][1]
            - (
                float(th.global_dcl_nscl(views[labels < 2], labels[labels < 2], 0.5)[1])
                + other[1]
            )
            / 2
        )
        < 1e-12
    )


def test_backbone_features():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (6, 3, 8, 8), generator=g, dtype=torch.uint8)
    model = _tiny_model()
    h = th.backbone_features(model, images, lambda x: x.float() / 255, batch_size=4)
    assert h.dtype == torch.float64 and h.shape == (6, model.feature_dim)
    assert model.training  # extract_features restores the mode
    with torch.no_grad():
        ref = model.eval().backbone(images.double() / 255)  # eval mode, as extracted
    assert torch.allclose(h, ref)


def test_nscl_free_points_reach_the_simplex():
    start, end, labels = th.nscl_free_points(3, tau=0.5, steps=300)
    assert start.shape == end.shape == (15, 2, 6) and labels.tolist()[:6] == [0] * 5 + [
        1
    ]
    # the predicted minimum log((C-1) n K) - (1 + 1/(C-1)) / tau
    _, loss = th.global_dcl_nscl(end, labels, 0.5)
    assert abs(float(loss) - (math.log(2 * 5 * 2) - 1.5 / 0.5)) < 1e-3
    views, means, simplex = th.simplex_view(end, labels)
    assert views.shape == (30, 2) and means.shape == simplex.shape == (3, 2)
    assert float((means - simplex).norm(dim=1).max()) < 1e-3
    assert torch.allclose(simplex.norm(dim=1), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError):
        th.nscl_free_points(1)


def test_train_linear_infonce_is_seeded_and_finds_the_shared_direction():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g, dtype=torch.float64)
    x_pos = x.clone()
    x_pos[:, 2:] = torch.randn(400, 3, generator=g, dtype=torch.float64)  # noise
    w = th.train_linear_infonce(x, x_pos, 2, steps=200, batch_size=64, lr=0.05)
    assert w.shape == (5, 2)
    assert torch.equal(
        w, th.train_linear_infonce(x, x_pos, 2, steps=200, batch_size=64, lr=0.05)
    )
    # only coordinates 0 and 1 are shared by the two views: the encoder finds them
    shared = torch.eye(5, 2, dtype=torch.float64)
    assert float(th.principal_angles(w, shared).max()) < 0.3
    with pytest.raises(ValueError):
        th.train_linear_infonce(x, x_pos[:, :3], 2)
