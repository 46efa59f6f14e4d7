"""Tests for cl_lib.experiments.collapse_report: chapter 1's read-outs."""

import json

import matplotlib
import numpy as np
import pytest

from cl_lib.experiments import collapse_report as R
from cl_lib.experiments import toy

matplotlib.use("Agg")


def _runs(probe, diverged=0.0, n=2, **more):
    """One setting of a sweep result: ``n`` seeds with the given values."""
    keys = dict(
        variance_sphere=0.9,
        effective_rank_sphere=2.5,
        class_mean_collinearity=0.5,
        linear_probe=probe,
        knn=probe,
        diverged=diverged,
        **more,
    )
    return {k: np.full(n, float(v)) for k, v in keys.items()}


def _history(collinearity, variance=None):
    """A per-epoch history from epoch 0, as ``ToyRun.history`` holds it."""
    n = len(collinearity)
    return {
        "epoch": list(range(n)),
        "class_mean_collinearity": list(collinearity),
        "variance_sphere": list(variance if variance is not None else [0.9] * n),
    }


@pytest.fixture
def sweep():
    lrs = [1e-2, 1.0]
    base = {
        ("infonce", 1e-2): _runs(0.9),
        ("infonce", 1.0): _runs(0.6),
        ("vicreg", 1e-2): _runs(0.7),
        ("vicreg", 1.0): _runs(np.nan, diverged=1.0),
    }
    return base, lrs


def test_say_wraps_paragraphs(capsys):
    R.say("word " * 30 + "\nsecond paragraph", width=40)
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 40 for line in lines)
    assert lines[1].startswith("  ") and lines[-1] == "second paragraph"


def test_best_and_show(sweep):
    base, lrs = sweep
    assert R.best(base, "infonce", lrs) == pytest.approx(0.9)
    assert R.show(None, "linear_probe") == "-"
    assert R.show(base["vicreg", 1.0], "linear_probe") == "div."
    assert R.show(base["infonce", 1.0], "linear_probe") == "0.60 +- 0.00"


def test_tables_print_every_setting(sweep, capsys):
    base, _ = sweep
    R.print_sweep_tables(base, ["variance_sphere", "linear_probe", "diverged"])
    out = capsys.readouterr().out
    assert "variance = variance_sphere" in out and out.count("infonce") == 4
    cloa = {("infonce", 1.0): _runs(0.95)}
    R.print_anchor_tables(base, cloa, ["infonce", "vicreg"], lrs=(1e-2, 1.0))
    out = capsys.readouterr().out
    assert "0.95 +- 0.00" in out and "div." in out and " -" in out


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_figures_draw(sweep, monkeypatch):
    base, lrs = sweep
    monkeypatch.setattr(R.plt, "show", lambda: None)
    R.plot_sweep([base, base], ["-o", ":s"], "t", ["infonce", "vicreg"], lrs)
    settings = [("infonce", 1e-2, 0.0), ("infonce", 1.0, 0.1)]
    R.plot_panel(base, {("infonce", 1.0): _runs(0.9)}, settings, 30, 0.5)
    R.plt.close("all")


def test_fused_epochs_and_stop_predicates():
    h = _history([0.5, 0.95, 0.95, 0.7, 0.6], variance=[0.1, 0.9, 0.9, 0.9, 0.9])
    assert R.fused_epochs(h).tolist() == [1, 2]
    cone = _history([0.95, 0.95], variance=[0.1, 0.1])  # collinear but not spread out
    assert len(R.fused_epochs(cone)) == 0
    assert R.escaped_for_good(epochs=3, after=2)(h)  # epoch 4: 2 past the last fused
    assert not R.escaped_for_good(epochs=3, after=3)(h)
    assert not R.escaped_for_good(epochs=5, after=1)(h)  # before the budget
    assert R.separated_at(h, epochs=2) == 3 and R.separated_at(h, epochs=4) is None
    assert R.settled(epochs=2, probe_after=1)(h)
    assert not R.settled(epochs=2, probe_after=2)(h)
    assert R.escape_delay(h, epochs=1) == 2  # epoch 3 is 2 epochs after epoch 1
    assert R.escape_delay(_history([0.95] * 5), epochs=1) is None


def test_stuck_forker_forks_fused_runs_once_per_arm():
    arms = {"a": "hook_a", "b": "hook_b"}
    fork, forked = R.stuck_forker(arms, seeds=[7, 8, 9], epochs=1)
    fused = _history([0.5, 0.95], variance=[0.9, 0.9])
    free = _history([0.5, 0.5])
    pairs = fork([free, fused, fused, fused])  # the 4th is not one of the seeds
    assert pairs == [(1, "hook_a"), (2, "hook_a"), (1, "hook_b"), (2, "hook_b")]
    assert forked == [("a", 8), ("a", 9), ("b", 8), ("b", 9)]


def test_long_run_readouts_on_real_runs(capsys, monkeypatch):
    runs = toy.train_toy_batch("infonce", seeds=[0], lr=1.0, epochs=2, hidden=4)
    long = {("infonce", 0): runs[0], ("barlow_twins", 0): runs[0]}
    monkeypatch.setattr(R.plt, "show", lambda: None)
    runs[0].history["angular_grad"] = [0.0] * len(runs[0].history["epoch"])
    runs[0].history["effective_rank_sphere"] = [1.0] * len(runs[0].history["epoch"])
    R.plot_long_runs(long, [0], epochs=1)
    R.plt.close("all")
    R.print_long_runs(long)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[1].split()[:3] == ["infonce", "0", "2"]


def test_plateau_and_intervention_tables(capsys):
    keys = ["eval_loss", "angular_grad", "effective_rank_sphere"]
    plateau = {3: {(k, w): 1.5 for k in keys for w in ["fused", "after"]}}
    R.print_plateau_table(plateau, (4.0, 0.0, 1.0))
    out = capsys.readouterr().out
    assert "seed 3" in out and "collapsed line state" in out and "4.00" in out
    arms = ["control", "rescale", "reset", "revive"]
    delay = {(a, 5): (None if a == "control" else 2) for a in arms}
    info = {("rescale", 5): 0.125, ("revive", 5): 3}
    R.print_interventions(delay, info, [5], budget=170)
    out = capsys.readouterr().out
    assert "> 170" in out and "0.125" in out
    probe = {(a, 5): 0.9 for a in arms}
    R.print_probe_after(probe, [5], ["rescale", "reset", "revive"], 50)
    assert "rescale 0.90 (0.90)" in capsys.readouterr().out


def test_summary_file_merges_the_two_pages(tmp_path, capsys):
    path = str(tmp_path / "results" / "summary.json")
    R.update_summary(
        path,
        config={"seeds": [0]},
        hardware={"cpu": "cpu"},
        library_commit="abcdef0123",
        date_utc="2026-01-01T00:00:00",
        seeds=[0],
        epochs=30,
        rows=[
            {
                "loss": "infonce",
                "lr": 1.0,
                "anchor": 0.0,
                "linear_probe": [0.8],
                "class_mean_collinearity": [0.9],
                "diverged": [0.0],
            },
        ],
        label_fraction_5={
            "seeds": [0, 1],
            "good": 0.9,
            "probe_0": [0.5, 0.95],
            "probe_5": [0.95, 0.95],
        },
    )
    R.update_summary(
        path,
        config={"int_seeds": [0, 1]},
        intervention={
            "seeds": [0, 1],
            "stuck": [1],
            "budget": 170,
            "delay": {"control_1": None, "rescale_1": 3, "revive_1": 40},
            "probe_after": {"control_1": 0.9, "rescale_1": 0.7, "revive_1": 0.91},
        },
    )
    with open(path) as f:
        full = json.load(f)
    assert full["config"] == {"seeds": [0], "int_seeds": [0, 1]}
    assert full["epochs"] == 30 and "intervention" in full
    R.print_full_sweep(full, ["infonce"])
    out = capsys.readouterr().out
    assert "commit abcdef0" in out and "probe         0.80" in out
    assert "1 without anchors, 2 with 5%" in out
    R.print_full_interventions(full, 30)
    out = capsys.readouterr().out
    assert "control 171" in out and "rescale 3" in out and "revive 40" in out
    assert "reset" not in out  # an arm the summary does not have
    assert "probe after: control 0.90, rescale 0.70, revive 0.91" in out
