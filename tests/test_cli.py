"""Tests for the CLI ``python -m cl_lib.train``: the quick profile end to end on a tiny synthetic
ImageFolder (through a real subprocess), and how flags, --config and --profile combine."""
import json
import os
import subprocess
import sys

import pytest

from cl_lib.train import PROFILE_PRESETS, TrainConfig, config_from_args

from image_folders import make_image_folder


def test_quick_profile_end_to_end(tmp_path):
    folder = make_image_folder(tmp_path / "imgs")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cl_lib.train", "--profile", "quick", "--dataset", f"imagefolder:{folder}",
           "--cache-dir", str(tmp_path / "cache"), "--batch-size", "16", "--out", str(out)]
    env = {**os.environ, "CL_BOOK_PROFILE": "full"}  # --profile wins over the environment
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epoch 1/1" in proc.stdout and "knn_acc" in proc.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["profile"] == "quick" and res["config"]["arch"] == PROFILE_PRESETS["quick"]["arch"]
    assert res["config"]["batch_size"] == 16 and res["finished"]
    for key in ("config", "hardware", "torch_version", "library_commit", "date_utc", "wall_time_s",
                "history", "final", "metrics", "peak_gpu_memory_gb", "images_per_s"):
        assert key in res, key
    assert set(res["final"]) == {"knn_acc", "linear_probe_acc", "linear_probe_train_acc"}
    assert res["images_per_s"] > 0 and (out / "checkpoint.pt").exists()

    # --resume on a finished run trains nothing more and keeps the history
    proc = subprocess.run(cmd + ["--resume", "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == ""  # --quiet
    again = json.loads((out / "results.json").read_text())
    assert again["history"] == res["history"] and again["final"]["knn_acc"] == res["final"]["knn_acc"]


def test_precedence_defaults_profile_config_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("CL_BOOK_PROFILE", "full")
    assert config_from_args([]) == TrainConfig(profile="full")  # full = the TrainConfig defaults
    quick = config_from_args(["--profile", "quick"])
    assert quick.arch == "small_cnn" and quick.profile == "quick"
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"arch": "resnet50", "epochs": 7, "loss_kwargs": {"tau": 0.2}}))
    c = config_from_args(["--profile", "quick", "--config", str(conf), "--epochs", "3", "--out", "o"])
    assert (c.arch, c.epochs, c.loss_kwargs, c.out_dir, c.width) == ("resnet50", 3, {"tau": 0.2}, "o", 16)


def test_flag_types():
    c = config_from_args(["--loss", "dhel", "--loss-kwargs", '{"tau": 0.3}', "--lr", "0.5", "--bf16", "false",
                          "--compile", "true", "--grad-clip", "1", "--subset", "none", "--resume", "--quiet"])
    assert (c.loss, c.loss_kwargs, c.lr, c.bf16, c.compile, c.grad_clip, c.subset, c.resume, c.quiet) == \
        ("dhel", {"tau": 0.3}, 0.5, False, True, 1.0, None, True, True)
    c = config_from_args(["--augment-kwargs", '{"jitter": [0.2, 0.2, 0.2, 0.1], "scale": [0.8, 1.0]}',
                          "--image-size", "224"])
    assert c.augment_kwargs == {"jitter": [0.2, 0.2, 0.2, 0.1], "scale": [0.8, 1.0]} and c.image_size == 224
    assert config_from_args(["--image-size", "none"]).image_size is None


def test_bad_cli_input(tmp_path):
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"epochz": 3}))
    with pytest.raises(ValueError, match="epochz"):
        config_from_args(["--config", str(conf)])
    with pytest.raises(SystemExit):
        config_from_args(["--epochs", "many"])
    with pytest.raises(SystemExit):
        config_from_args(["--profile", "huge"])
