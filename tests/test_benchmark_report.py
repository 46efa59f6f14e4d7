"""Tests for cl_lib.experiments.benchmark_report: chapter 11's tables and figures, on
the stored results of book/results and on small synthetic records."""

import shutil
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # before pyplot: the figures are drawn, never shown

import matplotlib.pyplot as plt

from cl_lib import stats as S
from cl_lib.experiments import benchmark_report as B
from cl_lib.experiments import results as R
from cl_lib.experiments.study import (
    Study,
    difference_table,
    presence,
    provenance_listing,
    summary,
    verdicts,
)

BOOK_RESULTS = Path(__file__).resolve().parent.parent / "book" / "results"


@pytest.fixture(scope="module")
def cpu():
    return Study("ch11", "cpu-study", root=BOOK_RESULTS)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _record(knn, probe=None, seed=0, name="run", **extra):
    """A synthetic results record with the fields the report reads."""
    final = {"knn_acc": knn, "linear_probe_acc": knn if probe is None else probe}
    return {
        "source": f"x/{name}.json",
        "config": {"seed": seed},
        "final": final,
    } | extra


def test_headline_table_and_verdicts_of_the_stored_study(cpu):
    head, means = B.headline(cpu)
    assert set(means) == set(B.HEADLINE)  # every loss and both references present
    assert means["simclr"][0].n == 5 and means["supcon"][0].n == 1
    table = B.headline_table(means)
    assert all(B.LABEL[k] in table for k in B.HEADLINE) and "pending" not in table
    found = verdicts(head, [("simclr", "untrained"), ("simclr", "simclr")])
    assert list(found) == [
        ("simclr", "untrained", "kNN"),
        ("simclr", "untrained", "probe"),
    ]
    assert all(d.verdict == R.HIGHER for d in found.values())
    rows = difference_table(found, B.SHORT)
    assert "SimCLR vs untrained, kNN" in rows and "above" in rows
    # a pair with a group absent is left out; none present: no table
    assert verdicts(head, [("simclr", "no such loss")]) == {}


def test_headline_table_says_pending_and_verdicts_of_synthetic_groups():
    groups = {
        "untrained": [_record(0.30, seed=s) for s in range(3)],
        "simclr": [_record(v, seed=s) for s, v in enumerate((0.40, 0.41, 0.42))],
    }
    means = {
        k: (summary(g), summary(g, "final.linear_probe_acc")) for k, g in groups.items()
    }
    table = B.headline_table(means)
    assert "pending" in table and "+11.0" in table  # 0.41 - 0.30, in points
    found = verdicts(groups, [("simclr", "untrained")], {"kNN": "final.knn_acc"})
    assert B.word(found[("simclr", "untrained", "kNN")]) == "above"
    words = B.verdict_words(
        {("simclr", "kNN"): found[("simclr", "untrained", "kNN")]}, ["simclr"], ["kNN"]
    )
    assert "SimCLR" in words and "above" in words
    assert B.seed_values(groups, ("simclr", "dcl")) == {"simclr": [0.40, 0.41, 0.42]}
    lines = B.gain_lines({"simclr": [0.40, 0.41]}, 0.30)
    assert "+10.0 points over the better untrained reference" in lines
    assert summary(None) is None


def test_sweep_points_group_seeds_over_all_records(cpu):
    """The shared main point (B = 256) has the five seeds of the losses section."""
    pts = B.sweep_points(cpu, "batch")
    simclr = {x: s for x, s, _ in pts["simclr"]}
    assert sorted(simclr) == [64, 128, 256, 512]
    assert simclr[256].n == 5 and simclr[64].n == 1
    steps = {x: st for x, _, st in B.sweep_points(cpu, "batch steps")["simclr"]}
    assert set(steps.values()) == {468}
    assert B.drawable(pts) and not B.drawable({"simclr": pts["simclr"][:1]})
    spread, verdict, best, worst = B.extremes(pts["simclr"])
    assert spread > 0 and verdict == R.ONE_SEED and best != worst
    assert B.sweep_extremes(cpu, "tau")["dhel"][3] == 1  # tau = 1: DHEL's lowest
    tables = B.sweep_tables(cpu)
    assert all(f"{s}:" in tables for s in B.SWEEPS) and "BN re-est." in tables
    diffs = B.sweep_differences(pts)
    assert set(diffs) == {64, 128, 256, 512} and diffs[256].verdict == R.UNDECIDED


def test_geometry_many_classes_and_listings(cpu, tmp_path):
    head, means = B.headline(cpu)
    geo = B.geometry(head, means)
    assert set(geo["simclr"]) == set(B.GEOM)
    table = B.geometry_table(geo)
    assert table.splitlines()[0].split()[:3] == ["loss", "rank", "h"]
    tiny = B.many_class_groups(cpu, "tiny", "tiny-imagenet-32")
    assert {"untrained", "untrained_bn", "simclr", "dhel"} <= set(tiny)
    assert "pending" in B.many_class_table(tiny, ("untrained", "kcl"))
    listing = cpu.pending(by_section=True)
    assert listing.startswith("== baseline: ")
    # a missing run is listed with its command
    dst = tmp_path / "cpu-study" / "ch11"
    shutil.copytree(BOOK_RESULTS / "cpu-study" / "ch11", dst)
    (dst / "barlow_b256_s2.json").unlink()
    listing = Study("ch11", "cpu-study", root=tmp_path).pending(by_section=True)
    assert "non-contrastive: 5 of 6 present" in listing and "python -m" in listing
    prov = provenance_listing({"cpu-study": cpu}, headers=True).splitlines()
    assert prov[0] == f"== cpu-study (results/cpu-study/ch11): {len(cpu.records)} files"
    assert presence({"cpu-study": cpu}).startswith("cpu-study: ")


def test_the_full_grid_is_planned_and_redrawn_while_empty(tmp_path, capsys):
    full = Study("ch11", "full", root=tmp_path)  # no results files
    assert B.grid_shapes(full)["losses"] == {(100, 512)}
    status = B.grid_status(full)
    assert status.startswith(f"full-grid runs present: 0 of {len(full.plan)};")
    assert "pending; for example:" in status
    assert 0 < full.longest_run_s() <= 360
    B.redraw(full, "empty")  # the headline table, every row pending; no figure
    assert capsys.readouterr().out.count("pending") == len(B.HEADLINE)
    assert not plt.get_fignums()


def test_search_helpers_and_recipe():
    run = _record(
        0.55,
        name="w16",
        config={"arch": "small_cnn", "width": 16, "epochs": 30, "optimizer": "sgd"},
        history=[{"epoch": 25, "knn_acc": 0.54}, {"epoch": 28}],
    )
    assert B.search_label(run) == "small_cnn 16, 30 ep., sgd"
    assert B.last_tracked_knn(run) == 0.54
    assert B.search_best(run).endswith("the goal of 0.65: not reached")
    assert B.search_table([]).endswith("pending: no search run")
    wrong = B.recipe_mismatches(run)
    assert "config.arch" not in wrong and "config.width" not in wrong
    assert "config.optimizer" not in wrong and "dataset.train_size" in wrong


def test_with_retrieval_needs_a_snapshot():
    recs = [{"extra": {"tracking": []}}, {"extra": {"retrieval": {"k": 1}}}]
    assert B.with_retrieval(recs) is recs[1]
    assert B.with_retrieval(recs[:1]) is None and B.with_retrieval(None) is None


def test_the_figures_draw_from_the_stored_results(cpu, capsys):
    head, means = B.headline(cpu)
    B.plot_headline(means, "headline")
    assert B.plot_sweeps(cpu, "sweeps") == list(B.SWEEPS)
    B.plot_spectra(head, B.HEADLINE, "spectra")
    B.plot_tracking(head, B.HEADLINE, "geometry")
    B.plot_length(head, cpu.by_key("length"), means["untrained"][0], ["simclr"], "t")
    long = Study("ch11", "cpu-long", root=BOOK_RESULTS)
    long_head, long_means = B.headline(long)
    # the filed runs of the tier's "more losses" section are in its headline table
    filed = {long.key(base) for base in long.groups("more losses")}
    assert filed and filed <= set(long_head) and filed <= set(long_means)
    along = B.plot_seed_tracks(long_head, long_means)
    assert "simclr" in along and len(along["simclr"][0]) == len(along["simclr"][1])
    B.plot_search(B.search_runs(BOOK_RESULTS), long_means)
    assert len(plt.get_fignums()) == 7
    assert B.show_best_retrieval({}, {}) is None  # pending: nothing to show
    assert "pending" in capsys.readouterr().out
    lines = B.seed_mean_lines(means, B.HEADLINE[2:]).splitlines()
    assert lines[0].startswith("untrained network: kNN") and len(lines) == 8
    found = verdicts(head, [("dhel2v", "simclr")])
    assert "DHEL (auth.) - SimCLR, kNN" in B.difference_lines(found, ["dhel2v"])
    text = B.length_report(
        cpu.by_key("length")["simclr"],
        means["simclr"][0],
        means["untrained"][0],
        means["untrained_bn"][0],
    )
    assert text.startswith("SimCLR 12 epochs") and "along the longer run" in text


def test_tau_report_groups_seeds_and_tests_the_prediction_as_one_contrast(cpu, capsys):
    out = B.tau_report(cpu)
    text = capsys.readouterr().out
    groups = out["groups"]
    assert set(groups) <= set(B.TAU_LOSSES)
    assert len(groups["simclr"][0.5]) == 5  # the headline seeds join the setting
    for key, by_tau in groups.items():
        for tau, recs in by_tau.items():
            assert {R.lookup(r, "config.loss_kwargs.tau") for r in recs} == {tau}
    assert "DHEL 1 view" in text and "2 views - 1 view" in text
    means = {
        (k, t): sum(R.lookup(r, "final.knn_acc") for r in g) / len(g)
        for k in ("simclr", "dhel")
        for t, g in groups[k].items()
    }
    want = means["dhel", 0.1] - means["simclr", 0.1]  # d(0.1) - d(1)
    want -= means["dhel", 1.0] - means["simclr", 1.0]
    assert abs(out["change"]["dhel", "kNN"].diff - want) < 1e-12
    # the prediction is one table over both read-outs, Holm-corrected over it
    raw = [
        B.tau_advantage_change(groups, k, 0.1, 1.0, m)
        for (k, read) in out["change"]
        for m in [B.READ[read]]
    ]
    assert [d.p_adj for d in out["change"].values()] == S.holm([d.p for d in raw])


def test_tau_advantage_change_finds_a_planted_interaction():
    def group(key, tau, values):
        return [
            _record(v, seed=s, config={"seed": s, "loss_kwargs": {"tau": tau}})
            for s, v in enumerate(values)
        ]

    groups = {
        "simclr": {0.1: group("simclr", 0.1, [0.40, 0.41, 0.40])},
        "dhel": {0.1: group("dhel", 0.1, [0.44, 0.45, 0.44])},
    }
    groups["simclr"][1.0] = group("simclr", 1.0, [0.38, 0.39, 0.385])
    groups["dhel"][1.0] = group("dhel", 1.0, [0.38, 0.385, 0.39])
    d = B.tau_advantage_change(groups, "dhel", 0.1, 1.0)
    assert d.verdict == R.HIGHER and d.low > 0
    assert B.tau_advantage_change(groups, "dhel2v", 0.1, 1.0) is None


def test_kcl_and_noncontrastive_reports_read_planned_settings(tmp_path, capsys):
    """Synthetic files under the planned names: KCL at B = 64 (fixed epochs, shifted
    by 5 points) and gamma = 4, Barlow Twins; each is compared with its reference."""
    import json
    import shutil

    src = BOOK_RESULTS / "cpu-study" / "ch11"
    dst = tmp_path / "cpu-study" / "ch11"
    shutil.copytree(src, dst)
    sweeps = ("kcl_b64", "kcl_b128", "kcl_b512", "kcl_b256_g", "barlow", "vicreg")
    for f in dst.glob("*.json"):  # the sweeps' real runs, as they are filed
        if f.name.startswith(sweeps):
            f.unlink()

    def fake(name, base, shift, **config):
        for s, suffix in enumerate(("", "_s1", "_s2")):
            r = json.loads((src / f"{base}{suffix}.json").read_text())
            r["config"].update(config)
            r["final"]["knn_acc"] += shift
            (dst / f"{name}{suffix}.json").write_text(json.dumps(r))

    fake("kcl_b64", "kcl_b256", 0.05, batch_size=64)
    kw = {"kernel": "gaussian", "gamma": 4.0}
    fake("kcl_b256_g4", "kcl_b256", 0.0, loss_kwargs=kw)
    fake("barlow_b256", "simclr_b256_t0.5", -0.1, loss="barlow_twins", loss_kwargs={})
    study = Study("ch11", "cpu-study", root=tmp_path)
    found = B.kcl_report(study)
    # against B = 256 (five seeds), in both read-outs
    assert list(found["kcl batch"]) == [(64, "kNN"), (64, "probe")]
    assert found["kcl batch"][64, "kNN"].verdict == R.HIGHER
    assert not found["kcl batch"][64, "probe"].decided  # the shift was on kNN only
    knn = [
        json.loads((src / f"kcl_b256{x}.json").read_text())["final"]["knn_acc"]
        for x in ("", "_s1", "_s2", "_s3", "_s4")
    ]  # gamma = 4 is a copy of the first three of the five reference seeds
    want = sum(knn[:3]) / 3 - sum(knn) / 5
    assert abs(found["kcl gamma"][4.0, "kNN"].diff - want) < 1e-12
    assert found["kcl batch steps"] == {}  # only the shared reference present
    vs = B.noncontrastive_report(study)
    assert set(vs) == {
        ("barlow", a, read)
        for a in ("simclr", "untrained", "untrained_bn")
        for read in B.READ
    }
    assert vs[("barlow", "simclr", "kNN")].verdict == R.LOWER
    out = capsys.readouterr().out
    assert "Barlow Twins" in out and "gamma" in out


def test_tau_effect_compares_each_loss_with_itself_across_the_range(cpu):
    groups = B.tau_groups(cpu)
    out = B.tau_effect(groups, 0.1, 1.0)
    assert set(out) == {(k, read) for k in groups for read in B.READ}
    d = out["simclr", "kNN"]
    low, high = (
        [R.lookup(r, "final.knn_acc") for r in groups["simclr"][t]] for t in (0.1, 1.0)
    )
    assert abs(d.diff - (sum(low) / len(low) - sum(high) / len(high))) < 1e-12
    assert [x.p_adj for x in out.values()] == S.holm([x.p for x in out.values()])


def test_geometry_verdicts_one_table_per_reference_and_one_between(cpu, capsys):
    head, summary_ = B.headline(cpu)
    geo = B.geometry(head, summary_)
    keys = [k for k in ("simclr", "dhel", "kcl", "dhel2v") if k in head]
    refs, between = B.geometry_verdicts(head, geo, keys)
    assert set(refs) == set(B.REFS)
    for found in refs.values():
        assert set(found) == {(k, c) for k in keys for c in B.GEO_COLS}
        assert not any("equivalent" in d.verdict for d in found.values())
    assert ("untrained_bn", "untrained", "rank h") in between
    assert "between settings" in capsys.readouterr().out
