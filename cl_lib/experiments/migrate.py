"""Results files in the one schema, old ones upgraded on reading and on disk.

Two things changed in what a results file holds, and files written before keep the old
form until this module rewrites them (numbers unchanged):

- **Geometry snapshots** (``extra.final``, ``extra.tracking[*]``) name their keys as
  :func:`cl_lib.evaluate.heldout_metrics` returns them: the projections ``z`` without
  a suffix, the backbone features ``h`` with ``_features``, ``_sphere`` for the
  L2-normalised ones. Old snapshots said ``embedding_variance_z`` and
  ``effective_rank_z`` for ``z`` and ``embedding_variance_sphere`` for **h** on the
  sphere (where ``metrics.embedding_variance_sphere`` is ``z`` on the sphere: one name,
  two meanings).
- **One commit per file**: ``library_commit`` (what the training process imported)
  identifies the code. The ``campaign`` block no longer repeats the commit of the
  campaign that started the run (``campaign.commit``, ``campaign.library_dirty``),
  which differed from it where a campaign's checkout moved on while it ran.

:func:`cl_lib.experiments.results.load_results` applies :func:`migrate_record` to what
it reads, so a file written by older code loads in the new schema;
``python -m cl_lib.experiments.migrate [PATH ...]`` rewrites the files under ``PATH``
(default ``book/results``) in place, atomically, and ``--check`` only reports.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SNAPSHOT_RENAMES", "main", "migrate_file", "migrate_record"]

# old snapshot key -> the name heldout_metrics gives the same number
SNAPSHOT_RENAMES = {
    "embedding_variance_z": "embedding_variance",
    "effective_rank_z": "effective_rank",
    "embedding_variance_sphere": "embedding_variance_sphere_features",
}
_OLD_ONLY = ("embedding_variance_z", "effective_rank_z")
_CAMPAIGN_DROPS = ("commit", "library_dirty")


def _snapshots(doc: dict) -> list[dict]:
    extra = doc.get("extra")
    if not isinstance(extra, dict):
        return []
    found = [extra["final"]] if isinstance(extra.get("final"), dict) else []
    tracking = extra.get("tracking")
    if isinstance(tracking, list):
        found += [t for t in tracking if isinstance(t, dict)]
    return found


def migrate_record(doc: dict) -> bool:
    """Upgrade one results record in place to the current schema (module docstring).

    Args:
        doc: a results record (as read from its JSON file).

    Returns:
        Whether anything changed (False for a record already in the schema).
    """
    changed = False
    for snap in _snapshots(doc):
        # an old snapshot always names z's numbers with "_z"; a new one has z's own
        # "embedding_variance_sphere", which must not be renamed
        if not any(k in snap for k in _OLD_ONLY):
            continue
        for old, new in SNAPSHOT_RENAMES.items():
            if old in snap:
                if new in snap:
                    raise ValueError(f"snapshot holds both {old!r} and {new!r}")
                snap[new] = snap.pop(old)
                changed = True
    campaign = doc.get("campaign")
    if isinstance(campaign, dict):
        for key in _CAMPAIGN_DROPS:
            if key in campaign:
                campaign.pop(key)
                changed = True
    return changed


def migrate_file(path: str | Path, write: bool = True) -> bool:
    """Upgrade one results file (atomically, in the repository's JSON layout: indent
    1, a final newline); returns whether it needed it."""
    from cl_lib.io import write_json

    path = Path(path)
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or not migrate_record(doc):
        return False
    if write:
        write_json(doc, path)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m cl_lib.experiments.migrate",
        description="upgrade results files to the current schema, in place",
    )
    p.add_argument("paths", nargs="*", default=["book/results"])
    p.add_argument("--check", action="store_true", help="report, change nothing")
    args = p.parse_args(argv)
    files = []
    for root in map(Path, args.paths):
        files += [root] if root.is_file() else sorted(root.rglob("*.json"))
    stale = [f for f in files if migrate_file(f, write=not args.check)]
    verb = "need upgrading" if args.check else "upgraded"
    print(f"{len(stale)} of {len(files)} files {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
