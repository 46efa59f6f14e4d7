"""Chapter 9's benchmark readers (cl_lib.experiments.pipeline_report)."""

import json
from pathlib import Path

from cl_lib.experiments import pipeline_report as PR

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def _provenance(device="cpu", dirty=False):
    return {
        "hardware": {
            "device": device,
            "cpu": "AMD EPYC",
            "cpu_count": 2,
            "gpu": "H200",
        },
        "torch_threads": 1,
        "torch": "2.9.0",
        "library_commit": "0123456789abcdef",
        "library_dirty": dirty,
        "date_utc": "2026-11-29T19:46:16Z",
    }


def test_load_benchmarks_marks_missing_files(tmp_path):
    (tmp_path / "augment_cpu.json").write_text(json.dumps({"a": 1}))
    bench = PR.load_benchmarks(tmp_path)
    assert list(bench) == ["cpu", "cuda"] and list(bench["cpu"]) == list(PR.STEMS)
    assert bench["cpu"]["augment"] == {"a": 1} and bench["cpu"]["train"] is None
    assert all(doc is None for doc in bench["cuda"].values())


def test_provenance_label_names_tier_commit_and_date():
    cpu = PR.provenance_label({"provenance": _provenance()})
    assert cpu == (
        "CPU tier: AMD EPYC (2 cores, 1 thread); torch 2.9.0; commit 0123456; "
        "2026-11-29"
    )
    gpu = PR.provenance_label({"provenance": _provenance("cuda", dirty=True)})
    assert gpu.startswith("GPU tier: H200; ") and "0123456 + local changes" in gpu


def test_rate_uses_the_tier_clock():
    items = {"items_per_s": 10.0, "items_per_cpu_s": 40.0}
    views = {"views_per_s": 3.0, "views_per_cpu_s": 12.0}
    assert PR.rate(items, "cpu") == 40.0 and PR.rate(items, "cuda") == 10.0
    assert PR.rate(views, "cpu") == 12.0 and PR.rate(views, "cuda") == 3.0


def test_rows_of_the_committed_cpu_files():
    bench = PR.load_benchmarks(RESULTS, devices=("cpu",))["cpu"]
    aug = PR.augment_rows(bench["augment"], "cpu")
    r = bench["augment"]["results"]["cifar10"]
    assert aug["cifar10"] == {
        "side": r["view_side"],
        "batched": r["batched"]["items_per_cpu_s"],
        "per_image": r["torchvision_per_image"]["items_per_cpu_s"],
        "ratio": r["ratio_cpu_time"],
    }
    e2e = PR.e2e_rows(bench["e2e"], "cpu")
    assert set(e2e) == {"gpu_resident", "dataloader", "model only"}
    pipes = bench["e2e"]["pipelines"]
    assert e2e["dataloader"]["end to end"] == PR.rate(
        pipes["dataloader"]["end_to_end"], "cpu"
    )
    assert e2e["model only"] == PR.rate(bench["e2e"]["model_only"], "cpu")
