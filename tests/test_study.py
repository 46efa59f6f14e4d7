"""Tests for cl_lib.experiments.study: results joined to their plan."""

import json
import shutil
from pathlib import Path

import pytest

from cl_lib.experiments import grid as G
from cl_lib.experiments import results as R
from cl_lib.experiments.study import (
    READOUTS,
    Study,
    along,
    command,
    difference_rows,
    difference_table,
    error_bar,
    interval,
    interval_band,
    mean_interval,
    points,
    presence,
    provenance_listing,
    seed_stats,
    summary,
    verdicts,
    word,
)

BOOK_RESULTS = Path(__file__).resolve().parent.parent / "book" / "results"


def _copy(names, root, chapter="ch11", tier="cpu-study"):
    folder = root / tier / chapter
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(BOOK_RESULTS / tier / chapter / f"{name}.json", folder)
    return folder


def test_study_of_the_stored_results_matches_the_plan():
    """Every stored cpu-study file of chapter 11 is a planned run with the plan's
    command; keys come from the plan, not from names."""
    study = Study("ch11", "cpu-study", root=BOOK_RESULTS)
    assert study.records and not study.unplanned() and not study.stale()
    assert len(study.plan) - len(study.missing()) == len(study.records)
    assert study.key("tiny_simclr_b256_t0.5") == "simclr"
    assert study.key("dhel2v_b256_t0.3_s2") == "dhel2v"
    assert study.key("untrained_bn_s1") == "untrained_bn"
    with pytest.raises(KeyError, match="not planned"):
        study.key("no_such_run")
    with pytest.raises(KeyError, match="no section"):
        study.runs("no such section")
    assert study.runs("cifar100") == []  # the full tier's section: empty here
    assert "Study('ch11', 'cpu-study'" in repr(study)


def test_groups_find_and_summary(tmp_path):
    names = ["simclr_b256_t0.5", "simclr_b256_t0.5_s2", "simclr_b256_t0.5_s1"]
    _copy(names + ["dhel_b256_t0.1", "untrained"], tmp_path)
    study = Study("ch11", "cpu-study", root=tmp_path)
    groups = study.groups("losses")
    # seed order inside a group; only groups with a record unless asked
    assert [r["config"]["seed"] for r in groups["simclr_b256_t0.5"]] == [0, 1, 2]
    assert set(groups) == {"simclr_b256_t0.5"}
    assert "dcl_b256_t0.5" in study.groups("losses", empty=True)
    assert study.groups("losses", empty=True)["dcl_b256_t0.5"] == []
    by_key = study.by_key("baseline", "losses")
    assert set(by_key) == {"untrained", "simclr"}
    # find: by key and planned flags; tau 0.1 is only in the tau section
    assert study.find("simclr", batch_size=256) == groups["simclr_b256_t0.5"]
    assert study.find("dhel", "tau", loss_kwargs={"tau": 0.1}) is not None
    assert study.find("dhel", "losses") is None
    s = study.summary(groups["simclr_b256_t0.5"])
    want = R.seed_summary(groups["simclr_b256_t0.5"])
    assert (s.mean, s.n) == (want.mean, 3)
    assert study.summary([]) is None
    assert study.hardware().startswith("CPU study, 2-core CPU")


def test_status_missing_unplanned_and_stale(tmp_path):
    folder = _copy(["untrained", "untrained_s1"], tmp_path)
    study = Study("ch11", "cpu-study", root=tmp_path)
    text = study.status("baseline", width=80)
    first = text.splitlines()[0]
    assert first == "baseline: 2 of 12 runs present"
    assert "pending; for example:" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert study.missing("baseline")[0].name == "untrained_s2"
    # a file no plan makes, and a file whose command the grid no longer gives
    record = json.loads((folder / "untrained.json").read_text())
    record["command"] += " --epochs 3"
    (folder / "untrained.json").write_text(json.dumps(record))
    (folder / "mystery_run.json").write_text(json.dumps({"final": {}}))
    study = Study("ch11", "cpu-study", root=tmp_path)
    assert study.unplanned() == ["mystery_run"]
    assert study.stale() == ["untrained"]
    done = Study("ch11", "cpu-study", root=BOOK_RESULTS)
    assert done.status("supervised").endswith("1 of 1 runs present")


def test_formatting_helpers():
    a = R.seed_summary([{"final": {"knn_acc": v}} for v in (0.40, 0.41, 0.42)])
    b = R.seed_summary([{"final": {"knn_acc": 0.30}}])
    assert interval(a) == f"[{a.low:.3f}, {a.high:.3f}]" and interval(b) == "(one seed)"
    assert mean_interval(b) == "0.300 (one seed)"
    assert mean_interval(a) == f"0.410 {interval(a)}"
    assert interval(a, 2) == f"[{a.low:.2f}, {a.high:.2f}]"
    assert interval(b, 2, one_seed="{} (1 seed)") == "0.30 (1 seed)"
    logs = R.seed_summary([{"final": {"knn_acc": 1.0}} for _ in range(3)])
    assert interval(logs, 2, log=True) == "[10, 10]"  # of 10**x
    assert points(a, b) == pytest.approx(11.0)
    verdicts = R.compare_table({("a", "b"): (a, a), ("a", "c"): (a, b)})
    assert word(verdicts[("a", "c")]) == "one seed"
    table = difference_rows(verdicts, lambda t: f"{t[0]} vs {t[1]}")
    assert "a vs c" in table and "--" in table  # one seed: no p-value


def test_every_planned_run_has_a_key():
    for tier in G.TIERS:
        runs = G.planned_runs(tier)
        assert all(run.key for run in runs), tier
        assert all(run.metadata()["key"] == run.key for run in runs)


def _rec(knn, seed=0, probe=None):
    probe = knn if probe is None else probe
    final = {"knn_acc": knn, "linear_probe_acc": probe}
    return {"final": final, "config": {"seed": seed}, "source": f"x/r{seed}.json"}


def test_summaries_and_seed_stats():
    g = [_rec(v, s) for s, v in enumerate((0.40, 0.41, 0.42))]
    assert summary(None) is None and summary([]) is None
    assert summary(g).mean == pytest.approx(0.41) and summary(g).n == 3
    assert summary(g, "final.linear_probe_acc").n == 3
    stats = seed_stats({"a": g, "b": g[:1]})
    assert set(stats) == {(k, m) for k in "ab" for m in READOUTS}
    assert stats[("b", "kNN")].n == 1 and stats[("a", "probe")].mean == summary(g).mean


def test_along_averages_the_epochs_every_seed_has():
    recs = [
        {"extra": {"tracking": [{"epoch": e, "knn_acc": e / 10} for e in (0, 4, 8)]}},
        {"extra": {"tracking": [{"epoch": e, "knn_acc": e / 20} for e in (4, 8)]}},
    ]
    epochs, mean = along(recs)
    assert epochs == [4, 8] and mean == pytest.approx([0.3, 0.6])
    two = [{"extra": {"tracking": [{"epoch": 2, "k": v}]}} for v in (1.0, 3.0)]
    assert along(two, "k") == ([2], [2.0])


def test_verdicts_and_difference_table():
    groups = {
        "base": [_rec(0.30 + d, s) for s, d in enumerate((0, 0.002, -0.002))],
        "loss": [_rec(0.50 + d, s) for s, d in enumerate((0, 0.003, -0.001))],
        "one": [_rec(0.45)],
    }
    pairs = [("loss", "base"), ("loss", "loss"), ("loss", "absent"), ("one", "base")]
    found = verdicts(groups, pairs)
    assert list(found) == [
        ("loss", "base", "kNN"),
        ("loss", "base", "probe"),
        ("one", "base", "kNN"),
        ("one", "base", "probe"),
    ]
    assert word(found[("loss", "base", "kNN")]) == "above"
    assert found[("one", "base", "kNN")].verdict == R.ONE_SEED
    knn_only = verdicts(groups, pairs[:1], {"kNN": READOUTS["kNN"]}, margin=None)
    assert list(knn_only) == [("loss", "base", "kNN")]
    assert verdicts(groups, [("absent", "base")]) == {}
    table = difference_table(found, {"loss": "SimCLR"})
    assert "SimCLR vs base, kNN" in table and "one vs base, probe" in table
    assert "above" in table and "one seed" in table
    assert "+20.1 [" in difference_table(knn_only, digits=1)


def test_plan_listings_of_a_study(tmp_path):
    _copy(["untrained", "untrained_s1"], tmp_path)
    study = Study("ch11", "cpu-study", root=tmp_path)
    assert study.present("baseline") == 2 and study.present() == 2
    assert study.example("supervised", lead="x:")[0] == "x:"
    assert study.example("supervised")[1] == command(study.missing("supervised")[0])
    assert Study("ch11", "cpu-study", root=BOOK_RESULTS).example("supervised") == []
    assert all(len(line) <= 60 for line in command(study.plan[0], 60).splitlines())
    pending = study.pending(width=80, label="CPU-study").splitlines()
    n = len(study.plan) - 2
    assert pending[0] == f"{n} pending CPU-study runs of this chapter"
    assert pending[1] == f"- {study.missing()[0].name}"
    by_section = study.pending(by_section=True)
    assert by_section.startswith("== baseline: 2 of ")
    assert presence({"cpu-study": study}) == (
        f"cpu-study:   2 of {len(study.plan):3d} planned runs present"
    )
    assert presence({"cpu-study": study}, 2, "have files").endswith("have files")
    full = Study("ch11", "full", root=tmp_path)
    assert 0 < full.longest_run_s() <= 360
    assert full.longest_run_s(speed=2 * G.TARGET_VIEWS_PER_S) < full.longest_run_s()


def test_provenance_is_one_wrapped_line_per_file_in_name_order():
    study = Study("ch12", "cpu-study", root=BOOK_RESULTS)
    text = study.provenance(width=60)
    firsts = [line for line in text.splitlines() if not line.startswith("    ")]
    assert firsts == sorted(firsts) and len(firsts) == len(study.records)
    assert max(len(line) for line in text.splitlines()) <= 60
    empty = Study("ch12", "cpu-study", root="/nonexistent")
    assert empty.provenance() == ""
    both = {"cpu-study": study, "none": empty}
    assert provenance_listing(both, 60) == text
    headed = provenance_listing(both, 60, headers=True).splitlines()
    assert headed[0] == f"== cpu-study (results/cpu-study/ch12): {len(firsts)} files"
    assert headed[-1] == "== none (results/none/ch12): 0 files"


def test_error_bars_and_bands():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    three = R.seed_summary([_rec(v, s) for s, v in enumerate((0.4, 0.41, 0.42))])
    one = R.seed_summary([_rec(0.4)])
    assert error_bar(three) == three.halfwidth and error_bar(one) == 0
    fig, ax = plt.subplots()
    interval_band(ax, one, color="grey")
    assert not ax.patches  # one seed: no band
    interval_band(ax, three, color="grey")
    assert len(ax.patches) == 1
    plt.close(fig)
