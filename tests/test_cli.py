"""Tests for the CLI ``python -m cl_lib.train``: the quick profile end to end on a tiny
synthetic ImageFolder (through a real subprocess), and how flags, --config and --profile
combine.
"""

import json
import os
import subprocess
import sys

import pytest

import cl_lib.train as train_mod
from cl_lib.train import PROFILE_PRESETS, TrainConfig, config_from_args

from image_folders import make_image_folder


def test_quick_profile_end_to_end(tmp_path):
    folder = make_image_folder(tmp_path / "imgs")
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "cl_lib.train",
        "--profile",
        "quick",
        "--dataset",
        f"imagefolder:{folder}",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--batch-size",
        "16",
        "--out",
        str(out),
    ]
    env = {
        **os.environ,
        "CL_BOOK_PROFILE": "full",
    }  # --profile wins over the environment
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epoch 1/1" in proc.stdout and "knn_acc" in proc.stdout
    res = json.loads((out / "results.json").read_text())
    assert (
        res["profile"] == "quick"
        and res["config"]["arch"] == PROFILE_PRESETS["quick"]["arch"]
    )
    assert res["config"]["batch_size"] == 16 and res["finished"]
    for key in (
        "config",
        "hardware",
        "torch_version",
        "library_commit",
        "date_utc",
        "wall_time_s",
        "history",
        "final",
        "metrics",
        "peak_gpu_memory_gb",
        "images_per_s",
    ):
        assert key in res, key
    assert set(res["final"]) == {
        "knn_acc",
        "linear_probe_acc",
        "linear_probe_train_acc",
    }
    assert res["images_per_s"] > 0 and (out / "checkpoint.pt").exists()

    # --resume on a finished run trains nothing more and keeps the history
    proc = subprocess.run(
        cmd + ["--resume", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == ""  # --quiet
    again = json.loads((out / "results.json").read_text())
    assert (
        again["history"] == res["history"]
        and again["final"]["knn_acc"] == res["final"]["knn_acc"]
    )


def test_precedence_defaults_profile_config_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("CL_BOOK_PROFILE", "full")
    assert config_from_args([]) == TrainConfig(
        profile="full"
    )  # full = the TrainConfig defaults
    quick = config_from_args(["--profile", "quick"])
    assert quick.arch == "small_cnn" and quick.profile == "quick"
    conf = tmp_path / "c.json"
    conf.write_text(
        json.dumps({"arch": "resnet50", "epochs": 7, "loss_kwargs": {"tau": 0.2}})
    )
    c = config_from_args(
        ["--profile", "quick", "--config", str(conf), "--epochs", "3", "--out", "o"]
    )
    assert (c.arch, c.epochs, c.loss_kwargs, c.out_dir, c.width) == (
        "resnet50",
        3,
        {"tau": 0.2},
        "o",
        16,
    )


def test_flag_types():
    c = config_from_args(
        [
            "--loss",
            "dhel",
            "--loss-kwargs",
            '{"tau": 0.3}',
            "--lr",
            "0.5",
            "--bf16",
            "false",
            "--compile",
            "true",
            "--grad-clip",
            "1",
            "--subset",
            "none",
            "--resume",
            "--quiet",
        ]
    )
    assert (
        c.loss,
        c.loss_kwargs,
        c.lr,
        c.bf16,
        c.compile,
        c.grad_clip,
        c.subset,
        c.resume,
        c.quiet,
    ) == ("dhel", {"tau": 0.3}, 0.5, False, True, 1.0, None, True, True)
    c = config_from_args(
        [
            "--augment-kwargs",
            '{"jitter": [0.2, 0.2, 0.2, 0.1], "scale": [0.8, 1.0]}',
            "--image-size",
            "224",
        ]
    )
    assert (
        c.augment_kwargs == {"jitter": [0.2, 0.2, 0.2, 0.1], "scale": [0.8, 1.0]}
        and c.image_size == 224
    )
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


# ------------------------------------------------------------------- bad input, real
# CLI
BAD_INPUTS = [  # each through a real subprocess (python -m cl_lib.train)
    (["--epochs", "-3"], "epochs must be >= 0, got -3"),
    (["--batch-size", "0"], "batch_size must be >= 2, got 0"),
    (["--width", "0"], "width must be >= 1, got 0"),
    (["--subset", "-5"], "subset must be >= 1 or none, got -5"),
    (["--lr", "nan"], "lr must be a finite number > 0, got nan"),
    (["--lr", "-0.1"], "lr must be a finite number > 0, got -0.1"),
    (["--loss", "nosuchloss"], "unknown loss 'nosuchloss'"),
    (["--dataset", "nosuchset"], "unknown dataset 'nosuchset'"),
    (["--arch", "vgg99"], "unknown arch 'vgg99'"),
    (["--loss-kwargs", "{tau: 0.2"], "argument --loss-kwargs: malformed JSON"),
    (["--loss-kwargs", '{"temperature": 0.2}'], "temperature"),
    (
        ["--loss", "supcon", "--label-fraction", "0"],
        "needs labels, but label_fraction is 0",
    ),
    (
        ["--batch-size", "512", "--subset", "100"],
        "batch_size 512 exceeds the training subset",
    ),
]
MORE_BAD_INPUTS = [  # the same path, checked in-process (cheaper: no interpreter start)
    (["--batch-size", "-4"], "batch_size must be >= 2, got -4"),
    (["--subset", "0"], "subset must be >= 1 or none, got 0"),
    (["--lr", "inf"], "lr must be a finite number > 0, got inf"),
    (["--loss-kwargs", "[0.2]"], "argument --loss-kwargs: expected a JSON object"),
    (["--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
    (["--optimizer", "lamb"], "optimizer must be one of"),
    (["--loss", "cloa", "--loss-kwargs", '{"base": "cloa"}'], "base must be one of"),
    (["--test-subset", "0"], "test_subset must be >= 1 or none, got 0"),
    (["--check-every", "0"], "check_every must be >= 1, got 0"),
]


def _cli(args, tmp_path, timeout=120):
    cmd = [
        sys.executable,
        "-m",
        "cl_lib.train",
        "--profile",
        "quick",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "run"),
        *args,
    ]
    env = {**os.environ, "CL_LIB_DATA": str(tmp_path / "no-data-here")}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize(
    "args, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS]
)
def test_bad_input_fails_like_a_good_cli(args, message, tmp_path):
    """One line on stderr, exit status 2, no traceback, nothing loaded or written."""
    proc = _cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cl-train: error: "), proc.stderr[
        -2000:
    ]
    assert message in lines[0]
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, message", MORE_BAD_INPUTS, ids=[" ".join(a) for a, _ in MORE_BAD_INPUTS]
)
def test_more_bad_input_in_process(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        train_mod, "load_dataset", None
    )  # would fail if data were loaded
    argv = ["--profile", "quick", "--out", str(tmp_path / "run"), *args]
    try:
        status = train_mod.main(argv)
    except SystemExit as stop:  # argparse's own errors
        status = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("cl-train: error: ")
    assert message in err[0] and not (tmp_path / "run").exists()


def test_batch_larger_than_the_whole_set_fails_like_a_good_cli(tmp_path):
    folder = make_image_folder(tmp_path / "imgs")  # 48 training images
    proc = _cli(
        [
            "--dataset",
            f"imagefolder:{folder}",
            "--batch-size",
            "64",
            "--subset",
            "none",
        ],
        tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        == "cl-train: error: batch_size 64 exceeds the 48 training images"
    )


def test_untrained_baseline_through_the_cli(tmp_path):
    """--epochs 0 evaluates the initial network and writes a normal results file."""
    folder = make_image_folder(tmp_path / "imgs")
    proc = _cli(
        [
            "--dataset",
            f"imagefolder:{folder}",
            "--epochs",
            "0",
            "--batch-size",
            "16",
            "--probe-steps",
            "5",
        ],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["finished"] and res["epochs_completed"] == 0 and res["history"] == []
    assert set(res["final"]) == {
        "knn_acc",
        "linear_probe_acc",
        "linear_probe_train_acc",
    }
    assert res["metrics"]["effective_rank"] > 0 and res["images_per_s"] is None
