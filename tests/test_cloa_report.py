"""Tests for cl_lib.experiments.cloa_report: chapter 10's tables and read-outs."""

import shutil
from pathlib import Path

import matplotlib
import pytest

from cl_lib.experiments import cloa_report as C
from cl_lib.experiments import results as R
from cl_lib.experiments.study import interval

matplotlib.use("Agg")
BOOK_RESULTS = Path(__file__).resolve().parent.parent / "book" / "results"
CH10 = BOOK_RESULTS / "cpu-study" / "ch10"


@pytest.fixture(scope="module")
def stored():
    """The chapter's stored results, as the notebook loads them."""
    return C.load(BOOK_RESULTS)


def _subset(tmp_path, names):
    """A results root holding only some of the stored CPU-study files."""
    folder = tmp_path / "cpu-study" / "ch10"
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(CH10 / f"{name}.json", folder)
    return C.load(tmp_path)


def _summary(values, key="final.knn_acc"):
    head, leaf = key.split(".")
    return R.seed_summary([{head: {leaf: v}} for v in values], key)


def test_formatting_helpers():
    s = _summary([0.30, 0.32, 0.34])
    assert C.pm(s) == "0.320 ± 0.020"
    assert C.pm(_summary([0.3])) == "0.300"
    # the variance table's intervals: one seed shows its value alone
    assert interval(_summary([0.5], "x.v"), 2, one_seed=C.ONE) == "0.50 (1 seed)"
    assert interval(_summary([1.0, 1.0, 1.0], "x.v"), 2, log=True) == "[10, 10]"
    recs = [{"x": {"v": v}} for v in (18.0, 3.4, 5.3)]
    assert C.per_seed(recs, "x.v") == "3.4, 5.3, 18"
    assert C.log_var({"extra": {"final": {"embedding_variance_features": 100.0}}}) == 2


def test_beats_in_reads_both_references():
    class V:
        def __init__(self, verdict):
            self.verdict = verdict

    up, flat = V(R.HIGHER), V(R.UNDECIDED)
    table = {("a", j, s): up for j in range(2) for s in C.ACC}
    assert C.beats_in(table, "a", 2) == "both"
    table[("a", 1, "kNN")] = flat
    assert C.beats_in(table, "a", 2) == "probe"
    table[("a", 0, "probe")] = flat
    assert C.beats_in(table, "a", 2) == "no"
    table[("a", 0, "kNN")] = V(R.ONE_SEED)
    assert C.beats_in(table, "a", 2) == "one seed"


def test_stored_results_load_with_both_references(stored):
    assert stored.untrained and stored.untrained_bn and len(stored.references) == 2
    assert "results files: CPU study" in C.overview(stored)
    assert C.plan_report(stored).endswith(
        "every stored file matches its planned command"
    )
    head = stored.find("infonce", 1.0)
    assert head is not None and stored.status(head) in ("both", "kNN", "probe", "no")
    assert stored.loss_of("cloa_dcl_lr1_s2") == "cloa_dcl"
    assert stored.label("cloa_lr0.001", stored.groups["cloa_lr0.001"]).endswith(
        "lr 0.001"
    )
    names = [n for n, _ in stored.ordered(stored.groups)]
    assert names[:2] == ["untrained", "untrained_bn"]
    assert C.PAPER_STEPS / stored.steps() > 100


def test_reports_of_the_stored_results(stored):
    report = C.accuracy_report(stored)
    for name in (*C.NAMES.values(), *C.REFS.values()):
        assert name in report
    sweep = stored.sweep()
    top = C.sweep_verdicts(sweep)
    assert all(key[0] in C.NAMES and key[1] < 1 for key in top)
    assert C.sweep_report(stored, sweep, top).startswith("kNN accuracy (seed means")
    assert "InfoNCE at lr 1" in C.headline_report(stored, C.reference_verdicts(stored))
    courses = C.rank_courses(stored)
    assert set(courses) <= set(C.NAMES)
    assert "final rank by lr" in C.rank_report(stored, C.final_ranks(sweep), courses)
    rate_v = C.rate_variance_verdicts(C.both_rates(stored))
    assert "raw variance" in C.variance_report(stored, sweep, rate_v)
    assert "var sphere (95%)" in C.variance_table(stored)
    anchor = C.anchor_verdicts(stored)
    assert "anchor (CLOA-) minus base loss" in C.anchor_report(stored, anchor)
    assert "paper 10%" in C.paper_table(stored)
    assert "InfoNCE at lr 1" in C.answer_report(stored, top, anchor, rate_v)
    listing = C.provenance_listing(stored)
    assert "cpu-study tier" in listing and "planned runs with no file yet" in listing


def test_figures_draw(stored):
    import matplotlib.pyplot as plt

    C.plot_accuracy(stored, stored.groups, stored.untrained, "accuracy")
    C.plot_along(stored, stored.groups, stored.untrained, "along", stored.untrained_bn)
    text, step_end = C.effective_step(stored)
    assert "effective step" in text and all(k[0] in C.NAMES for k in step_end)
    plt.close("all")


def test_missing_runs_are_reported_not_fatal(tmp_path):
    d = _subset(tmp_path, ["untrained", "untrained_bn", "infonce_lr1", "cloa_lr1"])
    assert d.find("dcl", 1.0) is None and d.find("infonce", 1.0)
    assert C.both_rates(d) == {}
    assert C.attribution_verdicts(d) == {}
    assert C.attribution_report(d, {}).startswith("pending")
    assert "pending" in C.anchor_report(d, C.anchor_verdicts(d))
    assert d.quick == [] and d.full == []
    assert "full-grid runs present: 0 of" in C.full_grid_report(d)


def test_paper_protocol_reads_its_settings_and_decides_each_table(tmp_path):
    """Stand-ins under the planned names: InfoNCE at lr 1 and 0.01 (copies of the
    effective-step runs, the one at 0.01 shifted down 5 points), CLOA at lr 1."""
    import json

    folder = tmp_path / "cpu-study" / "ch10"
    folder.mkdir(parents=True)
    seeds = ("", "_s1", "_s2")
    for ref in ("untrained", "untrained_bn"):
        for s in seeds:
            shutil.copy(CH10 / f"{ref}{s}.json", folder)

    def fake(name, source, eta, shift=0.0):
        for s in seeds:
            r = json.loads((CH10 / f"{source}{s}.json").read_text())
            r["peak_lr"] = eta
            r["final"]["knn_acc"] += shift
            r["source"] = f"ch10/{name}{s}.json"
            (folder / f"{name}{s}.json").write_text(json.dumps(r))

    fake("paper_infonce_lr1", "step_infonce_lr1_wd0", 1.0)
    # a run that maps a held-out image to 0 has no sphere variance: left out of it
    nan_run = folder / "paper_infonce_lr1_s2.json"
    r = json.loads(nan_run.read_text())
    r["extra"]["final"]["embedding_variance_sphere_features"] = float("nan")
    nan_run.write_text(json.dumps(r))
    fake("paper_infonce_lr0.01", "step_infonce_lr1_wd0", 0.01, shift=-0.05)
    fake("paper_cloa_lr1", "step_cloa_lr1_wd0", 1.0)
    d = C.load(tmp_path)
    found = C.paper_protocol(d)
    strong, mild = ("infonce", 1.0), ("infonce", 0.01)
    assert set(found["groups"]) == {strong, mild, ("cloa", 1.0)}
    assert {k[:2] for k in found["trains"]} == {
        (k, j) for k in found["groups"] for j in (0, 1)
    }
    # the rate pair: the planted 5 points on kNN only, decided
    assert found["pairs"][(strong, mild, "kNN")].verdict == R.HIGHER
    assert abs(found["pairs"][(strong, mild, "kNN")].diff - 0.05) < 1e-9
    assert found["pairs"][(strong, mild, "probe")].diff == 0
    # pairs with an absent setting are left out, not reported
    assert all(("anchor", 1.0) not in k[:2] for k in found["pairs"])
    assert set(found["fusion"]) == {(strong, mild, m) for m in C.FUSION}
    text = C.paper_protocol_report(d, found)
    assert "anchor alone  1     0  pending" in text and "over-fusion" in text
    assert "paper protocol: 9 of 18 runs present" in text
    assert "* sphere var: without paper_infonce_lr1_s2" in text
    assert found["fusion"][(strong, mild, "sphere var")].n_a == 2  # the others: 3
    assert found["fusion"][(strong, mild, "collinearity")].n_a == 3
    import matplotlib.pyplot as plt

    C.plot_paper_protocol(d, found, "paper protocol")  # absent settings left out
    plt.close("all")
