"""Tests for cl_lib.experiments.study: results joined to their plan."""

import json
import shutil
from pathlib import Path

import pytest

from cl_lib.experiments import grid as G
from cl_lib.experiments import results as R
from cl_lib.experiments.study import Study, difference_rows, interval, points, word

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
