"""Chapter 9's benchmark files, read for its tables: augmentation, pipelines, steps.

Book layer. Chapter 9 (``book/09_fast_pipelines.ipynb``) keeps its claims, its
arithmetic and its asserts; this module reads the JSON files that ``benchmarks/`` writes
(``{stem}_{device}.json``, stems :data:`STEMS`) and turns them into the rows the chapter
prints and draws:

- :func:`load_benchmarks` -- every file of both tiers (``None`` where one is missing);
- :func:`provenance_label` -- a file's tier, hardware, torch, commit and date;
- :func:`rate` -- the throughput of one measurement on the tier's clock (per CPU second
  on the CPU, wall clock on CUDA);
- :func:`augment_rows`, :func:`e2e_rows` -- the augmentation and pipeline tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "DEVICES",
    "STEMS",
    "augment_rows",
    "e2e_rows",
    "load_benchmarks",
    "provenance_label",
    "rate",
]

STEMS = ("augment", "train", "e2e")  # the three benchmark files of each tier
DEVICES = ("cpu", "cuda")  # the two tiers


def load_benchmarks(
    root: str | Path,
    stems: Sequence[str] = STEMS,
    devices: Sequence[str] = DEVICES,
) -> dict[str, dict[str, dict | None]]:
    """Read ``{root}/{stem}_{device}.json`` for every stem and device.

    Args:
        root: the results folder (``benchmarks/results``).
        stems, devices: which files.

    Returns:
        ``{device: {stem: document or None}}``, ``None`` where the file is missing.
    """
    root = Path(root)

    def load(stem: str, device: str) -> dict | None:
        path = root / f"{stem}_{device}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    return {dev: {stem: load(stem, dev) for stem in stems} for dev in devices}


def provenance_label(doc: Mapping) -> str:
    """Tier and hardware of a benchmark file, for captions and tables.

    Args:
        doc: a benchmark document with a ``provenance`` block.

    Returns:
        One line: ``"CPU tier: <cpu> (<n> cores, <t> thread); torch <v>; commit <sha7>
        [+ local changes]; <date>"`` (``"GPU tier: <gpu>"`` on CUDA).
    """
    p, hw = doc["provenance"], doc["provenance"]["hardware"]
    if hw["device"] == "cuda":
        where = f"GPU tier: {hw['gpu']}"
    else:
        where = (
            f"CPU tier: {hw['cpu']} ({hw['cpu_count']} cores, "
            f"{p['torch_threads']} thread)"
        )
    dirty = " + local changes" if p["library_dirty"] else ""
    return (
        f"{where}; torch {p['torch']}; commit {p['library_commit'][:7]}{dirty}; "
        f"{p['date_utc'][:10]}"
    )


def rate(m: Mapping, dev: str) -> float:
    """Items per second of one measurement, on the tier's clock.

    Args:
        m: a measurement dict, with ``items_per_s``/``items_per_cpu_s`` or
            ``views_per_s``/``views_per_cpu_s``.
        dev: ``"cpu"`` (per CPU second) or anything else (wall clock).

    Returns:
        The rate, a float.
    """
    if "items_per_s" in m:
        return m["items_per_cpu_s"] if dev == "cpu" else m["items_per_s"]
    return m["views_per_cpu_s"] if dev == "cpu" else m["views_per_s"]


def augment_rows(doc: Mapping, dev: str) -> dict[str, dict]:
    """The augmentation table of one tier: batched against per-image views.

    Args:
        doc: the tier's ``augment`` document.
        dev: its device, ``"cpu"`` or ``"cuda"``.

    Returns:
        ``{preset: {"side", "batched", "per_image", "ratio"}}``: the view side in
        pixels, both rates (:func:`rate`; per-image augmentation always runs on the CPU)
        and their ratio (in CPU time on the CPU tier).
    """
    rows = {}
    for preset, r in doc["results"].items():
        rows[preset] = {
            "side": r["view_side"],
            "batched": rate(r["batched"], dev),
            "per_image": rate(r["torchvision_per_image"], dev),
            "ratio": r["ratio_cpu_time"] if dev == "cpu" else r["ratio"],
        }
    return rows


def e2e_rows(doc: Mapping, dev: str) -> dict:
    """The end-to-end table of one tier: both pipelines and the model alone.

    Args:
        doc: the tier's ``e2e`` document.
        dev: its device, ``"cpu"`` or ``"cuda"``.

    Returns:
        ``{"gpu_resident": {"loader only", "end to end"}, "dataloader": {...},
        "model only": rate}``, views per second on the tier's clock (:func:`rate`).
    """
    pipes = doc["pipelines"]
    rows = {
        pipe: {
            "loader only": rate(pipes[pipe]["loader_only"], dev),
            "end to end": rate(pipes[pipe]["end_to_end"], dev),
        }
        for pipe in ("gpu_resident", "dataloader")
    }
    rows["model only"] = rate(doc["model_only"], dev)
    return rows
