"""Tests for cl_lib.train: schedule, label masking, a tiny end-to-end run, exact resume,
the NaN guard, atomic checkpoints, and config validation. All on CPU, on a tiny
synthetic ImageFolder (3 colour-coded classes of 16x16 images)."""

import json
import math

import pytest
import torch

import cl_lib.io as io_mod
import cl_lib.train as train_mod
from cl_lib.train import NonFiniteLossError, TrainConfig, lr_at, mask_labels, train

from cl_lib.io import write_atomic
from cl_lib.stats import decode_correct
from image_folders import make_image_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("imgs"))


@pytest.fixture
def cfg(folder, tmp_path):
    """A tiny run: 48 training images, batch 16 -> 3 steps per epoch."""
    return TrainConfig(
        dataset=f"imagefolder:{folder}",
        cache_dir=str(tmp_path / "cache"),
        arch="small_cnn",
        width=4,
        proj_dim=8,
        proj_hidden_dim=16,
        epochs=2,
        batch_size=16,
        warmup_epochs=1,
        lr=0.1,
        linear_probe=False,
        metrics=False,
        knn_k=10,
        quiet=True,
        progress=False,
    )


def test_lr_schedule():
    base, total, warm = 1.0, 100, 10
    lrs = [lr_at(s, total, base, warm) for s in range(total)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(
        1.0
    )  # linear warm-up to base
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then cosine decay
    assert lrs[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lr_at(total, total, base, warm, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_at(0, 10, 2.0, 0) == pytest.approx(2.0)  # no warm-up


def test_mask_labels():
    y = torch.arange(1000) % 10
    m = mask_labels(y, 0.3, seed=1)
    assert (m == -1).sum() == 700 and torch.equal(m[m >= 0], y[m >= 0])
    assert torch.equal(m, mask_labels(y, 0.3, seed=1)) and not torch.equal(
        m, mask_labels(y, 0.3, seed=2)
    )
    assert torch.equal(mask_labels(y, 1.0), y) and (mask_labels(y, 0.0) == -1).all()
    with pytest.raises(ValueError):
        mask_labels(y, 1.5)


def test_train_end_to_end_writes_results(cfg, tmp_path):
    cfg.out_dir, cfg.linear_probe, cfg.metrics = str(tmp_path / "run"), True, True
    cfg.probe_steps = 20
    res = train(cfg)
    assert [h["epoch"] for h in res.history] == [1, 2]
    for h in res.history:
        assert set(h) >= {
            "loss",
            "lr",
            "images_per_s",
            "epoch_time_s",
        } and math.isfinite(h["loss"])
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["finished"] and saved["epochs_completed"] == 2
    assert set(saved["final"]) == {
        "knn_acc",
        "linear_probe_acc",
        "linear_probe_train_acc",
        "knn_correct",
        "linear_probe_correct",
    }
    assert 0.0 <= saved["final"]["knn_acc"] <= 1.0
    # per-image correctness beside the accuracies, one entry per test image
    for name in ("knn", "linear_probe"):
        correct = decode_correct(saved["final"][f"{name}_correct"])
        assert len(correct) == 24
        assert correct.mean() == pytest.approx(saved["final"][f"{name}_acc"])
    assert not any(k.endswith("_correct") for k in saved["metrics"])
    assert set(saved["metrics"]) >= {
        "alignment",
        "uniformity",
        "effective_rank",
        "wasserstein_uniformity",
    }
    assert saved["hardware"]["device"] == "cpu" and saved["peak_gpu_memory_gb"] is None
    assert saved["dataset"]["train_size"] == 48 and saved["dataset"]["num_classes"] == 3
    assert (
        saved["config"]["batch_size"] == 16
        and saved["torch_version"] == torch.__version__
    )
    assert isinstance(saved["library_commit"], str) and saved["date_utc"].endswith(
        "+00:00"
    )
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    assert not list(
        (tmp_path / "run").glob(".*tmp*")
    )  # atomic writes leave no temporary files


def test_resume_is_bit_identical(cfg, tmp_path):
    """4 epochs straight == 2 epochs, stop, resume for 2 more (weights bit for bit)."""
    cfg.epochs = 4
    straight = train(TrainConfig(**{**vars(cfg), "out_dir": str(tmp_path / "a")}))
    first = TrainConfig(
        **{**vars(cfg), "out_dir": str(tmp_path / "b"), "stop_after_epochs": 2}
    )
    part = train(first)
    assert len(part.history) == 2 and not part.results["finished"]
    resumed = train(
        TrainConfig(**{**vars(cfg), "out_dir": str(tmp_path / "b"), "resume": True})
    )
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert resumed.results["final"]["knn_acc"] == straight.results["final"]["knn_acc"]
    # resuming a finished run with another lr: nothing left to train, but a warning
    with pytest.warns(UserWarning, match="different lr"):
        again = train(
            TrainConfig(
                **{
                    **vars(cfg),
                    "out_dir": str(tmp_path / "b"),
                    "resume": True,
                    "lr": 0.5,
                }
            )
        )
    assert again.history == resumed.history


def test_nan_guard_keeps_last_good_checkpoint(cfg, tmp_path, monkeypatch):
    cfg.out_dir, cfg.epochs = str(tmp_path / "run"), 3
    real_get_loss, calls = train_mod.get_loss, {"n": 0}

    def poisoned_get_loss(name, **kw):
        loss = real_get_loss(name, **kw)

        def wrapped(z1, z2, labels=None):
            calls["n"] += 1
            out = loss(z1, z2, labels)
            return out * float("nan") if calls["n"] == 5 else out  # step 2 of epoch 2

        return wrapped

    monkeypatch.setattr(train_mod, "get_loss", poisoned_get_loss)
    with pytest.raises(
        NonFiniteLossError,
        match=r"loss became nan at epoch 2, by step 3/3.*after epoch 1\)",
    ) as err:
        train(cfg)
    assert str(tmp_path) not in str(err.value) and "checkpoint.pt" in str(
        err.value
    )  # no machine paths
    assert issubclass(NonFiniteLossError, RuntimeError)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert all(
        torch.isfinite(v).all()
        for v in state["model"].values()
        if v.is_floating_point()
    )
    assert not (tmp_path / "run" / "results.json").exists()


def test_nan_embeddings_stop_with_nonfinite_loss_error(cfg, tmp_path, monkeypatch):
    """A diverged network (NaN embeddings, the usual way a run blows up: finite loss,
    Inf gradients, NaN weights) ends in NonFiniteLossError, not in the loss's
    ValueError."""
    cfg.out_dir, cfg.epochs = str(tmp_path / "run"), 3
    real_build_model, calls = train_mod.build_model, {"n": 0}

    def poisoned_build_model(*args, **kw):
        model = real_build_model(*args, **kw)

        def hook(module, inputs, output):
            calls["n"] += 1
            return (
                output * float("nan") if calls["n"] == 5 and module.training else output
            )

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(train_mod, "build_model", poisoned_build_model)
    with pytest.raises(
        NonFiniteLossError, match=r"epoch 2, by step 3/3.*after epoch 1\)"
    ):
        train(cfg)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1


def test_resume_loads_the_checkpoint_on_cpu(cfg, tmp_path, monkeypatch):
    """RNG states must come back as CPU ByteTensors (torch.set_rng_state rejects CUDA
    tensors), so the checkpoint is loaded with map_location="cpu" whatever the training
    device."""
    cfg.epochs, cfg.out_dir, cfg.stop_after_epochs = 2, str(tmp_path / "run"), 1
    train(cfg)
    real_load, seen = torch.load, []

    def spy_load(*args, **kw):
        if str(args[0]).endswith("checkpoint.pt"):
            seen.append(kw.get("map_location"))
        return real_load(*args, **kw)

    monkeypatch.setattr(train_mod.torch, "load", spy_load)
    res = train(TrainConfig(**{**vars(cfg), "resume": True, "stop_after_epochs": None}))
    assert seen == ["cpu"] and [h["epoch"] for h in res.history] == [1, 2]


def test_a_run_resumed_under_another_commit_records_both(cfg, tmp_path, monkeypatch):
    """A checkpoint remembers the commit that trained it; resuming under another one
    warns and records it as ``library_commit_at_start`` (never silently one commit)."""
    cfg.epochs, cfg.out_dir, cfg.stop_after_epochs = 2, str(tmp_path / "run"), 1
    monkeypatch.setattr(train_mod, "library_commit", lambda **kw: ("a" * 40, False))
    train(cfg)
    again = TrainConfig(**{**vars(cfg), "resume": True, "stop_after_epochs": None})
    monkeypatch.setattr(train_mod, "library_commit", lambda **kw: ("b" * 40, False))
    with pytest.warns(UserWarning, match="started at commit aaaaaaaaaa"):
        res = train(again)
    assert res.results["library_commit"] == "b" * 40
    assert res.results["library_commit_at_start"] == "a" * 40


def test_a_run_resumed_under_its_own_commit_records_one(cfg, tmp_path, monkeypatch):
    cfg.epochs, cfg.out_dir, cfg.stop_after_epochs = 2, str(tmp_path / "run"), 1
    monkeypatch.setattr(train_mod, "library_commit", lambda **kw: ("a" * 40, False))
    train(cfg)
    res = train(TrainConfig(**{**vars(cfg), "resume": True, "stop_after_epochs": None}))
    assert "library_commit_at_start" not in res.results


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_text("good")

    def broken_write(p):
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, broken_write)
    assert path.read_text() == "good" and sorted(tmp_path.iterdir()) == [
        path
    ]  # no stray .tmp file
    write_atomic(path, lambda p: p.write_text("new"))
    assert path.read_text() == "new" and sorted(tmp_path.iterdir()) == [path]


def test_supervised_loss_sees_masked_labels(cfg, monkeypatch):
    seen = []

    def spy(z1, z2, labels=None):
        seen.append(labels.clone())
        return (z1 - z2).pow(2).mean()

    cfg.loss, cfg.label_fraction, cfg.epochs = spy, 0.25, 1
    res = train(cfg)
    labels = torch.cat(seen)
    assert labels.shape == (48,) and (labels == -1).sum() == 36  # 75% of 48 hidden
    assert res.results["config"]["loss"] == "spy"


def test_other_losses_and_adamw_run(cfg):
    cfg.epochs, cfg.optimizer, cfg.lr, cfg.grad_clip = 1, "adamw", 1e-3, 1.0
    for loss, kw in [("cloa", {}), ("dhel", {"tau": 0.3})]:
        cfg.loss, cfg.loss_kwargs = loss, kw
        assert math.isfinite(train(cfg).history[0]["loss"])


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", -1),
        ("batch_size", 1),
        ("label_fraction", 1.5),
        ("optimizer", "lamb"),
        ("grad_clip", 0.0),
        ("lr", -1.0),
        ("checkpoint_every", 0),
        ("resume", True),
        ("image_size", 0),
        ("augment_kwargs", {"size": 8}),
        ("augment_kwargs", {"jiter": 1}),
    ],
)
def test_bad_config(cfg, field, value):
    setattr(cfg, field, value)
    with pytest.raises(ValueError):
        train(cfg)


def test_batch_larger_than_data(cfg):
    cfg.batch_size = 64
    with pytest.raises(ValueError, match="batch_size"):
        train(cfg)


def test_make_augment_overrides_reproduce_the_weak_recipe(cfg):
    # Li & Pimentel-Alarcón 2024, Sec. 5: ColorJitter(0.2, 0.2, 0.2, 0.1), crop scale
    # (0.8, 1)
    weak = {"jitter": [0.2, 0.2, 0.2, 0.1], "scale": [0.8, 1.0]}
    cfg.dataset, cfg.augment_kwargs = "cifar10", weak
    aug = train_mod.make_augment(cfg, 32)
    assert (aug.jitter, aug.scale, aug.size, aug.gray_p) == (
        (0.2, 0.2, 0.2, 0.1),
        (0.8, 1.0),
        32,
        0.2,
    )
    cfg.augment_kwargs = {}
    assert train_mod.make_augment(cfg, 32).jitter == (
        0.4,
        0.4,
        0.4,
        0.1,
    )  # the preset is untouched
    cfg.dataset, cfg.augment_kwargs = "imagefolder:x", {"blur_p": 0.0, "jitter_p": 1.0}
    aug = train_mod.make_augment(cfg, 96)
    assert (aug.blur_p, aug.jitter_p, aug.jitter, aug.size) == (
        0.0,
        1.0,
        (0.8, 0.8, 0.8, 0.2),
        96,
    )
    cfg.augment_kwargs = {"hue": 0.1}
    with pytest.raises(ValueError, match="hue"):
        train_mod.make_augment(cfg, 32)


def test_image_size_and_metrics_along_training(cfg, tmp_path):
    """Views resized to image_size; with eval_every, history holds kNN and the geometry
    metrics (incl. the embedding variance of Li & Pimentel-Alarcón 2024), and the final
    metrics hold them too.
    """
    cfg.image_size, cfg.eval_every, cfg.epochs, cfg.metrics = 24, 1, 3, True
    cfg.metrics_points, cfg.augment_kwargs = 32, {"scale": [0.8, 1.0]}
    cfg.out_dir = str(tmp_path / "run")
    res = train(cfg)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["config"]["image_size"] == 24 and saved["config"][
        "augment_kwargs"
    ] == {"scale": [0.8, 1.0]}
    for h in res.history[
        :2
    ]:  # evaluated after epochs 1 and 2; epoch 3 is the final evaluation
        assert 0.0 <= h["knn_acc"] <= 1.0
        assert set(h["metrics"]) >= {
            "embedding_variance",
            "embedding_variance_sphere",
            "uniformity",
            "alignment",
            "effective_rank",
        }
        assert 0.0 <= h["metrics"]["embedding_variance_sphere"] <= 1.0 + 1e-6
    assert "metrics" not in res.history[2] and "knn_acc" not in res.history[2]
    assert set(saved["metrics"]) >= {
        "embedding_variance",
        "embedding_variance_sphere",
        "embedding_variance_features",
    }
    x = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    assert train_mod.make_augment(cfg, 24)(x, torch.Generator()).shape == (2, 3, 24, 24)
    with torch.no_grad():  # the model was built for 24x24 inputs
        assert res.model(torch.zeros(2, 3, 24, 24)).shape == (2, cfg.proj_dim)


def test_library_commit_counts_untracked_library_files(tmp_path, monkeypatch):
    import subprocess

    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    (tmp_path / "cl_lib").mkdir()
    (tmp_path / "cl_lib" / "train.py").write_text("# x\n")
    (tmp_path / ".gitignore").write_text("*.pyc\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "init")
    monkeypatch.setattr(io_mod, "__file__", str(tmp_path / "cl_lib" / "io.py"))
    head, dirty = io_mod.library_commit()
    assert len(head) == 40 and dirty is False
    (tmp_path / "cl_lib" / "cache.pyc").write_text("")  # ignored: still clean
    (tmp_path / "notes.md").write_text("")  # outside the library: still clean
    assert io_mod.library_commit() == (head, False)
    (tmp_path / "cl_lib" / "new_module.py").write_text("# not committed yet\n")
    assert io_mod.library_commit() == (head, True)
    (tmp_path / "cl_lib" / "new_module.py").unlink()
    (tmp_path / "cl_lib" / "train.py").write_text(
        "# changed\n"
    )  # a modified tracked file
    assert io_mod.library_commit() == (head, True)


def test_heldout_metrics_use_every_class(cfg, monkeypatch):
    """Splits are stored sorted by class, so the metrics subset must be class-balanced,
    not the first ``metrics_points`` images (which would be the first class or two)."""
    picked = []
    real = train_mod.balanced_subset

    def spy(labels, n, seed=0):
        idx = real(labels, n, seed=seed)
        picked.append(labels[idx])
        return idx

    monkeypatch.setattr(train_mod, "balanced_subset", spy)
    train(
        TrainConfig(**{**vars(cfg), "epochs": 1, "metrics": True, "metrics_points": 6})
    )
    counts = torch.bincount(picked[-1], minlength=3)
    assert counts.tolist() == [2, 2, 2]


# ----------------------------------------------------------------- sync-free step,
# callbacks
def _poison_at(monkeypatch, call: int):
    """The loss becomes NaN at its ``call``-th evaluation (1-based)."""
    real_get_loss, calls = train_mod.get_loss, {"n": 0}

    def poisoned_get_loss(name, **kw):
        loss = real_get_loss(name, **kw)

        def wrapped(z1, z2, labels=None):
            calls["n"] += 1
            out = loss(z1, z2, labels)
            return out * float("nan") if calls["n"] == call else out

        return wrapped

    monkeypatch.setattr(train_mod, "get_loss", poisoned_get_loss)


@pytest.mark.parametrize("bad_step, check_every", [(3, 5), (7, 5), (2, 20)])
def test_nonfinite_loss_trips_within_check_every_steps(
    cfg, monkeypatch, bad_step, check_every
):
    """48 images, batch 4: 12 steps per epoch; the running loss is read back every
    ``check_every`` steps and at the end of the epoch, so a NaN is found within K steps.
    """
    cfg.batch_size, cfg.epochs, cfg.check_every = 4, 2, check_every
    _poison_at(monkeypatch, bad_step)
    with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 1") as err:
        train(cfg)
    assert err.value.epoch == 1 and bad_step <= err.value.step < bad_step + check_every
    assert err.value.step % check_every == 0 or err.value.step == 12
    assert err.value.checkpoint_epoch is None and "no checkpoint was written" in str(
        err.value
    )


def test_progress_bar_updates_every_check_every_steps(cfg, monkeypatch):
    import tqdm.auto

    updates, postfix = [], []

    class FakeBar:
        def __init__(self, *args, total=None, **kw):
            self.total = total

        def update(self, n):
            updates.append(n)

        def set_postfix(self, **kw):
            postfix.append(kw)

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    cfg.batch_size, cfg.epochs, cfg.check_every, cfg.progress = 4, 1, 5, True
    res = train(cfg)
    assert updates == [5, 5, 2]  # steps 5, 10 and the end of the epoch (12)
    assert float(postfix[-1]["loss"]) == pytest.approx(res.history[0]["loss"], abs=1e-4)


def test_callbacks_see_every_epoch_and_do_not_change_training(cfg):
    seen = []

    def record(epoch, model, state):
        assert model is state.model and model.training
        assert len(state.history) == epoch == state.epoch
        seen.append((epoch, state.evaluate()["knn_acc"]))  # evaluating must not disturb

    cfg.epochs = 3
    with_cb = train(cfg, callbacks=[record])
    plain = train(TrainConfig(**vars(cfg)))
    assert [e for e, _ in seen] == [1, 2, 3] and all(0 <= a <= 1 for _, a in seen)
    assert seen[-1][1] == with_cb.results["final"]["knn_acc"]
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, with_cb.model.state_dict()[k]), k
    assert with_cb.state.test_x.shape[0] == 24 and with_cb.state.epoch == 3


def test_zero_epochs_evaluates_the_untrained_network(cfg, tmp_path):
    cfg.epochs, cfg.out_dir, cfg.linear_probe, cfg.probe_steps = (
        0,
        str(tmp_path / "run"),
        True,
        5,
    )
    res = train(cfg)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (
        saved["finished"] and saved["epochs_completed"] == 0 and saved["history"] == []
    )
    assert set(saved["final"]) == {
        "knn_acc",
        "linear_probe_acc",
        "linear_probe_train_acc",
        "knn_correct",
        "linear_probe_correct",
    }
    torch.manual_seed(train_mod.mix_seed(cfg.seed, 0) % 2**32)
    fresh = train_mod.build_model(
        "small_cnn", proj_dim=8, proj_hidden_dim=16, image_size=16, width=4
    )
    for k, v in fresh.state_dict().items():  # the initial weights, untouched
        assert torch.equal(v, res.model.state_dict()[k]), k


def test_results_json_is_written_atomically(cfg, tmp_path, monkeypatch):
    written = []
    real = io_mod.write_atomic

    def spy(path, write):
        written.append(str(path))
        return real(path, write)

    monkeypatch.setattr(io_mod, "write_atomic", spy)
    cfg.out_dir, cfg.epochs = str(tmp_path / "run"), 1
    train(cfg)
    assert str(tmp_path / "run" / "results.json") in written
    assert str(tmp_path / "run" / "checkpoint.pt") in written


# ------------------------------------------------------------------------------------
# LARS
def test_lars_step_matches_the_simclr_pytorch_rule():
    """LARS (You et al. 2017) as in simclr-pytorch: weight decay added to the gradient,
    then the gradient scaled by trust * |w| / |g|, then SGD with momentum; the group
    with lars=False (biases, BatchNorm) gets plain SGD without weight decay."""
    torch.manual_seed(0)
    w = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    gw, gb = torch.randn(4, 3), torch.randn(4)
    opt = train_mod.LARS(
        [
            {"params": [w], "weight_decay": 1e-2},
            {"params": [b], "weight_decay": 0.0, "lars": False},
        ],
        lr=0.5,
        momentum=0.9,
        trust_coefficient=1e-3,
    )
    w0, b0 = w.detach().clone(), b.detach().clone()
    w.grad, b.grad = gw.clone(), gb.clone()
    opt.step()
    g = gw + 1e-2 * w0
    expected_w = (
        w0 - 0.5 * 1e-3 * w0.norm() / g.norm() * g
    )  # first step: buffer = gradient
    torch.testing.assert_close(w.detach(), expected_w)
    torch.testing.assert_close(b.detach(), b0 - 0.5 * gb)
    assert opt.param_groups[0]["weight_decay"] == 1e-2  # restored after the step
    z = torch.zeros(3, requires_grad=True)  # |w| = 0: no adaptation, no NaN
    zopt = train_mod.LARS([z], lr=0.1)
    z.grad = torch.ones(3)
    zopt.step()
    torch.testing.assert_close(z.detach(), -0.1 * torch.ones(3))


def test_lars_option_groups_and_training(cfg):
    cfg.optimizer, cfg.weight_decay = "lars", 1e-6
    model = train_mod.build_model("small_cnn", proj_dim=8, width=4)
    opt = train_mod.build_optimizer(model, cfg)
    decay, no_decay = opt.param_groups
    assert isinstance(opt, train_mod.LARS) and opt.trust_coefficient == 1e-3
    assert decay["lars"] and decay["weight_decay"] == 1e-6 and decay["momentum"] == 0.9
    assert not no_decay["lars"] and no_decay["weight_decay"] == 0.0
    assert all(p.ndim <= 1 for p in no_decay["params"]) and all(
        p.ndim > 1 for p in decay["params"]
    )
    cfg.epochs, cfg.lr = 1, None
    res = train(cfg)
    assert math.isfinite(res.history[0]["loss"])
    assert res.results["peak_lr"] == pytest.approx(
        train_mod.DEFAULT_LR["lars"] * 16 / 256
    )


# ----------------------------------------------------------------------------- CUDA
# only
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("loss", ["sync_free_infonce", "infonce", "dhel", "kcl"])
def test_epoch_steps_never_synchronise_the_gpu(cfg, loss):
    """The steps between two loss checks (loader, augmentation, lr update, forward,
    loss, backward, optimiser) run under ``torch.cuda.set_sync_debug_mode("error")``."""
    import torch.nn.functional as F

    def sync_free_infonce(z1, z2, labels=None):
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        sim = (z @ z.T / 0.5).fill_diagonal_(float("-inf"))
        n = z1.shape[0]
        target = torch.arange(2 * n, device=z.device).roll(n)  # i <-> i + n
        return F.cross_entropy(sim, target)

    cfg.device, cfg.loss = (
        "cuda",
        (sync_free_infonce if loss == "sync_free_infonce" else loss),
    )
    cfg.epochs, cfg.batch_size, cfg.check_every = 1, 4, 1000
    state = train_mod._setup(cfg)
    train_mod._load_data(state)
    train_mod._build(state)
    loss_sum = torch.zeros((), device=state.device)

    def step(i, views, labels):
        nonlocal loss_sum
        for group in state.optimizer.param_groups:
            group["lr"] = train_mod.lr_at(i, 12, state.base_lr, 0)
        loss_sum += train_mod.train_step(
            state.step_model,
            state.loss_fn,
            state.optimizer,
            views,
            labels,
            state.bf16,
            state.channels_last,
        )

    batches = iter(train_mod._epoch_loader(state, 0))
    step(0, *next(batches))  # warm-up: first-call set-ups (e.g. mean/std to the device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i, (views, labels) in enumerate(batches, start=1):
            step(i, views, labels)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert math.isfinite(float(loss_sum))


def test_library_commit_of_the_loaded_modules_ignores_unimported_edits():
    """The trainer's provenance counts only the library code the run imported."""
    files = io_mod.loaded_library_files()
    assert "cl_lib/io.py" in files and "cl_lib/train.py" in files
    assert all(f.startswith("cl_lib/") for f in files)
    head, dirty = io_mod.library_commit(only_loaded=True)
    whole = io_mod.library_commit()
    assert head == whole[0]
    # the loaded files are a subset of the package: clean package => clean run
    assert not (whole[1] is False and dirty)


def test_bn_recalibrate_reestimates_statistics_not_weights(cfg):
    """--bn-recalibrate (epochs=0 only): BatchNorm's running statistics are
    re-estimated on the training images; every weight stays as initialised."""
    import dataclasses

    plain = train(dataclasses.replace(cfg, epochs=0))
    recal = train(dataclasses.replace(cfg, epochs=0, bn_recalibrate=True))
    p0, p1 = plain.model.state_dict(), recal.model.state_dict()
    means = [k for k in p0 if k.endswith("running_mean")]
    assert means, "small_cnn has BatchNorm layers"
    for k in p0:
        if k.endswith(("running_mean", "running_var")):
            continue
        if k.endswith("num_batches_tracked"):
            continue
        assert torch.equal(p0[k], p1[k]), k  # same initial weights
    assert all(torch.all(p0[k] == 0) for k in means)  # initial statistics
    assert any(not torch.allclose(p1[k], p0[k]) for k in means)
    with pytest.raises(ValueError, match="bn_recalibrate is for the untrained"):
        train(dataclasses.replace(cfg, epochs=1, bn_recalibrate=True))
