"""Tests of cl_lib.experiments.results on synthetic results files written to a temporary
folder.

The synthetic records follow the layout ``cl_lib.train`` writes (config, hardware,
final, metrics, history); they live only in pytest's tmp_path, never in book/results/.
"""

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cl_lib.experiments import grid as G  # noqa: E402
from cl_lib.experiments import results as R  # noqa: E402


def fake_record(
    loss: str, lr: float, knn: float | None, batch_size: int = 128, seed: int = 0
) -> dict:
    final = {} if knn is None else {"knn_acc": knn, "linear_probe_acc": knn + 0.05}
    return {
        "schema_version": 1,
        "config": {
            "dataset": "cifar10",
            "loss": loss,
            "lr": lr,
            "batch_size": batch_size,
            "seed": seed,
            "loss_kwargs": {"tau": 0.5},
        },
        "profile": "full",
        "hardware": {
            "device": "cuda",
            "cpu": "some cpu",
            "gpu": "FAKE-GPU",
            "gpu_count": 1,
        },
        "torch_version": "2.0.0",
        "library_commit": "0123456789abcdef",
        "library_dirty": False,
        "date_utc": "2030-01-01T00:00:00+00:00",
        "wall_time_s": 600.0,
        "final": final,
        "metrics": {"effective_rank": 7.5},
        "history": [{"epoch": 1, "loss": 5.0}, {"epoch": 2, "loss": 4.0}],
    }


@pytest.fixture
def results_dir(tmp_path):
    folder = tmp_path / "full" / "ch10"
    folder.mkdir(parents=True)
    grid = [
        ("infonce", 0.01, 0.4),
        ("infonce", 1.0, 0.1),
        ("cloa", 0.01, 0.5),
        ("cloa", 1.0, 0.6),
    ]
    for loss, lr, knn in grid:
        (folder / f"{loss}_lr{lr:g}.json").write_text(
            json.dumps(fake_record(loss, lr, knn))
        )
    # a second seed of one point, and the CLI's own layout <name>/results.json
    (folder / "infonce_lr0.01_seed1.json").write_text(
        json.dumps(fake_record("infonce", 0.01, 0.3, seed=1))
    )
    (folder / "dhel_run").mkdir()
    (folder / "dhel_run" / "results.json").write_text(
        json.dumps(fake_record("dhel", 0.1, None))
    )
    return tmp_path / "full"


def test_load_results_recursive_sorted_with_relative_source(results_dir):
    records = R.load_results(results_dir)
    assert len(records) == 6
    sources = [r["source"] for r in records]
    assert sources == sorted(sources)
    assert all(not s.startswith("/") for s in sources)
    assert "ch10/dhel_run/results.json" in sources


def test_load_results_missing_folder_is_empty_and_bad_files_raise(tmp_path):
    assert R.load_results(tmp_path / "does_not_exist") == []
    with pytest.raises(ValueError, match="does not exist"):
        R.load_results(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        R.load_results(tmp_path)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected an object"):
        R.load_results(tmp_path)


def test_lookup_paths_candidates_callables_and_missing():
    rec = fake_record("dhel", 0.3, 0.7)
    assert R.lookup(rec, "config.loss_kwargs.tau") == 0.5
    assert R.lookup(rec, "history.-1.loss") == 4.0
    assert R.lookup(rec, ["final.nope", "final.knn_acc"]) == 0.7
    assert R.lookup(rec, "final.nope") is R.MISSING
    assert R.lookup(rec, "final.nope", default=None) is None
    assert R.lookup(rec, "history.9.loss") is R.MISSING
    assert R.lookup(rec, R.peak_lr) == pytest.approx(0.3 * 128 / 256)
    assert R.lookup({"config": {}}, R.peak_lr) is R.MISSING  # errors count as absent
    with pytest.raises(ValueError):
        R.lookup([1, 2], "a")
    with pytest.raises(ValueError):
        R.lookup(rec, [])


def test_select_by_config_and_dotted_paths(results_dir):
    records = R.load_results(results_dir)
    assert len(R.select(records, loss="cloa")) == 2
    assert len(R.select(records, loss="infonce", lr=0.01)) == 2
    assert len(R.select(records, {"config.seed": 1})) == 1
    assert len(R.select(records, loss=["cloa", "dhel"])) == 3
    assert R.select(records, loss="vicreg") == []


def test_curves_sorted_means_over_seeds_and_skips_missing(results_dir):
    records = R.load_results(results_dir)
    c = R.curves(records, x="config.lr", y="final.knn_acc", group="config.loss")
    assert set(c) == {"infonce", "cloa"}  # the dhel run has no knn_acc: skipped
    assert c["infonce"]["x"] == [0.01, 1.0]
    assert c["infonce"]["y"][0] == pytest.approx((0.4 + 0.3) / 2)
    assert c["infonce"]["n"] == [2, 1]
    nan_rec = fake_record("infonce", 10.0, None)
    nan_rec["final"]["knn_acc"] = float("nan")
    c2 = R.curves([nan_rec], x="config.lr", y="final.knn_acc")
    assert math.isnan(c2[None]["y"][0])


def test_table_rows_and_format_table(results_dir):
    records = R.select(R.load_results(results_dir), loss="cloa")
    rows = R.table_rows(
        records,
        {
            "loss": "config.loss",
            "lr": "config.lr",
            "kNN": "final.knn_acc",
            "missing": "final.nope",
        },
        digits=3,
    )
    assert rows[0] == {"loss": "cloa", "lr": "0.010", "kNN": "0.500", "missing": "--"}
    tiny = R.table_rows([fake_record("x", 1e-7, 0.1)], {"lr": "config.lr"})
    assert tiny[0]["lr"] == "1.00e-07"
    text = R.format_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["loss", "lr", "kNN", "missing"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 2 + len(rows)
    assert R.format_table([]) == "(no rows)"
    with pytest.raises(ValueError):
        R.table_rows(records, {"a": "config.lr"}, digits=-1)


def test_plot_curves_draws_one_line_per_group(results_dir):
    c = R.curves(
        R.load_results(results_dir),
        x="config.lr",
        y="final.knn_acc",
        group="config.loss",
    )
    fig, ax = plt.subplots()
    R.plot_curves(
        ax,
        c,
        xlabel="lr",
        ylabel="kNN",
        title="t",
        labels={"cloa": "CLOA"},
        styles={"cloa": {"linestyle": ":"}},
    )
    assert len(ax.lines) == 2
    assert {line.get_label() for line in ax.lines} == {"CLOA", "infonce"}
    assert ax.get_xscale() == "log"
    plt.close(fig)


def test_binomial_halfwidth_and_error_bars(results_dir):
    assert R.binomial_halfwidth(0.5, 100) == pytest.approx(1.96 * 0.05)
    assert R.binomial_halfwidth(1.0, 10) == 0.0
    for bad in ((0.5, 0), (1.5, 10)):
        with pytest.raises(ValueError):
            R.binomial_halfwidth(*bad)
    c = R.curves(
        R.load_results(results_dir),
        x="config.lr",
        y="final.knn_acc",
        group="config.loss",
    )
    fig, ax = plt.subplots()
    R.plot_curves(ax, c, xlabel="lr", ylabel="kNN", test_size=500)
    assert len(ax.containers) == 2  # one errorbar container per group
    plt.close(fig)


def test_provenance_and_run_name(results_dir):
    records = R.load_results(results_dir)
    by_name = {R.run_name(r): r for r in records}
    assert "dhel_run" in by_name and "cloa_lr1" in by_name
    line = R.provenance(by_name["cloa_lr1"])
    for part in (
        "cloa_lr1",
        "full profile",
        "FAKE-GPU",
        "torch 2.0.0",
        "commit 0123456789",
        "10.0 min",
        "date 2030-01-01",
    ):
        assert part in line


def test_provenance_names_tier_cores_and_threads():
    record = {
        "config": {"loss": "infonce"},
        "profile": "quick",  # the trainer's profile; the grid's tier wins
        "grid": {"name": "simclr_b256", "tier": "cpu-study"},
        "hardware": {"device": "cpu", "cpu": "SOME CPU", "cpu_count": 2, "gpu": None},
        "campaign": {"omp_num_threads": "1"},
        "wall_time_s": 90.0,
    }
    line = R.provenance(record)
    assert "cpu-study tier" in line and "quick profile" not in line
    assert "SOME CPU, 2 cores, 1 thread" in line and "1.5 min" in line
    del record["grid"], record["campaign"]
    line = R.provenance(record)
    assert "quick profile" in line and line.endswith("SOME CPU, 2 cores | 1.5 min")


def test_cli_command_and_missing_runs(results_dir):
    run = G.PlannedRun(
        "dhel_b512",
        {
            "dataset": "cifar10",
            "loss": "dhel",
            "batch_size": 512,
            "lr": 1e-7,
            "loss_kwargs": {"tau": 0.2},
            "subset": None,
        },
    )
    cmd = G.cli_command(run, results_dir="book/results/full/ch11", record=False)
    assert cmd.startswith(
        "python -m cl_lib.train --profile full --dataset cifar10 --loss dhel"
    )
    assert "--batch-size 512" in cmd and "--lr 1e-07" in cmd and "--subset" not in cmd
    assert """--loss-kwargs '{"tau":0.2}'""" in cmd
    assert cmd.endswith(
        "--out runs/dhel_b512 && mkdir -p book/results/full/ch11 && "
        "cp runs/dhel_b512/results.json book/results/full/ch11/dhel_b512.json"
    )
    rec = G.cli_command(run, results_dir="book/results/full/ch11", track_every=5)
    assert rec.startswith(
        "python -m cl_lib.experiments.results "
        "book/results/full/ch11/dhel_b512.json "
        "--track-every 5 -- --profile full --dataset cifar10"
    )
    with pytest.raises(ValueError, match="no chapter"):
        G.cli_command(run)  # no chapter: nowhere to put the file
    planned = [
        G.PlannedRun("cloa_lr1"),
        G.PlannedRun("dhel_run"),
        G.PlannedRun("kcl_b512"),
    ]
    assert [p.name for p in G.missing_runs(planned, R.load_results(results_dir))] == [
        "kcl_b512"
    ]
    for bad in ("", "a/b", "x.json", "a b"):
        with pytest.raises(ValueError):
            G.PlannedRun(bad)


def test_cli_command_parses_with_the_trainer():
    """Every planned command's flags are ones the real CLI accepts (argparse of
    cl_lib.train), and they give the run's own settings."""
    train = pytest.importorskip("cl_lib.train")
    import shlex

    for tier in G.TIERS:
        for run in G.planned_runs(tier):
            words = shlex.split(G.cli_command(run))
            cfg = train.config_from_args(words[words.index("--") + 1 :])
            assert cfg.profile == G.TIERS[tier]["profile"]
            for key, value in run.args.items():
                assert getattr(cfg, key) == value, (run.name, key)


def _tiny_image_folder(root, n_train=12, n_test=6, size=16):
    """Two colour classes of noisy 16x16 PNGs in <root>/{train,test}/<class>/."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, colour in enumerate(((200, 40, 40), (40, 40, 200))):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                img = np.clip(
                    np.array(colour) + rng.normal(0, 30, (size, size, 3)), 0, 255
                ).astype("uint8")
                Image.fromarray(img).save(d / f"{i}.png")


def test_train_and_record_end_to_end(tmp_path):
    """The wrapper CLI trains through cl_lib.train, tracks geometry per epoch and saves
    a file that the loading helpers read back."""
    pytest.importorskip("cl_lib.train")
    pytest.importorskip("cl_lib.data")
    _tiny_image_folder(tmp_path / "imgs")
    save = tmp_path / "out" / "tiny_run.json"
    argv = [
        str(save),
        "--track-every",
        "1",
        "--",
        "--profile",
        "full",
        "--device",
        "cpu",
        "--dataset",
        f"imagefolder:{tmp_path / 'imgs'}",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--arch",
        "small_cnn",
        "--width",
        "4",
        "--proj-dim",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--warmup-epochs",
        "0",
        "--probe-steps",
        "5",
        "--eval-every",
        "1",
        "--quiet",
    ]
    record = R.main(argv)
    assert save.exists() and record["diverged"] is False
    (loaded,) = R.load_results(save.parent)
    assert R.run_name(loaded) == "tiny_run"
    assert loaded["command"].startswith(
        f"python -m cl_lib.experiments.results {save} --track-every 1 -- --profile full"
    )
    final = loaded["extra"]["final"]
    assert 0 <= final["embedding_variance_sphere_features"] <= 1 + 1e-6
    assert (
        final["embedding_variance_features"] >= 0
        and final["effective_rank_features"] >= 1
    )
    assert len(final["singular_values_features"]) == min(
        2 * 6, 8 * 4
    )  # min(test images, feature width)
    # chapter 1's over-fusion diagnostic (2 classes: between 1/2 and 1) and the scale
    # of each of small_cnn's four convolutions, whose step is eta / ||W||^2
    for key in ("class_mean_collinearity_features", "class_mean_collinearity_z"):
        assert 0.5 - 1e-6 <= final[key] <= 1 + 1e-6
        # two centred class means are always on one line
        centred = key.replace("collinearity_", "collinearity_centred_")
        assert final[centred] == pytest.approx(1.0)
    assert len(final["conv_weight_norms"]) == 4
    assert all(n > 0 for n in final["conv_weight_norms"])
    track = loaded["extra"]["tracking"]
    assert [t["epoch"] for t in track] == [1, 2]
    # the weights moved between the snapshots: the norms are of the trained network
    assert track[0]["conv_weight_norms"] != track[1]["conv_weight_norms"]
    assert all(0 <= t["knn_acc"] <= 1 and 0 <= t["alignment"] <= 4 for t in track)
    assert 0 <= R.lookup(loaded, "final.knn_acc") <= 1
    # retrieval: one query per class, its 5 nearest training images, most similar first
    ret = loaded["extra"]["retrieval"]
    assert sorted(ret["query_label"]) == sorted(set(ret["query_label"]))
    assert all(len(row) == 5 for row in ret["neighbour_index"])
    assert all(row == sorted(row, reverse=True) for row in ret["cosine"])
    assert all(-1 - 1e-6 <= c <= 1 + 1e-6 for row in ret["cosine"] for c in row)
    shown = R.retrieval_images(loaded)  # the same images, read back from the splits
    q = len(ret["query_index"])
    assert shown["query"].shape[0] == q and shown["neighbours"].shape[:2] == (q, 5)
    assert shown["query"].dtype == shown["neighbours"].dtype == torch.uint8
    with pytest.raises(ValueError, match="usage"):
        R.main([str(save)])


# ------------------------------------------------------------ the chapters' full branch
BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = [
    ("ch10", "10_collapse_real_data"),
    ("ch11", "11_cifar_benchmark"),
    ("ch12", "12_imagenet100"),
]


def test_retrieval_reuses_the_final_features(tmp_path):
    """retrieval_snapshot takes the final evaluation's features (no second pass over
    the training split) and finds the same neighbours as a fresh pass would."""
    from cl_lib import train as T

    _tiny_image_folder(tmp_path / "imgs")
    cfg = T.config_from_args(
        ["--profile", "full", "--device", "cpu", "--dataset"]
        + [f"imagefolder:{tmp_path / 'imgs'}", "--cache-dir", str(tmp_path / "c")]
        + ["--arch", "small_cnn", "--width", "4", "--proj-dim", "8", "--epochs", "1"]
        + ["--batch-size", "8", "--warmup-epochs", "0", "--probe-steps", "5"]
        + ["--knn-k", "3", "--quiet"]
    )
    result = T.train(cfg)
    assert result.state.final_features is not None
    reused = R.retrieval_snapshot(result.model, result.state, k=3)
    result.state.final_features = None
    fresh = R.retrieval_snapshot(result.model, result.state, k=3)
    assert reused["neighbour_index"] == fresh["neighbour_index"]
    flat = [[c for row in r["cosine"] for c in row] for r in (reused, fresh)]
    assert flat[0] == pytest.approx(flat[1], abs=1e-4)


def _code_cells(nb_path):
    nbformat = pytest.importorskip("nbformat")
    return [
        c.source
        for c in nbformat.read(nb_path, as_version=4).cells
        if c.cell_type == "code"
    ]


@pytest.mark.parametrize("chapter, notebook", CHAPTERS)
def test_chapter_plots_synthetic_full_results(chapter, notebook, tmp_path, monkeypatch):
    """Run a real-image chapter's code against SYNTHETIC full-profile files (made in
    tmp_path from the stored quick results, relabelled; never written to book/results/):
    every planned full run present, one of them diverged. The full-results branch must
    plot without error."""
    nb_path = BOOK / f"{notebook}.ipynb"
    quick_dir = BOOK / "results" / "quick" / chapter
    if not nb_path.exists() or not quick_dir.exists():
        pytest.skip(f"{notebook} or its quick results are not in this checkout")
    cells = _code_cells(nb_path)
    (tmp_path / "results").mkdir()
    for tier in (BOOK / "results").iterdir():  # the stored tiers, all but "full"
        if tier.is_dir() and tier.name != "full":
            (tmp_path / "results" / tier.name).symlink_to(tier)
    monkeypatch.chdir(tmp_path)
    planned = {run.name: run for run in G.planned_runs("full", chapter)}
    quick = R.load_results(quick_dir)
    full_dir = tmp_path / "results" / "full" / chapter
    full_dir.mkdir(parents=True)
    for i, (name, run) in enumerate(planned.items()):
        same = [q for q in quick if q["config"]["loss"] == run.args["loss"]] or quick
        rec = json.loads(json.dumps(same[i % len(same)]))
        rec.pop("source")
        rec["config"].update(run.args)
        rec.update(
            profile="full",
            hardware={"device": "cuda", "gpu": "SYNTHETIC", "gpu_count": 1},
        )
        if i == len(planned) - 1:  # a diverged run: no accuracies, no dataset block
            rec = {
                "config": rec["config"],
                "profile": "full",
                "diverged": True,
                "final": {},
                "extra": {},
            }
        (full_dir / f"{name}.json").write_text(json.dumps(rec))
    namespace = {}
    for i, src in enumerate(cells):  # the whole chapter, now with full results present
        exec(compile(src, f"{notebook}[{i}]", "exec"), namespace)
        plt.close("all")
    # the chapter's full-tier records: in its list ``full`` or in a full-tier Study
    full = namespace.get("full")
    if not isinstance(full, list):
        full = _full_study(namespace).records
    assert len(full) == len(planned)


def _full_study(namespace):
    """The full-tier :class:`Study` a chapter built (a name of its own, a value of a
    dict of studies, or in an object's ``studies``)."""
    from cl_lib.experiments.study import Study

    for value in namespace.values():
        found = [value]
        if isinstance(value, dict):
            found += list(value.values())
        found += list(getattr(value, "studies", {}).values())
        for s in found:
            if isinstance(s, Study) and s.tier == "full":
                return s
    raise AssertionError("the chapter builds no full-tier Study")


@pytest.mark.parametrize("chapter", [c for c, _ in CHAPTERS])
def test_stored_quick_results_are_the_quick_grid(chapter):
    """book/results/quick/<chapter> holds exactly the quick grid's runs, each made by
    its planned command at one clean commit of the library."""
    folder = BOOK / "results" / "quick" / chapter
    if not folder.exists():
        pytest.skip(f"no quick results of {chapter} in this checkout")
    records = R.load_results(folder)
    stored = {R.run_name(r): r["command"] for r in records}
    assert stored == {
        run.name: G.cli_command(run) for run in G.planned_runs("quick", chapter)
    }
    assert len({r["library_commit"] for r in records}) == 1
    assert not any(r["library_dirty"] for r in records)


def test_seed_groups_and_summaries_with_intervals():
    from cl_lib.experiments import results as R

    def rec(name, acc, n=10_000):
        return {
            "source": f"ch11/{name}.json",
            "final": {"knn_acc": acc},
            "dataset": {"test_size": n},
        }

    recs = [
        rec("simclr_b256_t0.5_s2", 0.40),
        rec("simclr_b256_t0.5", 0.41),
        rec("simclr_b256_t0.5_s1", 0.42),
        rec("untrained", 0.31),
        rec("tiny_s1x", 0.1),
    ]
    groups = R.by_seed_group(recs)
    assert list(groups) == ["simclr_b256_t0.5", "tiny_s1x", "untrained"]
    assert [R.run_name(r) for r in groups["simclr_b256_t0.5"]] == [
        "simclr_b256_t0.5",
        "simclr_b256_t0.5_s1",
        "simclr_b256_t0.5_s2",
    ]
    s = R.seed_summary(groups["simclr_b256_t0.5"])
    assert s.n == 3 and abs(s.mean - 0.41) < 1e-12 and abs(s.sd - 0.01) < 1e-12
    assert s.values == (0.41, 0.42, 0.40)  # seed order
    # the t(2) interval of the mean over seeds; the common test set adds nothing
    assert abs(s.halfwidth - 4.302652729911275 * 0.01 / 3**0.5) < 1e-12
    assert str(s) == "0.410 +- 0.010 (3)" and tuple(s)[:3] == (s.mean, s.sd, 3)
    u = R.seed_summary(groups["untrained"])
    assert u.n == 1 and u.sd == 0 and u.halfwidth == float("inf")  # no interval
    one = R.seed_summary(
        [{"source": "a.json", "metrics": {"rank": 3.0}}], "metrics.rank"
    )
    assert one.halfwidth == float("inf")
    # one seed on either side: no verdict, whatever the gap
    assert R.compare(s, u) == R.compare(u, s) == R.compare(one, one) == R.ONE_SEED
    base = R.seed_summary([rec("u", 0.31), rec("u_s1", 0.312), rec("u_s2", 0.308)])
    assert R.compare(s, base) == R.HIGHER and R.compare(base, s) == R.LOWER
    assert R.compare(base, s, words={"lower": "below"}) == "below"
    d = R.difference(s, base)
    assert d.interval() == "+10.0 [+7.6, +12.4] points" and d.p < 0.01
    # records, summaries and plain numbers are the same input
    assert R.difference(groups["simclr_b256_t0.5"], [0.31, 0.312, 0.308]) == d
    # the old rule's "no difference" is now undecided, or equivalent by a TOST
    near = R.seed_summary([rec("n", 0.405), rec("n_s1", 0.415), rec("n_s2", 0.41)])
    assert R.compare(s, near) == R.UNDECIDED
    assert R.compare(s, near, margin=0.05) == "equivalent within ±5 points"
    assert R.EQUIVALENT == "equivalent within ±1 point"
    with pytest.raises(ValueError, match="at least one"):
        R.seed_summary([])
    with pytest.raises(ValueError, match="missing in div"):
        R.seed_summary([{"source": "div.json", "final": {}, "diverged": True}])
    with pytest.raises(ValueError, match="not finite"):
        R.seed_summary([rec("x", float("nan"))])


def test_compare_table_applies_holm():
    from cl_lib.experiments import results as R

    b = [0.40, 0.41, 0.42]
    a = [v + 0.0245 for v in b]  # Welch p about 0.04 alone
    assert R.compare(a, b) == R.HIGHER
    table = R.compare_table({"a": (a, b), **{i: (b, b) for i in range(3)}})
    assert table["a"].verdict == R.UNDECIDED and table["a"].p_adj > 0.05
    assert list(table) == ["a", 0, 1, 2]


def test_correctness_reads_per_image_strings():
    import numpy as np

    from cl_lib import stats as S
    from cl_lib.experiments import results as R

    bits = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    rec = {"final": {"knn_acc": bits.mean(), "knn_correct": S.encode_correct(bits)}}
    assert np.array_equal(R.correctness(rec), bits)
    assert R.correctness(rec, "final.linear_probe_correct") is None


def test_class_separation_tells_separated_classes_from_mixed_ones():
    """Chapter 6's measures on features with known geometry: tight, far-apart classes
    have small CDNVs, few-shot errors near 0 and non-vacuous bounds; labels drawn at
    random give errors near chance and every pair's Cantelli bound above its error."""
    import torch

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(50)
    centres = 10 * torch.eye(4, 16, dtype=torch.float64)
    tight = centres[labels] + 0.1 * torch.randn(
        200, 16, generator=g, dtype=torch.float64
    )
    sep = R.class_separation(tight, labels, shots=(1, 5), trials=5)
    assert sep["shots"] == [1, 5] and len(sep["ncc_error"]) == 2
    assert sep["cdnv"] < 0.01 and sep["directional_cdnv"] < sep["cdnv"]
    assert max(sep["ncc_error"]) < 0.01 and sep["fewshot_bound_limit"] < 0.1
    assert len(sep["directional_cdnv_pairs"]) == 12  # ordered pairs, no diagonal
    mixed = R.class_separation(
        torch.randn(200, 16, generator=g, dtype=torch.float64), labels, trials=5
    )
    assert min(mixed["ncc_error"]) > 0.5 and mixed["cdnv"] > 10 * sep["cdnv"]
    assert all(
        e <= b + 1e-12
        for e, b in zip(mixed["pairwise_ncc_error"], mixed["cantelli_bound"])
    )


def test_separation_values_name_the_numbers_of_one_run():
    import torch

    g = torch.Generator().manual_seed(1)
    labels = torch.arange(3).repeat_interleave(40)
    h = 4 * torch.eye(3, 8, dtype=torch.float64)[labels]
    h = h + torch.randn(120, 8, generator=g, dtype=torch.float64)
    record = {"extra": {"final": {"class_separation": R.class_separation(h, labels)}}}
    v = R.separation_values(record)
    assert v["ratio"] == pytest.approx(v["cdnv"] / v["directional_cdnv"])
    assert {"ncc_error_m1", "ncc_error_m5", "ncc_error_m20", "bound_m20"} <= set(v)
    assert 0 <= v["pairs_cantelli_below_half"] <= 6 and v["cantelli_over_error"] >= 1
    with pytest.raises(KeyError):
        R.separation_values({"extra": {"final": {}}})


def test_separation_table_sets_settings_side_by_side():
    import torch

    g = torch.Generator().manual_seed(2)
    labels = torch.arange(3).repeat_interleave(30)

    def record(spread):
        h = 4 * torch.eye(3, 8, dtype=torch.float64)[labels]
        h = h + spread * torch.randn(90, 8, generator=g, dtype=torch.float64)
        sep = R.class_separation(h, labels, shots=(1, 5))
        return {"extra": {"final": {"class_separation": sep}}}

    rows = {"mean CDNV": ("cdnv", 2), "NCC error, 1 shot": ("ncc_error_m1", 3)}
    text, values = R.separation_table(
        {"loose": [record(2.0), record(2.0)], "tight": [record(0.5)]}, rows
    )
    assert "loose (n=2)" in text and "tight (n=1)" in text and "±" in text
    assert len(values["loose"]["cdnv"]) == 2
    assert values["tight"]["cdnv"][0] < min(values["loose"]["cdnv"])
