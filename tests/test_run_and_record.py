"""Tests for the "run and record" part of cl_lib.experiments.results: one train() call
with an epoch-end callback, no data set reloaded per snapshot, atomic results files, and
peak_lr on records trained with the default learning rate."""

import json

import pytest

import cl_lib.data
import cl_lib.io
import cl_lib.train as T
from cl_lib.experiments import results as R

from image_folders import make_image_folder


def test_peak_lr_of_a_default_lr_record():
    """The trainer records lr=None for the default lr (peak_lr raised TypeError)."""
    rec = {"config": {"lr": None, "batch_size": 512, "optimizer": "sgd"}}
    assert R.peak_lr(rec) == pytest.approx(T.DEFAULT_LR["sgd"] * 512 / 256)
    rec["config"]["optimizer"] = "lars"
    assert R.peak_lr(rec) == pytest.approx(T.DEFAULT_LR["lars"] * 2)
    assert R.peak_lr({**rec, "peak_lr": 0.3}) == 0.3  # what the trainer wrote wins
    assert R.peak_lr({"config": {"lr": 0.1, "batch_size": 128}}) == pytest.approx(0.05)
    assert R.lookup(rec, R.peak_lr) == pytest.approx(2.0)


def test_train_and_record_trains_once_and_loads_data_once(tmp_path, monkeypatch):
    folder = make_image_folder(tmp_path / "imgs")
    calls = {"train": 0, "load": 0, "atomic": []}
    real_train, real_load, real_atomic = (
        T.train,
        cl_lib.data.load_dataset,
        cl_lib.io.write_atomic,
    )

    def count_train(*a, **kw):
        calls["train"] += 1
        return real_train(*a, **kw)

    def count_load(*a, **kw):
        calls["load"] += 1
        return real_load(*a, **kw)

    def spy_atomic(path, write):
        calls["atomic"].append(str(path))
        return real_atomic(path, write)

    monkeypatch.setattr(T, "train", count_train)
    monkeypatch.setattr(cl_lib.data, "load_dataset", count_load)  # all loads go here
    monkeypatch.setattr(cl_lib.io, "write_atomic", spy_atomic)
    save = tmp_path / "out" / "run.json"
    flags = [
        "--profile",
        "quick",
        "--dataset",
        f"imagefolder:{folder}",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--width",
        "4",
        "--proj-dim",
        "8",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--probe-steps",
        "5",
        "--subset",
        "none",
        "--test-subset",
        "none",
        "--quiet",
    ]
    record = R.train_and_record(flags, save, track_every=2)
    assert calls["train"] == 1  # one run, not one per tracking chunk
    assert calls["load"] == 2  # train + test split, once each
    assert str(save) in calls["atomic"]  # written atomically
    saved = json.loads(save.read_text())
    assert [t["epoch"] for t in saved["extra"]["tracking"]] == [2, 3]
    assert saved["extra"]["tracking"][-1]["knn_acc"] == saved["final"]["knn_acc"]
    assert (
        saved["extra"]["tracking"][0]["knn_acc"] is None
    )  # no eval_every: none along the way
    assert set(saved["extra"]["final"]) >= {
        "embedding_variance_features",
        "effective_rank",
        "singular_values_z",
        "embedding_variance_sphere_features",
    }
    assert saved["command"].startswith(
        f"python -m cl_lib.experiments.results {save} "
        f"--track-every 2 -- --profile quick"
    )
    assert record["diverged"] is False and saved["finished"]


def test_train_and_record_untrained_baseline(tmp_path):
    """--epochs 0: the untrained network, recorded like any run (no tracking)."""
    folder = make_image_folder(tmp_path / "imgs")
    save = tmp_path / "init.json"
    flags = [
        "--profile",
        "quick",
        "--dataset",
        f"imagefolder:{folder}",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--width",
        "4",
        "--proj-dim",
        "8",
        "--epochs",
        "0",
        "--batch-size",
        "16",
        "--probe-steps",
        "5",
        "--quiet",
    ]
    saved = R.train_and_record(flags, save, track_every=1)
    assert (
        saved["finished"] and saved["epochs_completed"] == 0 and saved["history"] == []
    )
    assert 0 <= saved["final"]["knn_acc"] <= 1 and "tracking" not in saved["extra"]
    assert saved["extra"]["final"]["effective_rank_features"] > 0


def test_train_and_record_stopped_and_resumed_equals_one_go(tmp_path):
    """With --out a recorded run stopped after an epoch and resumed (--resume)
    ends with the same accuracies and the same tracked snapshots as one uninterrupted
    run, and its wall time covers both processes."""
    folder = make_image_folder(tmp_path / "imgs")
    flags = [
        "--profile",
        "quick",
        "--dataset",
        f"imagefolder:{folder}",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--width",
        "4",
        "--proj-dim",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--probe-steps",
        "5",
        "--quiet",
    ]
    whole = R.train_and_record(flags, tmp_path / "whole.json", track_every=1)
    ckpt = ["--out", str(tmp_path / "ckpt")]
    first = R.train_and_record(
        flags + ckpt + ["--stop-after-epochs", "1"], tmp_path / "part.json", 1
    )
    assert first["epochs_completed"] == 1 and not first["finished"]
    resumed = R.train_and_record(
        flags + ckpt + ["--resume"], tmp_path / "part.json", track_every=1
    )
    assert resumed["finished"] and resumed["epochs_completed"] == 2
    assert resumed["final"]["knn_acc"] == whole["final"]["knn_acc"]
    track = resumed["extra"]["tracking"]
    assert [t["epoch"] for t in track] == [1, 2]
    for a, b in zip(track, whole["extra"]["tracking"]):
        assert a["effective_rank"] == pytest.approx(b["effective_rank"], rel=1e-5)
    assert resumed["wall_time_s"] > first["wall_time_s"]
