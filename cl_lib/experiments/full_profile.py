"""Run a chapter in the full profile and store what it printed.

    python -m cl_lib.experiments.full_profile book/02_hyperspherical_energy.ipynb [...]

A chapter's ``assert`` statements are its claims, and the full profile runs the same
code with more seeds, steps and samples. Executing a chapter under
``CL_BOOK_PROFILE=full`` therefore checks every claim at full size. This command does
that on a copy (the stored, quick-profile notebook is left as it is) and writes
``book/results/chNN_full_summary.json``:

- ``config`` (the profile and the time a cell may take) and provenance (library
  commit, hardware, threads, torch, date, wall time);
- ``completed``: whether every cell ran; if not, the first failing cell's id, its
  error name and message (a claim that failed at full size, or a time limit);
- ``printed``: each code cell's printed text (stdout and text results, not figures),
  keyed by cell id, and ``differs``: the cells whose text differs from what the stored
  (quick-profile) chapter printed, so a chapter can show what changes at full size
  (:func:`show`).

Chapter 1 writes its own summary from inside the notebook (its sweeps merge across two
pages), so this command is for chapters 2 and on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import textwrap
import time
from pathlib import Path

import torch

from cl_lib.io import hardware_info, library_commit, write_json

RESULTS = Path(__file__).resolve().parents[2] / "book" / "results"
MAX_CHARS = 6000  # per cell: printed tables, not pages of logs
WIDTH = 80  # of the lines show() writes: the page's column
TABLE_WIDTH = 88  # a printed line up to this long is a table row, kept as it is


def summary_path(notebook: str | Path, results: Path = RESULTS) -> Path:
    """``results/chNN_full_summary.json`` for ``book/NN_name.ipynb``.

    Args:
        notebook: a chapter's path; its file name starts with the two-digit number.
        results: the folder of stored results.

    Returns:
        The summary's path.
    """
    match = re.match(r"(\d\d)[a-z]?_", Path(notebook).name)
    if match is None:
        raise ValueError(f"{notebook}: not a chapter (expected NN_name.ipynb)")
    return results / f"ch{match.group(1)}_full_summary.json"


def printed_text(cell) -> str:
    """The text a code cell printed: its stdout and the plain text of its results
    (figures, HTML and widgets are left out), cut to ``MAX_CHARS``."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append(out["text"])
        elif out.get("output_type") == "execute_result":
            parts.append(out.get("data", {}).get("text/plain", "") + "\n")
    text = "".join(parts)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "\n[...]\n"


def run_full(notebook: str | Path, timeout_s: int = 1800) -> dict:
    """Execute ``notebook`` with ``CL_BOOK_PROFILE=full`` and return its summary.

    The kernel runs in the notebook's folder, as nbval runs it; a cell that raises
    (a claim that failed) or runs past ``timeout_s`` stops the run and is recorded.

    Args:
        notebook: the chapter to run.
        timeout_s: the limit for one cell, in seconds.

    Returns:
        The summary (see the module docstring); nothing is written.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook = Path(notebook).resolve()
    nb = nbformat.read(notebook, as_version=4)
    previous = os.environ.get("CL_BOOK_PROFILE")
    os.environ["CL_BOOK_PROFILE"] = "full"  # the kernel inherits this environment
    failure, t0 = None, time.time()
    try:
        client = NotebookClient(
            nb,
            timeout=timeout_s,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(notebook.parent)}},
        )
        client.execute()
    except (CellExecutionError, CellTimeoutError) as err:
        failure = _first_failure(nb, err)
    finally:
        if previous is None:
            os.environ.pop("CL_BOOK_PROFILE", None)
        else:
            os.environ["CL_BOOK_PROFILE"] = previous
    wall = time.time() - t0
    commit, dirty = library_commit()
    code = [c for c in nb.cells if c.cell_type == "code"]
    texts = {c.id: printed_text(c) for c in code}
    summary = {
        "chapter": notebook.name,
        "config": {"profile": "full", "cell_timeout_s": timeout_s},
        "written_by": "python -m cl_lib.experiments.full_profile",
        "library_commit": commit,
        "library_dirty": dirty,
        "hardware": hardware_info(torch.device("cpu")),
        "threads": int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())),
        "torch": torch.__version__,
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "wall_time_s": round(wall, 1),
        "completed": failure is None,
        "failure": failure,
        "asserts": sum(
            len(re.findall(r"^\s*assert\b", c.source, flags=re.MULTILINE)) for c in code
        ),
        "printed": {i: text for i, text in texts.items() if text.strip()},
    }
    summary["differs"] = differing_cells(summary, notebook)
    return summary


def differing_cells(summary: dict, notebook: str | Path) -> list[str]:
    """The ids of the code cells whose printed text in ``summary`` differs from what
    the stored chapter ``notebook`` printed (the quick profile).

    Args:
        summary: a full-profile summary (its ``printed``).
        notebook: the stored chapter.

    Returns:
        Cell ids, in the chapter's order.
    """
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    return [
        c.id
        for c in nb.cells
        if c.cell_type == "code" and printed_text(c) != summary["printed"].get(c.id, "")
    ]


def _first_failure(nb, err) -> dict:
    """The first cell that raised: its id, the error's name and message."""
    failing = next(
        (
            c
            for c in nb.cells
            if any(o.get("output_type") == "error" for o in c.get("outputs", []))
        ),
        None,
    )
    outputs = failing.get("outputs", []) if failing else []
    error = next((o for o in outputs if o.get("output_type") == "error"), {})
    return {
        "cell_id": failing.get("id") if failing else None,
        "error": error.get("ename", type(err).__name__),
        "message": str(error.get("evalue", err))[:500],
    }


def load(chapter: str, results: str | Path = "results") -> dict | None:
    """The stored full-profile summary of ``chapter`` ("ch02"), or None; ``results``
    is relative to ``book/``, where the chapters run."""
    path = Path(results) / f"{chapter}_full_summary.json"
    if not path.exists():
        return None
    with open(path) as f:
        return json.load(f)


def show(chapter: str, cell_ids=None, results: str | Path = "results") -> dict | None:
    """Print a chapter's full-profile run: when, where, how long, whether every claim
    held, how many of the chapter's printed results it printed unchanged, and what the
    cells ``cell_ids`` printed at full size.

    Args:
        chapter: "ch02", ...
        cell_ids: the cells whose full-size output to print, in this order (default:
            those whose output differs from the quick profile's).
        results: the folder of stored results (relative to ``book/``).

    Returns:
        The summary, or None (after saying how to make it) when there is none.
    """
    full = load(chapter, results)
    number = chapter[2:]
    if full is None:
        print(
            "Full profile: pending. Make it with  python -m "
            f"cl_lib.experiments.full_profile book/{number}_*.ipynb"
        )
        return None
    held = (
        f"all {full['asserts']} asserts held"
        if full["completed"]
        else f"stopped at cell {full['failure']['cell_id']}: {full['failure']['error']}"
    )
    threads = "one thread" if full["threads"] == 1 else f"{full['threads']} threads"
    printed = list(full["printed"])  # the cells that printed something
    same = [c for c in printed if c not in full["differs"]]
    lines = [
        f"Full profile: {full['wall_time_s'] / 60:.0f} min on {threads} of a CPU "
        f"({full['hardware']['cpu']}), commit {full['library_commit'][:7]}, "
        f"{full['date_utc'][:10]}; {held}.",
        f"{len(same)} of the {len(printed)} printed results are the same as on this "
        "page" + ("; the others at full size:" if len(same) < len(printed) else "."),
    ]
    print("\n".join(textwrap.fill(line, WIDTH) for line in lines))
    for cell_id in full["differs"] if cell_ids is None else cell_ids:
        text = full["printed"].get(cell_id, "")
        for line in text.rstrip().splitlines() if text.strip() else []:
            # a table's rows fit the column; a long sentence is wrapped
            print(
                textwrap.fill(line, WIDTH, subsequent_indent="  ")
                if len(line) > TABLE_WIDTH
                else line
            )
    return full


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cl_lib.experiments.full_profile",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("notebooks", nargs="+", help="chapters 2 and on")
    parser.add_argument("--timeout-s", type=int, default=1800, help="per cell")
    parser.add_argument("--results", default=str(RESULTS), help="where to write")
    args = parser.parse_args(argv)
    for notebook in args.notebooks:
        try:
            path = summary_path(notebook, Path(args.results))
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if path.name.startswith("ch01"):
            print("error: chapter 1 writes its own full summary", file=sys.stderr)
            return 2
    for notebook in args.notebooks:
        summary = run_full(notebook, args.timeout_s)
        path = summary_path(notebook, Path(args.results))
        write_json(summary, path)
        state = (
            "every cell ran"
            if summary["completed"]
            else f"failed: {summary['failure']}"
        )
        print(f"{notebook}: {summary['wall_time_s']:.0f} s, {state}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
