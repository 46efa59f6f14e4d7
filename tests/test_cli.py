"""Tests for the CLI ``python -m cl_lib.train``: the quick profile end to end on a tiny
synthetic ImageFolder (through a real subprocess), and how flags, --config and --profile
combine.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

import cl_lib.eval_cmd as eval_mod
import cl_lib.train as train_mod
from cl_lib.train import PROFILE_PRESETS, TrainConfig, config_from_args

from image_folders import make_image_folder

# the accuracies and the per-image correctness (cl_lib.stats strings) of every run
FINAL_KEYS = {
    "knn_acc",
    "linear_probe_acc",
    "linear_probe_train_acc",
    "knn_correct",
    "linear_probe_correct",
}


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
    assert set(res["final"]) == FINAL_KEYS
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
    (["--width", "0"], "width must be an integer >= 1, got 0"),
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
    # four of the five tracebacks of issue 25 (each after every epoch had trained)
    (["--probe-method", "sgd"], "probe_method must be one of ['lbfgs', 'adam']"),
    (["--knn-k", "0"], "knn_k must be an integer >= 1, got 0"),
    (["--probe-steps", "0"], "probe_steps must be an integer >= 1, got 0"),
    (["--metrics-points", "1"], "metrics_points must be >= 2, got 1"),
    (["--device", "cuda:99"], "device 'cuda:99' does not exist"),
    (
        ["--batch-size", "60000", "--subset", "none"],
        "batch_size 60000 exceeds the 50000 training images",
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
    # the values that slipped through validate_config (code review, section 1)
    (["--knn-t", "0"], "knn_t must be a finite number > 0, got 0.0"),
    (["--knn-t", "nan"], "knn_t must be a finite number > 0, got nan"),
    (["--eval-batch-size", "0"], "eval_batch_size must be >= 1, got 0"),
    (["--metrics-points", "0"], "metrics_points must be >= 2, got 0"),
    (["--augment", "nosuch"], "unknown augment preset 'nosuch'"),
    (["--proj-hidden-dim", "0"], "proj_hidden_dim must be an integer >= 1 or none"),
    (["--proj-layers", "-1"], "proj_layers must be an integer >= 0, got -1"),
    (["--proj-dim", "0"], "proj_dim must be an integer >= 1, got 0"),
    (["--momentum", "-1"], "momentum must be a finite number >= 0, got -1.0"),
    (["--momentum", "1.5"], "momentum must be in [0, 1), got 1.5"),
    (["--device", "cuda:7"], "device 'cuda:7' does not exist: this machine has 1"),
    (["--device", "tpu9"], "device must be a torch device"),
    (["--warmup-epochs", "inf"], "warmup_epochs must be a finite number >= 0, got inf"),
    (["--warmup-epochs", "-1"], "warmup_epochs must be a finite number >= 0"),
    (["--weight-decay", "nan"], "weight_decay must be a finite number >= 0, got nan"),
    (["--min-lr-ratio", "2"], "min_lr_ratio must be in [0, 1], got 2.0"),
    (["--grad-clip", "0"], "grad_clip must be a finite number > 0, got 0.0"),
    (["--label-fraction", "1.5"], "label_fraction must be in [0, 1], got 1.5"),
    (["--eval-every", "-1"], "eval_every must be >= 0, got -1"),
    (["--checkpoint-every", "0"], "checkpoint_every must be >= 1, got 0"),
    (["--stop-after-epochs", "0"], "stop_after_epochs must be >= 1 or none, got 0"),
    (["--image-size", "0"], "image_size must be an integer >= 1 or none, got 0"),
    (["--augment-kwargs", '{"size": 8}'], "set the view size with image_size"),
    (["--augment-kwargs", '{"jiter": 1}'], "unknown SimCLRAugment arguments"),
    (["--augment-kwargs", '{"flip_p": 2}'], "flip_p must be a probability in [0, 1]"),
    (["--epochs", "2", "--bn-recalibrate", "true"], "bn_recalibrate is for the"),
    (
        ["--dataset", "imagenette-96", "--batch-size", "9470", "--subset", "none"],
        "batch_size 9470 exceeds the 9469 training images",
    ),
    (["--epochs", "2.5"], "argument --epochs: invalid int value: '2.5'"),
    (["--bf16", "maybe"], "argument --bf16: expected true/false, got 'maybe'"),
]
# --config files: typed like the flags, or refused in one line
BAD_CONFIG_FILES = [
    ({"epochs": "x"}, "epochs must be an integer, got 'x'"),
    ({"epochs": True}, "epochs must be an integer, got True"),
    ({"batch_size": 2.5}, "batch_size must be an integer, got 2.5"),
    ({"lr": "fast"}, "lr must be a number or null, got 'fast'"),
    ({"loss_kwargs": [0.2]}, "loss_kwargs must be a JSON object, got [0.2]"),
    ({"arch": 3}, "arch must be a string, got 3"),
    ({"epochs": None}, "epochs must be an integer, got None"),
    ({"linear_probe": "maybe"}, "linear_probe must be true or false, got 'maybe'"),
    ({"knn_k": 0}, "knn_k must be an integer >= 1, got 0"),  # typed, then checked
    ({"epochz": 3}, "unknown TrainConfig fields"),
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


def _no_data_loads(monkeypatch):
    """Any data loading fails the test: bad values must be refused before."""

    def load_splits(*args, **kw):
        raise AssertionError("data was loaded before the config was refused")

    monkeypatch.setattr(train_mod, "load_splits", load_splits)


@pytest.mark.parametrize(
    "args, message", MORE_BAD_INPUTS, ids=[" ".join(a) for a, _ in MORE_BAD_INPUTS]
)
def test_more_bad_input_in_process(args, message, tmp_path, capsys, monkeypatch):
    _no_data_loads(monkeypatch)
    # a machine with one GPU, for --device cuda:7
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    argv = ["--profile", "quick", "--out", str(tmp_path / "run"), *args]
    try:
        status = train_mod.main(argv)
    except SystemExit as stop:  # argparse's own errors
        status = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("cl-train: error: ")
    assert message in err[0] and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "fields, message", BAD_CONFIG_FILES, ids=[str(f) for f, _ in BAD_CONFIG_FILES]
)
def test_bad_config_file_fails_like_a_bad_flag(
    fields, message, tmp_path, capsys, monkeypatch
):
    _no_data_loads(monkeypatch)
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps(fields))
    status = train_mod.main(["--profile", "quick", "--config", str(conf)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("cl-train: error: ")
    assert message in err[0]


def test_config_file_values_are_typed_like_flags(tmp_path):
    conf = tmp_path / "c.json"
    conf.write_text(
        json.dumps(
            {"epochs": "3", "lr": 1, "subset": "none", "bf16": "false", "knn_t": "0.2"}
        )
    )
    c = config_from_args(["--config", str(conf)])
    assert (c.epochs, c.lr, c.subset, c.bf16, c.knn_t) == (3, 1.0, None, False, 0.2)
    assert isinstance(c.lr, float)
    for name in ("missing.json", "bad.json"):
        (tmp_path / "bad.json").write_text("{epochs: 3")
        with pytest.raises(train_mod.ConfigError, match="cannot read --config"):
            config_from_args(["--config", str(tmp_path / name)])


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
    assert set(res["final"]) == FINAL_KEYS
    assert res["metrics"]["effective_rank"] > 0 and res["images_per_s"] is None


# ---------------------------------------------------- a run that cannot finish: exit 1
def _tiny_run_args(folder, tmp_path, *more):
    return [
        "--profile",
        "quick",
        "--dataset",
        f"imagefolder:{folder}",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--batch-size",
        "16",
        "--probe-steps",
        "5",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        *more,
    ]


def test_missing_data_ends_in_one_line_naming_the_file(tmp_path):
    """The fifth traceback of issue 25: no archive -> one line, exit status 1."""
    proc = _cli(["--dataset", "tiny-imagenet-32", "--batch-size", "16"], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cl-train: error: ")
    assert "tiny-imagenet-32.tar.gz" in lines[0] and "no-data-here" in lines[0]


def test_missing_image_folder_ends_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    status = train_mod.main(_tiny_run_args(missing, tmp_path))
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1 and str(missing / "train") in err[0]


def test_nonfinite_loss_ends_in_one_line_naming_the_checkpoint(
    tmp_path, capsys, monkeypatch
):
    folder = make_image_folder(tmp_path / "imgs")  # 48 images, batch 16: 3 steps
    real_get_loss, calls = train_mod.get_loss, {"n": 0}

    def poisoned_get_loss(name, **kw):
        loss = real_get_loss(name, **kw)

        def wrapped(z1, z2, labels=None):
            calls["n"] += 1
            out = loss(z1, z2, labels)
            return out * float("nan") if calls["n"] == 5 else out  # in epoch 2

        return wrapped

    monkeypatch.setattr(train_mod, "get_loss", poisoned_get_loss)
    status = train_mod.main(_tiny_run_args(folder, tmp_path, "--epochs", "3"))
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith("cl-train: error: loss became nan at epoch 2")
    assert str(tmp_path / "run" / "checkpoint.pt") in err[0]


@pytest.mark.parametrize("at_epoch", [0, 1])
def test_interrupted_run_ends_in_one_line_naming_the_checkpoint(
    at_epoch, tmp_path, capsys, monkeypatch
):
    folder = make_image_folder(tmp_path / "imgs")
    real_run_epoch = train_mod._run_epoch

    def run_epoch(state, epoch):
        if epoch == at_epoch:
            raise KeyboardInterrupt
        return real_run_epoch(state, epoch)

    monkeypatch.setattr(train_mod, "_run_epoch", run_epoch)
    status = train_mod.main(_tiny_run_args(folder, tmp_path, "--epochs", "3"))
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith(f"cl-train: error: interrupted after {at_epoch} of 3")
    ckpt = tmp_path / "run" / "checkpoint.pt"
    if at_epoch:
        assert f"after epoch 1) is {ckpt}" in err[0] and "--resume" in err[0]
    else:
        assert "no checkpoint was written" in err[0] and not ckpt.exists()
    # the library call raises a KeyboardInterrupt that says the same
    monkeypatch.setattr(train_mod, "_run_epoch", run_epoch)
    cfg = config_from_args(_tiny_run_args(folder, tmp_path, "--epochs", "3"))
    with pytest.raises(KeyboardInterrupt, match="interrupted after"):
        train_mod.train(cfg)


# ------------------------------------------------------------------------------ cl-eval
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny finished run (quick profile, 2 epochs of 3 steps) and its results."""
    tmp = tmp_path_factory.mktemp("evalrun")
    folder = make_image_folder(tmp / "imgs")
    argv = _tiny_run_args(folder, tmp, "--epochs", "2", "--metrics-points", "12")
    assert train_mod.main(argv) == 0
    return tmp / "run", json.loads((tmp / "run" / "results.json").read_text())


def test_cl_eval_repeats_the_trainers_final_evaluation(trained_run, tmp_path):
    run, trained = trained_run
    assert eval_mod.main([str(run / "checkpoint.pt"), "--quiet"]) == 0
    res = json.loads((run / "eval.json").read_text())
    assert res["final"] == trained["final"] and set(res["final"]) == FINAL_KEYS
    assert res["metrics"] == trained["metrics"]
    assert res["history"] == trained["history"] and res["finished"]
    assert res["config"] == trained["config"] and res["dataset"] == trained["dataset"]
    assert res["evaluation"] == {
        "command": "cl-eval",
        "checkpoint": str(run / "checkpoint.pt"),
        "checkpoint_epoch": 2,
        "overrides": {},
    }
    # evaluation settings may change; the rest comes from the checkpoint
    out = tmp_path / "k3.json"
    argv = [str(run / "checkpoint.pt"), "--knn-k", "3", "--linear-probe", "false"]
    assert eval_mod.main([*argv, "--out", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    assert res["config"]["knn_k"] == 3 and "linear_probe_acc" not in res["final"]
    assert res["evaluation"]["overrides"] == {"knn_k": 3, "linear_probe": False}


def test_cl_eval_as_a_command(trained_run, tmp_path):
    run, trained = trained_run
    out = tmp_path / "e.json"
    cmd = [sys.executable, "-m", "cl_lib.eval_cmd", str(run / "checkpoint.pt")]
    proc = subprocess.run(
        [*cmd, "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "knn_acc" in proc.stdout and f"wrote {out}" in proc.stdout
    assert (
        json.loads(out.read_text())["final"]["knn_acc"] == trained["final"]["knn_acc"]
    )


def test_cl_eval_bad_input(trained_run, tmp_path, capsys, monkeypatch):
    run, _ = trained_run
    _no_data_loads(monkeypatch)
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("hello")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    ckpt = str(run / "checkpoint.pt")
    for argv, status, message in [
        ([str(tmp_path / "none.pt")], 1, "does not exist"),
        ([str(not_a_checkpoint)], 2, "is not a cl-train checkpoint"),
        ([str(tmp_path / "other.pt")], 2, "is not a cl-train checkpoint"),
        ([ckpt, "--knn-k", "0"], 2, "knn_k must be an integer >= 1, got 0"),
        ([ckpt, "--probe-method", "sgd"], 2, "probe_method must be one of"),
        ([ckpt, "--metrics-points", "1"], 2, "metrics_points must be >= 2, got 1"),
        ([ckpt, "--device", "cuda:99"], 2, "device 'cuda:99' does not exist"),
    ]:
        assert eval_mod.main([*argv, "--out", str(tmp_path / "e.json")]) == status
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("cl-eval: error: "), err
        assert message in err[0], err
    assert not (tmp_path / "e.json").exists()
