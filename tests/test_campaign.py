"""Tests of the full grid's sizing and of ``python -m cl_lib.campaign`` (run and unpack)
on CPU.

The campaign test runs the real code path with the quick tier, a tiny budget and results
folders in pytest's tmp_path (never book/results/); it needs the CIFAR-10 archive
(``CL_LIB_DATA``) and is skipped without it.
"""

import copy
import dataclasses
import json
import shlex
import subprocess
import sys
import tarfile
import time

import pytest

from cl_lib import campaign as C
from cl_lib.experiments import grid as G


# ----------------------------------------------------------------------------- the grid
def test_full_grid_fits_a_lease_and_puts_the_headline_runs_first():
    gflops = G.TARGET_VIEWS_PER_S * G.gflop_per_view("resnet18", 32)
    runs = G.planned_runs("full")
    lease = [r for r in runs if r.lease]
    assert all(G.estimate_seconds(r, gflops) <= G.LEASE_RUN_LIMIT_S for r in lease)
    # first the untrained networks (an evaluation each: every full table gets its
    # baseline row), then the headline runs
    baselines = [r for r in runs if r.section == "baseline"]
    assert all(r.args["epochs"] == 0 for r in baselines)
    assert {(r.chapter, r.name) for r in baselines} >= {
        ("ch10", "untrained"),
        ("ch10", "untrained_bn"),
        ("ch11", "untrained"),
        ("ch11", "tiny_untrained"),
        ("ch12", "imagenette_untrained"),
        ("ch12", "in100_resnet50_untrained_bn"),
    }
    leased = [r for r in baselines if r.lease]
    assert runs[: len(leased)] == leased
    # 100 epochs of CIFAR-10 at batch 512 is 10 million views: about 4 min at the target
    head = runs[len(leased) : len(leased) + 5]
    assert [r.args["loss"] for r in head] == ["infonce", "dhel", "kcl", "dcl", "cloa"]
    assert all(
        r.chapter == "ch11"
        and r.args["dataset"] == "cifar10"
        and r.args["arch"] == "resnet18"
        and r.args["batch_size"] == 512
        for r in head
    )
    assert G.views_per_run(head[0]) == 10_000_000
    # chapter 11 follows the DHEL/KCL authors' recipe: LARS, lr 4.0 at batch 1024
    # (1.0 per 256 images), weight decay 1e-6, and so does chapter 12 (Imagenette and
    # ImageNet-100); chapter 10 reproduces the CLOA paper's SGD: "ours"
    for run in [r for r in runs if r.section != "baseline"]:  # untrained: no optimiser
        lars = run.chapter in ("ch11", "ch12")
        assert run.recipe == ("authors" if lars else "ours")
        assert (run.args.get("optimizer") == "lars") == lars
        if lars:
            assert run.args["lr"] * 1024 / 256 == 4.0
            assert run.args["weight_decay"] == 1e-6
            assert "--optimizer lars" in G.cli_command(run)
    assert (
        200 < G.estimate_seconds(head[0], gflops, overhead_s=0, per_snapshot_s=0) < 300
    )
    # runs that do not fit a lease exist (ImageNet-100) and come last
    assert not runs[-1].lease and all(r.lease for r in runs[: len(lease)])
    names = [(r.chapter, r.name) for r in runs]
    assert len(names) == len(set(names))
    with pytest.raises(ValueError):
        G.estimate_seconds(head[0], 0.0)


def test_a_new_tier_is_one_entry(monkeypatch):
    """A tier with three seeds needs only an entry in TIERS."""
    tiers = dict(G.TIERS)
    tiers["quick3"] = dict(copy.deepcopy(G.TIERS["quick"]), seeds=(0, 1, 2))
    monkeypatch.setattr(G, "TIERS", tiers)
    quick, study = G.planned_runs("quick", "ch11"), G.planned_runs("quick3", "ch11")
    assert len(study) == 3 * len(quick)
    run = next(r for r in study if r.name == "dhel_b128_t0.5_s2")
    assert run.args["seed"] == 2 and run.tier == "quick3"
    assert G.cli_command(run).startswith(
        "python -m cl_lib.experiments.results "
        "book/results/quick3/ch11/dhel_b128_t0.5_s2.json"
    )
    with pytest.raises(ValueError, match="unknown tier"):
        G.planned_runs("nope")


def test_cpu_study_grid_has_baselines_seeds_and_fits_the_cpu():
    """The cpu-study tier: an untrained (--epochs 0) run per seed in every chapter,
    three seeds for the headline runs, baselines then headline runs first, every run
    <= 10 min and every chapter <= 6 h at the planning rate (with the sweeps that test
    Parts I-III on images), all with recipe "ours"."""
    runs = G.planned_runs("cpu-study")
    assert all(r.recipe == "ours" and "optimizer" not in r.args for r in runs)
    assert all(G.cpu_seconds(r) <= G.CPU_STUDY_RUN_LIMIT_S for r in runs)
    first = [r for r in runs if r.section == "baseline"]
    assert runs[: len(first)] == first and all(r.args["epochs"] == 0 for r in first)
    assert runs[len(first)].name == "simclr_b256_t0.5"  # then the headline runs
    seeds = lambda rs: sorted(r.args.get("seed", 0) for r in rs)  # noqa: E731
    for ch in G.CHAPTERS:
        mine = G.planned_runs("cpu-study", ch)
        assert sum(G.cpu_seconds(r) for r in mine) <= 6 * 3600
        base = [r for r in mine if r.name.startswith(("untrained", "imagenette_unt"))]
        # as initialised and with BatchNorm statistics re-estimated, three seeds each
        assert seeds(base) == [0, 0, 1, 1, 2, 2]
        assert sum(bool(r.args.get("bn_recalibrate")) for r in base) == 3
        trained = next(r for r in mine if r.section != "baseline")
        # the untrained network is the same network on the same data
        for key in ("dataset", "arch", "width", "subset", "test_subset"):
            assert base[0].args[key] == trained.args[key]
        assert trained.args["test_subset"] >= 3925  # whole test sets
    ch11 = G.chapter_grid("ch11", "cpu-study")
    headline = {r.args["loss"] for r in ch11["losses"]}
    assert headline == {"infonce", "dcl", "dhel", "kcl", "cloa"}
    # DHEL twice (library and authors' settings); five seeds for the headline losses
    assert len(ch11["losses"]) == 3 * 6 + 2 * 4
    five = {r.name.split("_s")[0] for r in ch11["losses"] if r.args.get("seed") == 4}
    assert five == {
        "simclr_b256_t0.5",
        "dhel2v_b256_t0.3",
        "cloa_b256_t0.5",
        "kcl_b256",
    }
    assert ch11["supervised"][0].args["loss"] == "supcon"
    # the batch sweep twice: fixed epochs, and fixed steps (epochs x images / batch)
    assert {r.args["epochs"] for r in ch11["batch"]} == {12}
    steps = {
        r.args["epochs"] * r.args["subset"] // r.args["batch_size"]
        for r in ch11["batch steps"]
    }
    assert len(steps) == 1
    assert {r.args["dataset"] for r in ch11["tiny"]} == {"tiny-imagenet-32"}
    assert any(r.name.startswith("tiny_untrained") for r in ch11["baseline"])
    ch10 = G.chapter_grid("ch10", "cpu-study")
    rates = ch10["key rates"] + ch10["sweep"]
    assert all(r.track_every > 0 for r in rates)  # rank against epoch at every rate
    kinds = {(r.args["loss"], r.args["loss_kwargs"].get("base")) for r in rates}
    assert kinds == {("infonce", None), ("cloa", None), ("dcl", None), ("cloa", "dcl")}
    # two rates, four losses, three seeds; five for InfoNCE and its anchor at eta = 1
    assert len(ch10["key rates"]) == 2 * 4 * 3 + 2 * 2
    five = {r.name for r in ch10["key rates"] if r.args.get("seed", 0) >= 3}
    assert five == {f"{k}_lr1_s{s}" for k in ("infonce", "cloa") for s in (3, 4)}
    # the controls: the anchor term alone; eta x weight decay; the paper's protocol
    assert all(r.args["loss_kwargs"] == {"base": "none"} for r in ch10["anchor only"])
    step = ch10["effective step"]
    assert {(r.args["lr"], r.args["weight_decay"]) for r in step} == {
        (eta, wd) for eta in (0.1, 1.0, 3.0) for wd in (0.0, 5e-4)
    }
    assert len(step) == (3 * 2 + 2) * 3 and all(r.track_every for r in step)
    paper = ch10["paper protocol"]
    assert all(
        r.args["weight_decay"] == 0 and r.args["augment_kwargs"]["scale"] == [0.8, 1]
        for r in paper
    )
    # chapter 11's sweeps, three seeds each: tau for three losses, KCL over batch
    # sizes (fixed epochs, fixed steps) and gamma, Barlow Twins and VICReg
    assert len(ch11["tau seeds"]) == 3 * 5 * 3
    assert {r.args["batch_size"] for r in ch11["kcl batch"]} == {64, 128, 256, 512}
    assert (
        len(
            {
                r.args["epochs"] * 10_000 // r.args["batch_size"]
                for r in ch11["kcl batch steps"]
            }
        )
        == 1
    )
    assert sorted(
        {r.args["loss_kwargs"].get("gamma", 16.0) for r in ch11["kcl gamma"]}
    ) == [1.0, 4.0, 16.0]
    assert {r.args["loss"] for r in ch11["non-contrastive"]} == {
        "barlow_twins",
        "vicreg",
    }
    assert {
        r.args["loss"] for r in G.chapter_grid("ch12", "cpu-study")["imagenette"]
    } == {
        "infonce",
        "dhel",
    }


def test_cpu_study_plans_chapter_6_on_an_encoder_trained_over_1000_steps():
    """Chapter 6's runs: SimCLR at 32 px for > 1,000 steps, three seeds, with the
    untrained network in both forms on the same data and network."""
    ch06 = G.chapter_grid("ch06", "cpu-study")
    assert set(ch06) == {"baseline", "classes"}
    seeds = lambda rs: sorted(r.args.get("seed", 0) for r in rs)  # noqa: E731
    assert seeds(ch06["classes"]) == [0, 1, 2]
    assert seeds(ch06["baseline"]) == [0, 0, 1, 1, 2, 2]
    for run in ch06["classes"]:
        a = run.args
        steps = a["epochs"] * (a["subset"] // a["batch_size"])
        assert steps >= 1000 and G.image_side(a) == 32 and a["loss"] == "infonce"
    assert {r.args["arch"] for rs in ch06.values() for r in rs} == {"small_cnn"}
    assert G.chapter_grid("ch06", "quick") == G.chapter_grid("ch06", "cpu-long") == {}


def test_cpu_long_tier_plans_chapter_11_on_all_of_cifar10():
    """The cpu-long tier, chapter 11: every training and test image of CIFAR-10,
    the untrained network in both forms and the four headline losses with three seeds
    each, SupCon once, DCL and one-view DHEL last; every run within 45 min."""
    runs = G.planned_runs("cpu-long")
    assert {r.chapter for r in runs} == {"ch11", "ch12"} and all(
        r.tier == "cpu-long" for r in runs
    )
    assert G.planned_runs("cpu-long", "ch10") == []
    assert all(G.cpu_seconds(r) <= G.CPU_LONG_RUN_LIMIT_S for r in runs)
    cifar = [r for r in runs if r.chapter == "ch11"]
    assert all(
        r.args["subset"] == 50_000 and r.args["test_subset"] == 10_000 for r in cifar
    )
    ch11 = G.chapter_grid("ch11", "cpu-long")
    seeds = lambda rs: sorted(r.args.get("seed", 0) for r in rs)  # noqa: E731
    assert seeds(ch11["baseline"]) == [0, 0, 1, 1, 2, 2]
    losses = {}
    for r in ch11["losses"]:
        losses.setdefault(r.args["loss"], []).append(r)
    assert set(losses) == {"infonce", "dhel", "kcl", "cloa"}
    assert all(seeds(rs) == [0, 1, 2] for rs in losses.values())
    assert all(r.track_every > 0 for r in ch11["losses"])  # kNN along training
    assert [r.args["loss"] for r in ch11["supervised"]] == ["supcon"]
    assert {r.args["loss"] for r in ch11["more losses"]} == {"dcl", "dhel"}
    last = {r.name for r in runs[-len(ch11["more losses"]) :]}
    assert last == {r.name for r in ch11["more losses"]}  # if time allows
    speed = {(r.args["bf16"], r.args["channels_last"]) for r in runs}
    assert speed == {(True, True)}


def test_cpu_long_tier_plans_chapter_12_on_all_of_imagenette_at_64_px():
    """The cpu-long tier, chapter 12: every Imagenette training and validation image
    at 64 px, SimCLR and DHEL with three seeds and kNN along training, the untrained
    network in both forms with three seeds; before DCL and one-view DHEL."""
    ch12 = G.chapter_grid("ch12", "cpu-long")
    assert set(ch12) == {"baseline", "imagenette"}
    every = [r for rs in ch12.values() for r in rs]
    assert all(
        r.args["dataset"] == "imagenette-96"
        and r.args["subset"] == G.DATASET_TRAIN_SIZE["imagenette-96"]
        and r.args["test_subset"] == 3_925
        and r.args["image_size"] == 64
        and G.image_side(r.args) == 64
        for r in every
    )
    seeds = lambda rs: sorted(r.args.get("seed", 0) for r in rs)  # noqa: E731
    assert seeds(ch12["baseline"]) == [0, 0, 1, 1, 2, 2]
    by_loss = {}
    for r in ch12["imagenette"]:
        by_loss.setdefault(r.args["loss"], []).append(r)
    assert set(by_loss) == {"infonce", "dhel"}
    assert all(seeds(rs) == [0, 1, 2] for rs in by_loss.values())
    assert all(r.track_every == 5 == r.args["eval_every"] for r in ch12["imagenette"])
    order = [r.name for r in G.planned_runs("cpu-long")]
    more = G.chapter_grid("ch11", "cpu-long")["more losses"]
    assert max(order.index(r.name) for r in ch12["imagenette"]) < min(
        order.index(r.name) for r in more
    )
    # pixels cost in the estimate: a 64 px run costs about 4x a 32 px one per image
    run = ch12["imagenette"][0]
    at_32 = dataclasses.replace(run, args=dict(run.args, image_size=32))
    assert 3.5 < G.cpu_seconds(run) / G.cpu_seconds(at_32) < 4.1


def test_bench_views_per_s_reads_the_end_to_end_file(tmp_path):
    assert C.bench_views_per_s(tmp_path / "absent") is None
    (tmp_path / "e2e_cuda.json").write_text(
        json.dumps(
            {
                "benchmark": "end_to_end",
                "model": "cifar_resnet18",
                "batch_size": 512,
                "gpu_resident_views_per_s": 41000.0,
                "dataloader_views_per_s": 1500.0,
            }
        )
    )
    got = C.bench_views_per_s(tmp_path, "cuda")
    assert got["views_per_s"] == 41000.0 and got["batch_size"] == 512
    assert C.bench_views_per_s(tmp_path, "cpu") is None
    (tmp_path / "e2e_cpu.json").write_text(
        json.dumps({"gpu_resident_views_per_s": None})
    )
    assert C.bench_views_per_s(tmp_path, "cpu") is None  # cut off before measuring


def test_a_process_past_its_time_is_cut_off():
    lines = []
    t0 = time.perf_counter()
    status, rc = C._stream(
        [sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(60)"],
        timeout=5.0,
        prefix="> ",
        log=lines.append,
    )
    assert status == "cut off" and rc is None and time.perf_counter() - t0 < 30
    assert lines == ["> hi"]
    status, rc = C._stream(
        [sys.executable, "-c", "raise SystemExit(3)"],
        timeout=30,
        prefix="",
        log=lines.append,
    )
    assert (status, rc) == ("failed", 3)


# ------------------------------------------------------------------------- run + unpack
def test_run_and_unpack_on_cpu(tmp_path, monkeypatch):
    """The whole campaign on CPU with the quick tier: runs with a results file are not
    pending; the first pending run of chapter 11 is timed, finished and returned in at
    most 8 files; the rest is skipped; unpack files it into the book folder with
    provenance."""
    if not G.dataset_available("cifar10"):
        pytest.skip("the CIFAR-10 archive is not in CL_LIB_DATA")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    results, out = tmp_path / "results", tmp_path / "out"
    # the headline runs are "done" (placeholder files): the first pending run is the
    # batch sweep's cheapest, which keeps this test short on a shared CPU
    headline = [r for r in G.planned_runs("quick", "ch11") if r.section == "losses"]
    (results / "quick" / "ch11").mkdir(parents=True)
    for run in headline:
        (results / "quick" / "ch11" / f"{run.name}.json").write_text("{}")
    # a generous budget costs nothing: with --max-runs 1 the campaign ends after one run
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cl_lib.campaign",
            "run",
            "--budget-s",
            "120",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--profile",
            "quick",
            "--bench-budget-s",
            "0",
            "--results-root",
            str(results),
            "--chapters",
            "ch11",
            "--max-runs",
            "1",
            "--work-dir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "== environment" in proc.stdout and "torchvision:" in proc.stdout

    # what comes back: at most 8 plain files of at most 16 MiB, no sub-folders
    files = sorted(out.iterdir())
    assert [f.name for f in files] == sorted([C.ARCHIVE, C.LOG, C.MANIFEST])
    assert all(f.is_file() and f.stat().st_size < 16 * 2**20 for f in files)

    manifest = json.loads((out / C.MANIFEST).read_text())
    assert manifest["tier"] == "quick" and manifest["environment"]["torch"]
    assert manifest["wall_time_s"] <= 120
    statuses = {r["name"]: r["status"] for r in manifest["runs"]}
    first = G.planned_runs("quick", "ch11")[len(headline)]
    assert first.name == "simclr_b64_t0.5" and statuses[first.name] == "finished"
    assert sum(s == "finished" for s in statuses.values()) == 1
    assert set(statuses.values()) <= {"finished", "skipped"}
    assert len(statuses) == len(G.planned_runs("quick", "ch11")) - len(headline)
    with tarfile.open(out / C.ARCHIVE) as tar:
        assert tar.getnames() == [f"runs/ch11/{first.name}.json"]

    done = C.unpack(out, results_root=results, bench_dir=tmp_path / "bench")
    path = results / "quick" / "ch11" / f"{first.name}.json"
    assert done["runs"] == [str(path)]
    record = json.loads(path.read_text())
    assert record["command"] == G.cli_command(first)  # the grid's own command
    assert record["campaign"]["torch"] and record["campaign"]["wall_time_s"] > 0
    assert record["campaign"]["command_run"].startswith(
        "python -m cl_lib.experiments.results"
    )
    assert 0 <= record["final"]["knn_acc"] <= 1 and record["library_commit"]
    assert C.unpack(out, results_root=results, bench_dir=tmp_path / "bench")[
        "kept"
    ] == [str(path)]
    pending, _ = C.pending_runs("quick", results, ["ch11"])
    assert first.name not in {r.name for r in pending}
    with pytest.raises(ValueError, match="not a campaign folder"):
        C.unpack(tmp_path)


def test_cpu_study_campaign_files_finished_runs_into_the_book(tmp_path, monkeypatch):
    """The CPU campaign's code path (--into-book) with the cpu-study tier shrunk to
    seconds: a run with a results file is skipped, the next one is trained and filed
    into <root>/cpu-study/ch11/ with its provenance as soon as it finishes, nothing
    half-written is left there, and the next call finds nothing of it pending."""
    if not G.dataset_available("cifar10"):
        pytest.skip("the CIFAR-10 archive is not in CL_LIB_DATA")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tiny = copy.deepcopy(G.TIERS["cpu-study"])
    tiny["seeds"] = (0,)
    tiny["ch11"].update(
        size=dict(tiny["ch11"]["size"], subset=200, test_subset=100, epochs=1),
        batch=64,
        track=1,
        tiny={"size": {}, "losses": ()},
    )
    monkeypatch.setattr(G, "TIERS", dict(G.TIERS, **{"cpu-study": tiny}))
    results = tmp_path / "book_results"
    planned = G.planned_runs("cpu-study", "ch11")
    baselines = [r for r in planned if r.section == "baseline"]  # both kinds
    first = planned[len(baselines)]
    assert len(baselines) == 2 and all(b.args["epochs"] == 0 for b in baselines)
    assert first.name == "simclr_b64_t0.5"
    folder = results / "cpu-study" / "ch11"
    folder.mkdir(parents=True)
    for b in baselines:  # finished earlier: skipped
        (folder / f"{b.name}.json").write_text("{}")
    manifest = C.run_campaign(
        budget_s=240,
        out=tmp_path / "out",
        device="cpu",
        tier="cpu-study",
        bench_budget_s=0,
        results_root=results,
        chapters=["ch11"],
        work_dir=tmp_path / "work",
        max_runs=1,
        into_book=True,
    )
    status = {r["name"]: r for r in manifest["runs"]}
    assert not {b.name for b in baselines} & set(status)  # never started again
    assert status[first.name]["status"] == "finished"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*(f"{b.name}.json" for b in baselines), f"{first.name}.json"]
    )  # only finished runs, no temporary files
    record = json.loads((folder / f"{first.name}.json").read_text())
    assert record["command"] == G.cli_command(first)
    assert record["grid"] == first.metadata() and record["grid"]["recipe"] == "ours"
    prov = record["campaign"]
    assert prov["device"] == "cpu" and prov["cpu"] and prov["torch"]
    assert prov["wall_time_s"] > 0 and prov["cpu_time_s"] > 0
    assert record["library_commit"] and "commit" not in prov  # one commit a file
    assert prov["omp_num_threads"] == "1"
    assert record["library_commit"] and 0 <= record["final"]["knn_acc"] <= 1
    assert record["extra"]["tracking"]  # geometry along training (--track-every)
    pending, _ = C.pending_runs("cpu-study", results, ["ch11"])
    assert {first.name, *(b.name for b in baselines)}.isdisjoint(
        r.name for r in pending
    )


def test_pending_runs_restricted_to_sections(tmp_path, monkeypatch):
    """--sections: a campaign of the untrained baselines alone (both kinds)."""
    from cl_lib import campaign

    monkeypatch.setattr(campaign.G, "dataset_available", lambda *a, **k: True)
    runs, _ = campaign.pending_runs("cpu-study", tmp_path, ["ch11"], ["baseline"])
    names = {r.name for r in runs}
    assert {r.section for r in runs} == {"baseline"}
    assert {"untrained", "untrained_bn", "untrained_bn_s2"} <= names
    assert all(r.args["epochs"] == 0 for r in runs)
    assert all(
        r.args.get("bn_recalibrate")
        == r.name.startswith(("untrained_bn", "tiny_untrained_bn"))
        or ("bn_recalibrate" not in r.args and "_bn" not in r.name)
        for r in runs
    )


def test_lanes_split_the_pending_runs_without_overlap(tmp_path):
    """--lane I/N: two one-thread campaigns share a tier's runs, none twice."""
    assert C._lane("1/2") == (1, 2)
    for bad in ("2/2", "a/2", "1"):
        with pytest.raises(Exception):
            C._lane(bad)
    runs = [r.name for r in G.planned_runs("cpu-long")]
    names = [[n for n in runs if C.in_lane(n, i, 2)] for i in range(2)]
    assert not set(names[0]) & set(names[1])
    assert sorted(names[0] + names[1]) == sorted(runs)
    assert min(map(len, names)) > len(runs) // 4  # both lanes get a share
    # a lane's share does not depend on which other runs are still pending: two
    # checkouts holding different results files split the rest the same way
    rest = runs[3:]
    assert [n for n in rest if C.in_lane(n, 0, 2)] == [n for n in names[0] if n in rest]
    bad = subprocess.run(
        [sys.executable, "-m", "cl_lib.campaign", "run", "--budget-s", "1"]
        + ["--out", str(tmp_path / "o"), "--lane", "3/2"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--lane 3/2" in bad.stderr
    assert not (tmp_path / "o").exists()


def test_wrap_command_keeps_lines_short_and_pastable():
    """A flag and a long value go on two lines rather than past the width; the
    wrapped command splits back into the same words."""
    value = '{"scale":[0.8,1],"jitter":[0.2,0.2,0.2,0.1],"jitter_p":1,"gray_p":0}'
    command = f"python -m cl_lib.train --epochs 3 --augment-kwargs '{value}' --lr 1"
    wrapped = G.wrap_command(command, width=80)
    assert all(len(line) <= 80 for line in wrapped.splitlines())
    assert shlex.split(wrapped.replace("\\\n", " ")) == shlex.split(command)
    assert "--epochs 3" in wrapped  # short pairs still share a line
