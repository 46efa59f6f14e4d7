"""Tests for cl_lib.evaluate: kNN and linear probe on separable and random-label data,
the default preprocessing, and the one held-out evaluation (heldout_metrics)."""

import math

import pytest
import torch
import torch.nn as nn

from cl_lib.evaluate import (
    default_preprocess,
    heldout_metrics,
    extract_features,
    knn_accuracy,
    knn_correct,
    knn_predict,
    linear_probe,
)
from cl_lib.stats import decode_correct


def blobs(n_per_class=60, num_classes=5, dim=16, spread=0.3, seed=0, center_seed=0):
    """Well separated Gaussian clusters; the centres depend on ``center_seed`` only."""
    centers = (
        torch.randn(
            num_classes, dim, generator=torch.Generator().manual_seed(center_seed)
        )
        * 3
    )
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = centers[y] + spread * torch.randn(len(y), dim, generator=g)
    perm = torch.randperm(len(y), generator=g)
    return x[perm], y[perm]


def test_knn_and_probe_separable():
    x_tr, y_tr = blobs(seed=0)
    x_te, y_te = blobs(n_per_class=20, seed=1)  # same centres, fresh points
    assert knn_accuracy(x_tr, y_tr, x_te, y_te, k=200, t=0.1) == 1.0
    probe = linear_probe(x_tr, y_tr, x_te, y_te, steps=100)
    assert probe["acc"] == 1.0 and probe["train_acc"] == 1.0
    adam = linear_probe(
        x_tr, y_tr, x_te, y_te, method="adam", steps=30, lr=1e-2, batch_size=64
    )
    assert adam["acc"] >= 0.98


def test_random_labels_are_at_chance():
    g = torch.Generator().manual_seed(0)
    x_tr, x_te = torch.randn(2000, 32, generator=g), torch.randn(2000, 32, generator=g)
    y_tr, y_te = (
        torch.randint(0, 10, (2000,), generator=g),
        torch.randint(0, 10, (2000,), generator=g),
    )
    acc = knn_accuracy(x_tr, y_tr, x_te, y_te)
    assert 0.05 < acc < 0.15
    probe = linear_probe(x_tr, y_tr, x_te, y_te, steps=50)
    assert 0.05 < probe["acc"] < 0.15
    assert probe["train_acc"] > probe["acc"]  # it fits noise on the training set only


def test_knn_weighting_by_hand():
    # query e0; neighbours: two of class 1 at cosine 0.6, one of class 0 at cosine 1.0.
    # exp(0.6/t) * 2 vs exp(1/t): t=0.1 -> class 0 wins (e^10 > 2 e^6), t=10 -> class 1
    # wins.
    bank = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    labels = torch.tensor([0, 1, 1])
    q = torch.tensor([[1.0, 0.0]])
    assert knn_predict(bank, labels, q, k=3, t=0.1).item() == 0
    assert knn_predict(bank, labels, q, k=3, t=10.0).item() == 1
    assert knn_predict(bank, labels, q, k=1, t=10.0).item() == 0  # k clips the vote
    # cosine: scale of the bank does not matter
    assert (
        knn_predict(
            bank * torch.tensor([[5.0], [0.1], [3.0]]), labels, q, k=3, t=0.1
        ).item()
        == 0
    )
    assert knn_predict(bank, labels, q, k=500).shape == (
        1,
    )  # k larger than the bank is clipped


def test_extract_features_batched_and_restores_mode():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    net.train()
    imgs = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    f_all = extract_features(net, imgs, batch_size=10)
    f_batched = extract_features(net, imgs, batch_size=3)
    assert f_all.shape == (10, 4) and net.training
    assert torch.allclose(
        f_all, f_batched, atol=1e-6
    )  # eval mode: BN uses running stats
    assert not f_all.requires_grad


def test_default_preprocess_is_the_training_normalisation():
    """Features extracted without a preprocess must see what training saw: [0, 1]
    pixels, then the data set's mean/std (it used to map to [-1, 1])."""
    from cl_lib.augment import simclr_preset

    imgs = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    for name in ("cifar10", "cifar100", "imagenette-96"):
        aug = simclr_preset(name, size=32)
        torch.testing.assert_close(
            default_preprocess(imgs, name), aug.eval_transform(imgs)
        )
    torch.testing.assert_close(
        default_preprocess(imgs), simclr_preset("cifar10").eval_transform(imgs)
    )
    seen = []
    extract_features(lambda x: seen.append(x) or x.flatten(1), imgs)
    torch.testing.assert_close(seen[0], simclr_preset("cifar10").eval_transform(imgs))


def test_heldout_metrics_keys_and_values():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 8, generator=g)
    m = heldout_metrics(
        z, views=(z, z.clone()), features=torch.randn(300, 16, generator=g)
    )
    assert set(m) == {
        "uniformity",
        "wasserstein_uniformity",
        "effective_rank",
        "alignment",
        "effective_rank_sphere",
        "embedding_variance",
        "embedding_variance_sphere",
        "effective_rank_features",
        "embedding_variance_features",
        "embedding_variance_sphere_features",
        "effective_rank_sphere_features",
    }
    assert m["alignment"] == pytest.approx(0.0, abs=1e-9)
    # Li & Pimentel-Alarcón's collapse measure: sum of per-dimension variances (~8 for 8
    # N(0,1) coordinates); on the sphere 1 - |mean direction|^2, ~1 for isotropic z, and
    # scale-free
    assert m["embedding_variance"] == pytest.approx(8.0, rel=0.2)
    assert 0.9 < m["embedding_variance_sphere"] <= 1.0
    m10 = heldout_metrics(10 * z)
    assert m10["embedding_variance"] == pytest.approx(
        100 * m["embedding_variance"], rel=1e-5
    )
    assert m10["embedding_variance_sphere"] == pytest.approx(
        m["embedding_variance_sphere"], rel=1e-5
    )
    collapsed = heldout_metrics(torch.ones(50, 8) + 1e-3 * z[:50])
    assert collapsed["embedding_variance_sphere"] < 1e-5
    assert 6 < m["effective_rank"] <= 8


def test_heldout_metrics_guards_zero_and_nonfinite_matrices():
    """One guard for every caller: an all-zero matrix has effective rank 0 (no
    exception), a non-finite one gives NaN; sphere metrics are NaN when a row has no
    direction."""
    zero = heldout_metrics(torch.zeros(20, 4), features=torch.zeros(20, 6))
    assert zero["effective_rank"] == 0.0 and zero["effective_rank_features"] == 0.0
    assert zero["embedding_variance"] == 0.0 and math.isnan(
        zero["embedding_variance_sphere"]
    )
    bad = heldout_metrics(torch.full((20, 4), float("nan")))
    assert math.isnan(bad["effective_rank"]) and math.isnan(bad["uniformity"])


def test_heldout_metrics_accuracies_and_spectra():
    x, y = blobs()
    m = heldout_metrics(
        bank=x, bank_labels=y, query=x, labels=y, knn_k=5, probe={"steps": 20}
    )
    assert set(m) == {
        "knn_acc",
        "linear_probe_acc",
        "linear_probe_train_acc",
        "knn_correct",
        "linear_probe_correct",
    }
    assert m["knn_acc"] > 0.9 and m["linear_probe_acc"] > 0.9
    assert m["knn_acc"] == knn_accuracy(x, y, x, y, k=5)
    lean = heldout_metrics(bank=x, bank_labels=y, query=x, labels=y, per_image=False)
    assert set(lean) == {"knn_acc"}
    s = heldout_metrics(x, spectra=True, wasserstein=False)["singular_values_z"]
    torch.testing.assert_close(torch.tensor(s), torch.linalg.svdvals(x - x.mean(0)))
    with pytest.raises(ValueError, match="kNN needs"):
        heldout_metrics(bank=x, bank_labels=y)


def test_bad_input():
    x, y = blobs()
    with pytest.raises(ValueError):
        knn_predict(x, y, x[:, :3])
    with pytest.raises(ValueError):
        knn_predict(x, y, x, k=0)
    with pytest.raises(ValueError):
        knn_predict(x, y - 1, x)
    with pytest.raises(ValueError):
        linear_probe(x, y, x, y, method="sgd")
    with pytest.raises(ValueError):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(ValueError):
        extract_features(nn.Identity(), torch.zeros(3, 4))


def test_per_image_correctness_matches_the_accuracies():
    """knn_correct / linear_probe_correct: which query images each classifier gets
    right, in query order, as cl_lib.stats strings whose mean is the accuracy."""
    x_tr, y_tr = blobs(seed=0, spread=6.0)
    x_te, y_te = blobs(n_per_class=20, seed=1, spread=6.0)
    m = heldout_metrics(
        bank=x_tr,
        bank_labels=y_tr,
        query=x_te,
        labels=y_te,
        knn_k=20,
        probe={"steps": 30},
    )
    knn = decode_correct(m["knn_correct"])
    probe = decode_correct(m["linear_probe_correct"])
    assert knn.shape == probe.shape == (len(y_te),)
    assert knn.mean() == pytest.approx(m["knn_acc"])
    assert probe.mean() == pytest.approx(m["linear_probe_acc"])
    assert 0 < knn.mean() < 1  # overlapping blobs: some right, some wrong
    pred = knn_predict(x_tr, y_tr, x_te, k=20)
    assert knn.tolist() == (pred == y_te).tolist()
    assert knn_correct(x_tr, y_tr, x_te, y_te, k=20).tolist() == knn.tolist()
    fit = linear_probe(x_tr, y_tr, x_te, y_te, steps=30)
    assert fit["correct"].tolist() == probe.tolist()


def test_embed_heldout_draws_the_same_views_and_restores_the_mode():
    from cl_lib.augment import simclr_preset
    from cl_lib.evaluate import embed_heldout
    from cl_lib.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn", width=4, proj_dim=8, image_size=16)
    model.train()
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    augment = simclr_preset("cifar10")
    h, z, (v1, v2) = embed_heldout(model, images, augment, seed=3)
    assert model.training  # restored
    assert h.shape[0] == z.shape[0] == v1.shape[0] == 6
    assert torch.allclose(z, model.eval().projector(h).detach())
    _, z_again, (w1, w2) = embed_heldout(model, images, augment, seed=3, features=h)
    assert torch.equal(z, z_again) and torch.equal(v1, w1) and torch.equal(v2, w2)
    assert not torch.equal(v1, v2)  # two different views
    _, _, other = embed_heldout(model, images, augment, seed=4, features=h)
    assert not torch.equal(v1, other[0])  # another seed, other views
    assert embed_heldout(model, images, augment, seed=3, views=False)[2] is None


def test_heldout_alignment_is_nan_for_a_view_with_a_zero_row():
    # a projector-less network ending in a ReLU can map an image to 0: no crash
    z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    z2[3] = 0
    out = heldout_metrics(torch.randn(8, 4), views=(z1, z2))
    assert math.isnan(out["alignment"])
    assert math.isfinite(heldout_metrics(views=(z1, z1 + 0.1))["alignment"])
