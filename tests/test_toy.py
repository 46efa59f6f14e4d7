"""Tests for cl_lib.experiments.toy: data, augmentation, encoder, probes, training,
Theorem 3.1 helpers."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cl_lib.experiments import toy
from cl_lib.losses import infonce_loss


def test_data_lies_on_class_lines():
    x, y = toy.make_subspace_data(50, noise=0.0, seed=3)
    assert x.shape == (150, 3) and y.shape == (150,) and set(y.tolist()) == {0, 1, 2}
    u = toy.class_directions()
    # noise 0: every point is a multiple of its class direction, spread over both halves
    residual = x - (x * u[y]).sum(1, keepdim=True) * u[y]
    assert residual.abs().max() < 1e-6
    t = (x * u[y]).sum(1)
    assert t.min() < -0.5 and t.max() > 0.5 and t.abs().max() <= 1


def test_class_directions_are_separated_lines():
    u = toy.class_directions(3, 3, seed=0, min_angle_deg=40)
    cos = (u @ u.T).abs() - torch.eye(3)
    assert (
        torch.allclose(u.norm(dim=1), torch.ones(3))
        and cos.max() <= math.cos(math.radians(40)) + 1e-6
    )


def test_augment_is_negation_plus_noise():
    x = torch.randn(1000, 3)
    g = torch.Generator().manual_seed(0)
    a = toy.augment(x, noise=0.0, generator=g)
    flipped = (a == -x).all(1)
    assert ((a == x).all(1) | flipped).all()
    assert 0.4 < flipped.double().mean() < 0.6
    b = toy.augment(x, noise=0.1, flip_prob=0.0, generator=g)
    assert 0.08 < (b - x).std() < 0.12


def test_bad_input_raises():
    with pytest.raises(ValueError):
        toy.make_subspace_data(0)
    with pytest.raises(ValueError):
        toy.augment(torch.zeros(2, 3), flip_prob=2)
    with pytest.raises(ValueError):
        toy.train_toy("infonce", lr=-1, epochs=1)
    with pytest.raises(ValueError):
        toy.collapsed_configuration(4, 3, kind="plane")
    with pytest.raises(ValueError):
        toy.class_mean_collinearity(torch.randn(3, 2), torch.zeros(2, dtype=torch.long))


def test_encoder_shapes_and_dead_relus():
    model = toy.ToyEncoder(3, 16, 3)
    x = torch.randn(64, 3)
    assert model(x).shape == (64, 3)
    assert [a.shape for a in model.hidden_activations(x)] == [(64, 16), (64, 16)]
    assert 0 <= toy.dead_relu_fraction(model, x) <= 1
    with torch.no_grad():  # kill every unit of the first layer
        model.net[1].bias.fill_(-100.0)
        model.net[1].weight.fill_(0.0)
    assert toy.dead_relu_fraction(model, x) >= 0.5


def test_probes_on_separable_and_collapsed_embeddings():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(40)
    centres = torch.eye(3)
    z = centres[y] + 0.05 * torch.randn(120, 3, generator=g)
    zt = centres[y] + 0.05 * torch.randn(120, 3, generator=g)
    assert toy.probe_accuracies(z, y, zt, y) == (1.0, 1.0)
    same = torch.ones(120, 3)  # a point collapse: nothing to separate
    lin, knn = toy.probe_accuracies(same, y, same, y)
    assert lin <= 0.34 and knn <= 0.34
    # scale does not matter (normalised first), a tiny spread is not blown up by
    # standardising
    tiny = torch.ones(120, 3) + 1e-4 * torch.randn(120, 3, generator=g)
    assert toy.probe_accuracies(100 * z, y, zt, y)[0] == 1.0
    assert toy.probe_accuracies(tiny, y, tiny, y)[0] < 0.6


def test_train_toy_config_keys():
    run = toy.train_toy("infonce", lr=0.05, epochs=1, n_per_class=50, hidden=8)
    keys = ["loss_name", "lr", "epochs", "seed", "label_fraction", "tau"]
    keys += ["n_per_class", "batch_size", "hidden", "momentum", "anchor_weight"]
    assert list(run.config)[: len(keys)] == keys and run.config["lr"] == 0.05
    assert run.snapshots == [] and len(run.snapshot_labels) == 150


def test_train_toy_runs_and_records():
    run = toy.train_toy(
        "infonce", lr=0.05, epochs=3, n_per_class=100, hidden=16, snapshot_every=1
    )
    assert run.history["epoch"] == [0, 1, 2, 3] and len(run.snapshots) == 4
    assert run.z.shape == (300, 3)
    m = run.metrics
    assert (
        not m["diverged"]
        and 0 <= m["variance_sphere"] <= 1
        and 1 <= m["effective_rank"] <= 3
    )
    assert 0 <= m["linear_probe"] <= 1 and 0 <= m["knn"] <= 1 and m["grad_norm"] > 0
    again = toy.train_toy("infonce", lr=0.05, epochs=3, n_per_class=100, hidden=16)
    assert torch.equal(run.z, again.z)  # seeded: bit-reproducible on one machine


def test_train_toy_with_anchor_and_other_losses():
    for name in ("dcl", "vicreg", "barlow_twins"):
        assert (
            toy.train_toy(name, lr=0.01, epochs=1, n_per_class=100, hidden=8).metrics[
                "knn"
            ]
            >= 0
        )
    run = toy.train_toy(
        "infonce", lr=0.1, epochs=8, n_per_class=100, hidden=16, label_fraction=1.0
    )
    assert (
        run.metrics["linear_probe"] > 0.8
    )  # every label on its anchor: classes separate


def test_divergence_is_reported_not_raised():
    run = toy.train_toy("vicreg", lr=10.0, epochs=5, n_per_class=100, hidden=16)
    assert run.metrics["diverged"]


@pytest.mark.parametrize("n,d,tau", [(4, 3, 0.5), (6, 4, 0.2)])
def test_theorem_31_gradients(n, d, tau):
    for kind in ("point", "line", "line_random"):
        z1, z2 = toy.collapsed_configuration(n, d, kind, seed=1)
        assert torch.allclose(
            toy.infonce_unnormalised(z1, z2, tau), infonce_loss(z1, z2, tau=tau)
        )
        g = toy.sphere_gradients(z1, z2, tau)
        assert (
            g["through_normalisation"].abs().max() < 1e-12
        )  # what holds in every case
        assert (
            g["euclidean"] - g["radial"]
        ).abs().max() < 1e-12  # Euclidean part is radial
    z1, z2 = toy.collapsed_configuration(n, d, "line_random", seed=1)
    assert toy.sphere_gradients(z1, z2, tau)["euclidean"].abs().max() > 1e-3


def test_riemannian_hessian_matches_second_order_retraction():
    n, d, tau = 4, 3, 0.5
    z1, z2 = toy.collapsed_configuration(n, d, "line_random", seed=0)
    u = torch.cat([z1, z2])
    ev, h = toy.riemannian_hessian(
        lambda w: toy.infonce_unnormalised(w[:n], w[n:], tau), u
    )
    ev2, _ = toy.riemannian_hessian(lambda w: infonce_loss(w[:n], w[n:], tau=tau), u)
    assert h.shape == (2 * n * (d - 1),) * 2 and torch.allclose(ev, ev2, atol=1e-10)
    # a saddle: the loss goes down along some tangent directions, up along others
    assert ev.min() < -1e-3 and ev.max() > 1e-3
    probe = toy.tangent_probe(
        lambda w: infonce_loss(w[:n], w[n:], tau=tau), u, n_dirs=50
    )
    assert (probe < 0).any()


def test_hessian_of_a_known_function():
    # f(u) = u[0, 0] on S^1 at u = (1, 0): maximum, Riemannian Hessian = -1 (curvature
    # term only)
    ev, _ = toy.riemannian_hessian(
        lambda w: w[0, 0], torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    )
    assert torch.allclose(ev, torch.tensor([-1.0], dtype=torch.float64))


def test_figures_build():
    x, y = toy.make_subspace_data(20)
    fig = toy.plot_toy_data(x, y, n_pairs=3)
    assert len(fig.data) == 4
    run = toy.train_toy(
        "infonce", lr=0.05, epochs=2, n_per_class=50, hidden=8, snapshot_every=1
    )
    fig = toy.plot_embedding_trajectory(run)
    assert len(fig.frames) == 3 and len(fig.layout.sliders[0].steps) == 3


def test_sweep_and_tables():
    res = toy.sweep_toy(
        ["infonce"], [0.01], seeds=(0, 1), epochs=1, n_per_class=50, hidden=8
    )
    assert list(res) == [("infonce", 0.01)] and res["infonce", 0.01]["knn"].shape == (
        2,
    )
    assert toy.mean_std([0.5]) == "0.50" and toy.mean_std([1.0, 3.0], 1) == "2.0 +- 1.0"
    assert toy.mean_std([float("nan")]) == "nan"
    table = toy.sweep_table(res, ["knn"])
    assert "infonce" in table and len(table.splitlines()) == 2


def test_class_mean_collinearity():
    y = torch.arange(3).repeat_interleave(10)
    assert toy.class_mean_collinearity(torch.eye(3)[y], y) == pytest.approx(1 / 3)
    v = torch.tensor([[1.0, 2.0, 0.5]])
    signs = torch.tensor([1.0, -1.0, 1.0])[y][:, None]
    assert toy.class_mean_collinearity(signs * v, y) == pytest.approx(1.0)
    # non-negative features: a shared offset makes the uncentred means look fused,
    # the centred measure sees three equally separated classes (two directions)
    offset = torch.eye(3)[y] + 5.0
    assert toy.class_mean_collinearity(offset, y) > 0.98
    assert toy.class_mean_collinearity(offset, y, centred=True) == pytest.approx(0.5)


def test_last_layer_hessian_saddle_and_dead_features():
    g = torch.Generator().manual_seed(0)
    h1 = torch.rand(12, 5, generator=g, dtype=torch.float64)
    h2 = torch.rand(12, 5, generator=g, dtype=torch.float64)
    v = F.normalize(torch.randn(3, generator=g, dtype=torch.float64), dim=0)
    zero_w = torch.zeros(3, 5, dtype=torch.float64)
    r = toy.last_layer_hessian(h1, h2, zero_w, v, tau=0.5)  # every embedding equals v
    assert r["grad_max"] < 1e-10 and len(r["eigenvalues"]) == 3 * 5 + 3
    assert r["eigenvalues"].min() < -1e-6 < 1e-6 < r["eigenvalues"].max()  # a saddle
    w = torch.randn(5, generator=g, dtype=torch.float64)
    r = toy.last_layer_hessian(
        h1 - 0.5, h2 - 0.5, torch.outer(v, w), torch.zeros(3, dtype=torch.float64)
    )
    assert r["grad_max"] < 1e-9 and r["eigenvalues"].min() < 0  # +-v: a saddle too
    dead = torch.zeros(12, 5, dtype=torch.float64)  # all features dead
    r = toy.last_layer_hessian(dead, dead, zero_w, v)
    assert r["eigenvalues"].abs().max() < 1e-12  # flat: b moves all alike
    with pytest.raises(ValueError):
        toy.last_layer_hessian(h1, h2[:, :4], zero_w, v)


def test_loss_slice_is_the_hessian_parabola():
    n, tau = 4, 0.5
    z1, z2 = toy.collapsed_configuration(n, 3, "point", seed=0)
    u = torch.cat([z1, z2])
    f = lambda w: infonce_loss(w[:n], w[n:], tau=tau)
    ev, h = toy.riemannian_hessian(f, u)
    vecs = torch.linalg.eigh(h).eigenvectors
    ts = [1e-3, 2e-3]
    down = toy.loss_slice(f, u, vecs[:, 0], ts)  # most negative eigenvalue
    up = toy.loss_slice(f, u, vecs[:, -1], ts)
    for t, dv, uv in zip(ts, down, up):  # f(t) = lambda t^2 / 2 + O(t^3)
        assert dv == pytest.approx(float(ev[0]) * t**2 / 2, rel=1e-2)
        assert uv == pytest.approx(float(ev[-1]) * t**2 / 2, rel=1e-2)
    with pytest.raises(ValueError):
        toy.loss_slice(f, u, torch.zeros(len(vecs), dtype=torch.float64), ts)


def test_angular_gradient_norm_zero_at_collapse_and_scale_free():
    z1, z2 = toy.collapsed_configuration(8, 3, "line_random", seed=0)
    fn = lambda p, q: infonce_loss(p, q, tau=0.5)
    loss, grad = toy.angular_gradient_norm(fn, z1, z2)
    assert grad < 1e-12 and loss > 0  # a critical point: Theorem 3.1
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 8, 3, generator=g, dtype=torch.float64)
    l1, g1 = toy.angular_gradient_norm(fn, a, b)
    l2, g2 = toy.angular_gradient_norm(fn, 30 * a, 30 * b)  # raw norms do not matter
    assert g1 > 0.1 and l1 == pytest.approx(l2) and g1 == pytest.approx(g2)
    with pytest.raises(ValueError):
        toy.angular_gradient_norm(fn, a, b[:4])


def test_interventions_keep_the_embeddings():
    torch.manual_seed(0)
    model = toy.ToyEncoder(3, 16, 3)
    x = torch.randn(64, 3)
    with torch.no_grad():
        for _ in range(100):  # running statistics of x
            model(x)
        model.eval()
        model.net[4].bias[:5] = -100.0  # five dead units in layer 2
        model.net[6].weight.mul_(40.0)
        model.net[6].bias.mul_(40.0)
        before = model(x)
    assert toy.dead_relu_fraction(model, x) == 5 / 32
    assert toy.revive_dead_units(model, x) == 5
    assert toy.dead_relu_fraction(model, x) == 0
    factor = toy.rescale_output_layer(model, x, target_norm=1.0)
    with torch.no_grad():
        after = model(x)
    assert factor < 0.1 and after.norm(dim=1).mean() == pytest.approx(1.0, rel=1e-5)
    same = F.normalize(after, dim=1) - F.normalize(before, dim=1)
    assert same.abs().max() < 1e-5
    with pytest.raises(ValueError):
        toy.rescale_output_layer(model, x, target_norm=0.0)


def test_intervention_and_early_stop_in_training():
    kw = {"lr": 0.05, "epochs": 6, "n_per_class": 50, "hidden": 8}
    plain = toy.train_toy("infonce", **kw)
    calls = []
    run = toy.train_toy(
        "infonce",
        intervention=lambda m, x: calls.append(len(x)),
        intervene_at=2,
        track_plateau=True,
        **kw,
    )
    assert calls == [150] and torch.equal(run.z, plain.z)  # same draws as without
    assert {"eval_loss", "angular_grad", "effective_rank_sphere"} <= set(run.history)
    assert len(run.history["angular_grad"]) == 7 and run.history["angular_grad"][-1] > 0
    assert math.isnan(plain.history["angular_grad"][-1])  # not tracked by default
    short = toy.train_toy("infonce", stop_when=lambda h: h["epoch"][-1] >= 3, **kw)
    assert short.history["epoch"][-1] == 3


def test_train_toy_batch_matches_train_toy_and_validates():
    """A run trained next to others (vmap-ed loss, stacked weights) is the run
    trained alone by train_toy (one model's loss), bit for bit: history, snapshots,
    metrics."""
    kw = {"epochs": 3, "n_per_class": 100, "hidden": 8, "label_fraction": 0.1}
    kw.update(snapshot_every=2, n_snapshot=30)
    runs = toy.train_toy_batch("infonce", seeds=[0, 1], lr=[0.01, 0.05], **kw)
    for run, (seed, lr) in zip(runs, [(0, 0.01), (1, 0.05)]):
        ref = toy.train_toy("infonce", lr=lr, seed=seed, **kw)
        assert run.config["seed"] == seed and run.config["lr"] == lr
        assert _same(run.history, ref.history)  # bit for bit
        assert [e for e, _ in run.snapshots] == [0, 2, 3]
        for (e, p), (f, q) in zip(run.snapshots, ref.snapshots):
            assert e == f and np.array_equal(p, q)
        assert run.metrics == ref.metrics
    # a chaotic setting (lr = 1) and Barlow Twins (its loss is not vmap-ed)
    for loss in ("infonce", "barlow_twins"):
        kw = {"lr": 1.0, "epochs": 6, "n_per_class": 100, "hidden": 16}
        batch = toy.train_toy_batch(loss, seeds=[0, 1], **kw)
        for seed in (0, 1):
            ref = toy.train_toy(loss, seed=seed, **kw)
            assert batch[seed].metrics == ref.metrics
            assert _same(batch[seed].history, ref.history)
    res = toy.sweep_toy_batch(
        ["vicreg"], [0.01, 10.0], seeds=(0, 1), epochs=5, n_per_class=100, hidden=16
    )
    assert res["vicreg", 10.0]["diverged"].all()
    assert not res["vicreg", 0.01]["diverged"].any()
    calls = []
    hooks = [None, lambda m, x: calls.append(len(x)) or 7]
    out = toy.train_toy_batch(
        "infonce",
        seeds=[0, 1],
        lr=0.05,
        epochs=3,
        n_per_class=50,
        hidden=8,
        intervention=hooks,
        intervene_at=1,
        stop_when=lambda h: h["epoch"][-1] >= 2,
        final_metrics=False,
    )
    assert calls == [150] and out[1].config["intervention_value"] == 7
    assert [r.history["epoch"][-1] for r in out] == [2, 2] and out[0].metrics == {}
    with pytest.raises(ValueError):
        toy.train_toy_batch("infonce", seeds=[0, 1], lr=[0.1])
    with pytest.raises(ValueError):
        toy.train_toy_batch(
            "infonce", seeds=[0], stop_when=lambda h: True, history=False
        )


def test_train_toy_batch_fork_equals_intervention_from_scratch():
    kw = {"lr": 1.0, "epochs": 6, "n_per_class": 100, "hidden": 16}
    runs = toy.train_toy_batch(
        "infonce",
        seeds=[0, 1],
        fork_at=3,
        fork=lambda hists: [(1, toy.rescale_output_layer)],
        **kw,
    )
    assert len(runs) == 3 and runs[2].config["forked_from"] == 1
    ref = toy.train_toy(
        "infonce", seed=1, intervention=toy.rescale_output_layer, intervene_at=3, **kw
    )
    assert runs[2].metrics == ref.metrics
    assert (
        runs[2].history["class_mean_collinearity"]
        == (ref.history["class_mean_collinearity"])
    )
    assert runs[1].metrics == toy.train_toy("infonce", seed=1, **kw).metrics


def test_momentum_reset_in_both_trainers_and_forks():
    """momentum_reset(hook): the same hook, then SGD's momentum zeroed -- in train_toy,
    in train_toy_batch (intervention and fork alike), bit for bit, and a different run
    from the hook alone."""
    kw = {"lr": 1.0, "epochs": 6, "n_per_class": 100, "hidden": 16}
    reset = toy.momentum_reset(toy.rescale_output_layer)
    assert reset.reset_momentum and "momentum_reset" in reset.__name__
    ref = toy.train_toy("infonce", seed=1, intervention=reset, intervene_at=3, **kw)
    plain = toy.train_toy(
        "infonce", seed=1, intervention=toy.rescale_output_layer, intervene_at=3, **kw
    )
    assert ref.history["loss"][4:] != plain.history["loss"][4:]  # momentum mattered
    batch = toy.train_toy_batch(
        "infonce", seeds=[0, 1], intervention=[None, reset], intervene_at=3, **kw
    )
    forked = toy.train_toy_batch(
        "infonce", seeds=[0, 1], fork_at=3, fork=lambda h: [(1, reset)], **kw
    )
    for run in (batch[1], forked[2]):
        assert run.metrics == ref.metrics
        np.testing.assert_array_equal(run.history["loss"], ref.history["loss"])


def test_toy_loss_rejects_a_bad_tau_instead_of_dropping_it():
    """tau goes to every loss that takes one (CLOA: its base loss's) and is checked
    there; the losses without a temperature never see it."""
    from cl_lib.experiments.toy import _toy_base_loss

    for name in ("infonce", "dcl", "dhel", "supcon", "nscl"):
        with pytest.raises(ValueError, match="tau"):
            _toy_base_loss(name, -1.0, None)
    with pytest.raises(ValueError, match="tau"):
        _toy_base_loss("cloa", -1.0, {"num_classes": 3})
    for name in ("kcl", "vicreg", "barlow_twins"):
        _toy_base_loss(name, -1.0, None)  # no temperature: tau is not theirs


# ------------------------------------------------------------ frozen reference runs
# Fingerprints of these runs, written by tests/data/make_toy_reference.py, are in
# tests/data/toy_reference.json: the trainers must reproduce them exactly. They were
# first written from the trainers as they were before train_toy became one run of
# train_toy_batch (two separate implementations, checked against each other bit for
# bit); when the toy's data streams moved to mix_seed they were rewritten, and the
# old two-trainer module with the same streams gave the same training bit for bit
# (its float32 per-epoch sphere variance differs by <= 3e-8 relative, as before).
_SMALL = {"n_per_class": 100, "hidden": 16}
REFERENCE_CASES = {
    # train_toy, one run each: snapshots, non-vmap losses, interventions, stops
    "toy_infonce_lr1_snapshots": (
        "train_toy",
        "infonce",
        dict(lr=1.0, epochs=6, snapshot_every=2, n_snapshot=20, **_SMALL),
    ),
    "toy_dhel_lr1": (
        "train_toy",
        "dhel",
        dict(lr=1.0, seed=1, epochs=4, snapshot_every=3, n_snapshot=10, **_SMALL),
    ),
    "toy_barlow_lr1": ("train_toy", "barlow_twins", dict(lr=1.0, epochs=4, **_SMALL)),
    "toy_dcl_labels": (
        "train_toy",
        "dcl",
        dict(
            lr=1.0,
            epochs=5,
            label_fraction=0.1,
            snapshot_every=1,
            n_snapshot=5,
            **_SMALL,
        ),
    ),
    "toy_reset_plateau": (
        "train_toy",
        "infonce",
        dict(
            lr=1.0,
            seed=1,
            epochs=6,
            intervention="reset",
            intervene_at=3,
            track_plateau=True,
            **_SMALL,
        ),
    ),
    "toy_stop_labels": (
        "train_toy",
        "infonce",
        dict(lr=0.05, epochs=6, label_fraction=0.1, stop_when="epoch3", **_SMALL),
    ),
    "toy_barlow_labels": (
        "train_toy",
        "barlow_twins",
        dict(lr=1.0, seed=1, epochs=5, label_fraction=0.1, **_SMALL),
    ),
    "toy_vicreg_diverges": ("train_toy", "vicreg", dict(lr=10.0, epochs=5, **_SMALL)),
    # train_toy_batch: several runs, lrs, labels, interventions, forks, stops
    "batch_infonce_labels": (
        "train_toy_batch",
        "infonce",
        {
            "seeds": [0, 1],
            "lr": [0.01, 0.05],
            "epochs": 3,
            "label_fraction": 0.1,
            "n_per_class": 100,
            "hidden": 8,
        },
    ),
    "batch_infonce_lr1": (
        "train_toy_batch",
        "infonce",
        dict(seeds=[0, 1], lr=1.0, epochs=6, **_SMALL),
    ),
    "batch_barlow_lr1": (
        "train_toy_batch",
        "barlow_twins",
        dict(seeds=[0, 1], lr=1.0, epochs=6, **_SMALL),
    ),
    "batch_dcl_cloa": (
        "train_toy_batch",
        "dcl",
        dict(
            seeds=[0, 1, 2], lr=[1.0, 1.0, 0.1], epochs=5, label_fraction=0.1, **_SMALL
        ),
    ),
    "batch_barlow_labels": (
        "train_toy_batch",
        "barlow_twins",
        dict(seeds=[0, 1], lr=1.0, epochs=5, label_fraction=0.1, **_SMALL),
    ),
    "batch_vicreg_diverges": (
        "train_toy_batch",
        "vicreg",
        dict(seeds=[0, 1], lr=[0.01, 10.0], epochs=5, **_SMALL),
    ),
    "batch_reset": (
        "train_toy_batch",
        "infonce",
        dict(
            seeds=[0, 1],
            lr=1.0,
            epochs=6,
            intervention=[None, "reset"],
            intervene_at=3,
            **_SMALL,
        ),
    ),
    "batch_fork": (
        "train_toy_batch",
        "infonce",
        dict(
            seeds=[0, 1],
            lr=1.0,
            epochs=6,
            fork_at=3,
            fork=[(1, "rescale"), (0, "reset"), (1, "revive")],
            **_SMALL,
        ),
    ),
    "batch_stop_plateau": (
        "train_toy_batch",
        "infonce",
        dict(
            seeds=[0, 1, 2],
            lr=1.0,
            epochs=6,
            track_plateau=True,
            stop_when="fused_or_5",
            **_SMALL,
        ),
    ),
    "batch_no_history": (
        "train_toy_batch",
        "dhel",
        dict(seeds=[0, 1], lr=[1.0, 3.0], epochs=4, history=False, **_SMALL),
    ),
    "batch_no_metrics": (
        "train_toy_batch",
        "infonce",
        dict(seeds=[0, 1], lr=0.5, epochs=4, final_metrics=False, **_SMALL),
    ),
}
_STOPS = {
    "epoch3": lambda h: h["epoch"][-1] >= 3,
    "fused_or_5": lambda h: (
        h["class_mean_collinearity"][-1] > 0.9 or h["epoch"][-1] >= 5
    ),
}


def _hooks(module, name):
    return {
        None: None,
        "rescale": module.rescale_output_layer,
        "revive": module.revive_dead_units,
        "reset": module.momentum_reset(module.rescale_output_layer),
    }[name]


def _digest(t) -> str:
    import hashlib

    t = torch.as_tensor(t).detach().contiguous()
    if t.is_floating_point():
        t = torch.where(torch.isnan(t), torch.full_like(t, float("nan")), t)
    return hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]


def _fingerprint(run) -> dict:
    """What a run must reproduce: its config, history and metrics as numbers, its
    snapshots, final embeddings and final weights as digests."""
    plain = (bool, int, float, str, type(None))
    return {
        "config": {k: v for k, v in run.config.items() if isinstance(v, plain)},
        "history": {k: [float(v) for v in vs] for k, vs in run.history.items()},
        "metrics": {k: float(v) for k, v in run.metrics.items()},
        "snapshots": [[e, _digest(p)] for e, p in run.snapshots],
        "snapshot_labels": _digest(run.snapshot_labels),
        "z": _digest(run.z),
        "model": [
            _digest(v)
            for k, v in run.model.state_dict().items()
            if not k.endswith("num_batches_tracked")  # counted by train_toy only
        ],
    }


def run_reference_case(module, name) -> list:
    """The fingerprints of case ``name`` of ``REFERENCE_CASES`` run by ``module`` (a
    version of cl_lib.experiments.toy)."""
    fn, loss, kw = REFERENCE_CASES[name]
    kw = dict(kw)
    if "intervention" in kw:
        hooks = kw["intervention"]
        kw["intervention"] = (
            [_hooks(module, h) for h in hooks]
            if isinstance(hooks, list)
            else _hooks(module, hooks)
        )
    if "fork" in kw:
        pairs = [(i, _hooks(module, h)) for i, h in kw["fork"]]
        kw["fork"] = lambda hists: pairs
    if "stop_when" in kw:
        kw["stop_when"] = _STOPS[kw["stop_when"]]
    out = getattr(module, fn)(loss, **kw)
    if fn == "train_toy":  # also the global RNG it leaves, the BatchNorm counts
        state = out.model.state_dict()
        return [
            dict(
                _fingerprint(out),
                rng=_digest(torch.get_rng_state()),
                bn_batches=[int(v) for k, v in state.items() if "num_batches" in k],
            )
        ]
    return [_fingerprint(r) for r in out]


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN, recursively."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_same(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@pytest.mark.parametrize("name", sorted(REFERENCE_CASES))
def test_trainers_reproduce_the_frozen_reference(name):
    import json
    import os

    path = os.path.join(os.path.dirname(__file__), "data", "toy_reference.json")
    with open(path) as f:
        ref = json.load(f)[name]
    got = json.loads(json.dumps(run_reference_case(toy, name)))  # same float round trip
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        for part in r:  # extra config keys are allowed, the frozen ones must match
            want = r[part]
            have = {k: g[part].get(k) for k in want} if part == "config" else g[part]
            assert _same(have, want), (name, part)


@pytest.mark.parametrize("seed", [-1, 2**32, 2.0])
def test_toy_seeds_outside_their_range_are_refused(seed):
    # mix_seed reads ints modulo 2**32: seed 2**32 would repeat seed 0's streams
    with pytest.raises(ValueError, match="toy seeds must be integers"):
        toy.train_toy_batch(seeds=[seed], epochs=1, n_per_class=8)


def test_no_toy_seed_trains_on_another_seeds_test_set():
    # the streams were 1000 + seed (data) and 2000 + seed (test set), so seed 1000
    # trained on seed 0's test set; mixed streams keep every seed's draws apart
    from cl_lib.profile import mix_seed

    streams = {k: {mix_seed(s, k) for s in range(2000)} for k in (1, 2, 3)}
    assert all(len(v) == 2000 for v in streams.values())
    assert not (streams[1] & streams[2] or streams[1] & streams[3])
    assert not (streams[1] | streams[2] | streams[3]) & set(range(2000))
    x_far, _, _, _ = toy.make_split(1000, n_per_class=8)
    _, _, x_test0, _ = toy.make_split(0, n_per_class=8)
    assert not torch.equal(x_far, x_test0)
    x1, _ = toy.make_subspace_data(8, seed=mix_seed(1000, 1))  # make_split's streams
    assert torch.equal(x_far, x1)


def test_numpy_integer_toy_seeds_are_accepted():
    runs = toy.train_toy_batch(seeds=[np.int64(3)], epochs=0, n_per_class=8)
    assert len(runs) == 1
