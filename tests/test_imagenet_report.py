"""Chapter 12's tables, figures and lists (cl_lib.experiments.imagenet_report)."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from cl_lib.experiments import imagenet_report as IR
from cl_lib.experiments import results as R
from cl_lib.experiments.study import Study, presence, seed_stats

BOOK_RESULTS = Path(__file__).resolve().parent.parent / "book" / "results"


@pytest.fixture(scope="module")
def studies():
    return {tier: Study("ch12", tier, root=BOOK_RESULTS) for tier in IR.TIERS}


def _record(acc_knn, acc_probe, seed=0, **extra):
    return {
        "final": {"knn_acc": acc_knn, "linear_probe_acc": acc_probe},
        "config": {"seed": seed},
        **extra,
    }


def _write(root, tier, name, record):
    folder = root / tier / "ch12"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record))


def _groups():
    """Three seeds of an untrained reference, a loss far above it, one absent."""
    base = [_record(0.30 + d, 0.45 + d, s) for s, d in enumerate((0, 0.002, -0.002))]
    loss = [_record(0.50 + d, 0.60 + d, s) for s, d in enumerate((0, 0.003, -0.001))]
    return {"base": base, "loss": loss}


def test_recipe_settings_and_ratios_come_from_the_plan(studies):
    assert IR.NUM_CLASSES == {"imagenette-96": 10, "imagenet100": 100}
    lines = presence(studies, 2, "planned runs have results files").splitlines()
    assert [line.split(":")[0].strip() for line in lines] == list(IR.TIERS)
    assert lines[2].endswith("planned runs have results files")
    recipes = IR.recipes()
    assert "recipe 'ours':    SGD" in recipes and "recipe 'authors': LARS" in recipes
    rows = IR.settings(studies)
    assert [label for label, _ in rows] == ["smoke test", "CPU study"] + ["full"] * 3
    table = IR.settings_table(rows).splitlines()
    assert table[0].split()[:3] == ["setting", "data", "classes"]
    assert "126,689" in table[-1] and "resnet50" in table[-1]
    paper, cpu = studies["full"].run("in100_resnet18_simclr"), rows[1][1]
    ratios = IR.setting_ratios(paper, cpu)
    assert ratios["classes"] == (100, 10, 10.0) and ratios["epochs"][2] == 20
    text = IR.ratio_table(paper, cpu, 1234)
    assert "10.0x" in text and "(1,234 parameters)" in text


def test_summary_table_marks_references_and_pending_groups():
    groups = _groups()
    stats = seed_stats(groups)
    assert set(stats) == {(g, m) for g in groups for m in IR.METRICS}
    labels = {"base": "untrained", "loss": "SimCLR", "absent": "DHEL"}
    table = IR.summary_table(groups, stats, labels, base="base", references={"base"})
    rows = table.splitlines()[2:]
    assert len(rows) == 6  # a row per group and read-out, the absent one included
    assert rows[0].split()[-1] == "--"  # the reference has no gap to itself
    assert rows[2].split()[-1] == "+20.1"  # 0.5007 - 0.3000 in points
    assert rows[4].split()[:3] == ["DHEL", "kNN", "pending"]


def test_verdict_tables_use_the_books_rule():
    stats = seed_stats(_groups())
    verdicts = IR.reference_verdicts(stats, ["loss", "absent"], ["base"])
    assert set(verdicts) == {("loss", "kNN", "base"), ("loss", "probe", "base")}
    assert {d.verdict for d in verdicts.values()} == {R.HIGHER}
    table = IR.reference_table(verdicts, stats, {"loss": "SimCLR"}, {"base": "ref"}, 3)
    assert "vs ref" in table and "3/3" in table and "higher" in table
    pair = IR.pair_table(stats, "loss", "base")
    assert list(pair) == ["kNN", "probe"]
    assert pair["kNN"].diff == pytest.approx(0.20 + (0.002 - 0.0) / 3, abs=1e-3)
    assert IR.pair_table(stats, "loss", "absent") == {}


def test_plot_groups_draws_a_panel_per_read_out_and_marks_pending():
    groups = _groups()
    stats = seed_stats(groups)
    labels = {"base": "untrained", "loss": "SimCLR", "absent": "DHEL"}
    fig = IR.plot_groups(groups, stats, labels, 0.1, "title", base="base")
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["kNN accuracy", "probe accuracy"]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["pending"]
    assert fig.axes[0].patches  # the untrained network's interval as a band
    plt.close(fig)


def test_full_grid_report_tables_present_groups_and_lists_the_rest(tmp_path, capsys):
    _write(tmp_path, "full", "imagenette_simclr", _record(0.6, 0.7))
    _write(tmp_path, "full", "imagenette_simclr_s1", _record(0.6, 0.7, 1))  # unplanned
    gpu = {"hardware": {"gpu": "H100"}}
    _write(tmp_path, "full", "imagenette_untrained", _record(0.3, 0.4, **gpu))
    _write(tmp_path, "full", "imagenette_dhel", {"diverged": True, "config": {}})
    study = Study("ch12", "full", root=tmp_path)
    IR.full_grid_report(study)
    plt.close("all")
    out = capsys.readouterr().out
    assert "diverged (non-finite loss): imagenette_dhel" in out
    assert "Imagenette, resnet18:" in out and "ImageNet-100" not in out
    table = out.split("Imagenette, resnet18:")[1].splitlines()
    assert table[3].split()[:2] == ["untrained", "1"]  # plan order: untrained first
    assert table[4].split()[:2] == ["simclr", "1"]  # the full grid plans one seed
    listing = study.pending(label=IR.TIER_LABEL[study.tier])
    assert listing.startswith(f"{len(study.missing())} pending full-grid runs")
    assert "- in100_resnet50_kcl (GPU server: hours)" in listing
    assert "- imagenette_kcl\n" in listing  # a lease: no GPU-server note
    assert "--dataset imagenette-96" in listing
