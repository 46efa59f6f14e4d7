"""Results files in the one schema: old snapshot names and the campaign's own commit
are upgraded on reading and by ``python -m cl_lib.experiments.migrate``, numbers
unchanged."""

import json

import pytest

from cl_lib.experiments import migrate as M
from cl_lib.experiments import results as R


def _old_record():
    snap = {
        "embedding_variance_features": 3.5,
        "embedding_variance_z": 0.25,
        "embedding_variance_sphere": 0.8125,  # of h, under z's name
        "effective_rank_features": 12.0,
        "effective_rank_z": 7.5,
    }
    return {
        "library_commit": "abc",
        "campaign": {"commit": "def", "library_dirty": False, "wall_time_s": 3.0},
        "extra": {"final": dict(snap), "tracking": [dict(snap, epoch=1)]},
        "metrics": {"embedding_variance_sphere": 0.5},  # z's, heldout_metrics: kept
    }


def test_an_old_record_gets_the_heldout_names_and_one_commit():
    doc = _old_record()
    assert M.migrate_record(doc)
    for snap in (doc["extra"]["final"], doc["extra"]["tracking"][0]):
        assert snap == {
            "embedding_variance_features": 3.5,
            "embedding_variance": 0.25,
            "embedding_variance_sphere_features": 0.8125,
            "effective_rank_features": 12.0,
            "effective_rank": 7.5,
            **({"epoch": 1} if "epoch" in snap else {}),
        }
    assert doc["campaign"] == {"wall_time_s": 3.0}
    assert doc["library_commit"] == "abc"
    assert doc["metrics"] == {"embedding_variance_sphere": 0.5}
    assert not M.migrate_record(doc)  # idempotent


def test_a_snapshot_with_both_names_is_refused():
    doc = {"extra": {"final": {"effective_rank_z": 1.0, "effective_rank": 2.0}}}
    with pytest.raises(ValueError, match="both"):
        M.migrate_record(doc)


def test_a_new_snapshot_keeps_z_on_the_sphere():
    snap = {"embedding_variance_sphere": 0.9, "embedding_variance_sphere_features": 0.3}
    doc = {"extra": {"final": dict(snap)}}
    assert not M.migrate_record(doc) and doc["extra"]["final"] == snap


def test_files_are_rewritten_in_place_and_read_upgraded(tmp_path, capsys):
    path = tmp_path / "ch10" / "run.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_old_record(), indent=1) + "\n")
    (tmp_path / "ch10" / "new.json").write_text(json.dumps({"extra": {}}) + "\n")
    loaded = R.load_results(tmp_path / "ch10")  # read: upgraded in memory
    assert loaded[1]["extra"]["final"]["effective_rank"] == 7.5
    assert M.main([str(tmp_path), "--check"]) == 1  # the file itself is still old
    assert "1 of 2 files need upgrading" in capsys.readouterr().out
    assert M.main([str(tmp_path)]) == 0
    doc = json.loads(path.read_text())
    assert doc["extra"]["final"]["embedding_variance_sphere_features"] == 0.8125
    assert path.read_text().endswith("}\n") and '\n "campaign"' in path.read_text()
    assert M.main([str(tmp_path), "--check"]) == 0


def test_the_stored_results_are_in_the_current_schema():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "book" / "results"
    stale = [p for p in sorted(root.rglob("*.json")) if M.migrate_file(p, write=False)]
    assert not stale, f"run python -m cl_lib.experiments.migrate: {stale[:3]}"
