"""The full-profile runner: it runs a chapter under CL_BOOK_PROFILE=full, records what
each cell printed and where a claim failed, and chapters print the stored summary."""

import nbformat
import pytest

from cl_lib.experiments import full_profile as F


def _chapter(tmp_path, name, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i}"
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_summary_path_names_the_chapter(tmp_path):
    assert (
        F.summary_path("book/02_hem.ipynb", tmp_path).name == "ch02_full_summary.json"
    )
    assert (
        F.summary_path("book/01b_deeper.ipynb", tmp_path).name
        == "ch01_full_summary.json"
    )
    with pytest.raises(ValueError, match="not a chapter"):
        F.summary_path("book/intro.ipynb", tmp_path)


def test_run_records_profile_printed_text_and_the_failing_claim(tmp_path):
    path = _chapter(
        tmp_path,
        "05_x.ipynb",
        [
            "import os\nprint('profile', os.environ['CL_BOOK_PROFILE'])",
            "x = 3\nassert x == 3\nx",
            "assert x == 4, 'claim fails at full size'",
            "print('never runs')",
        ],
    )
    summary = F.run_full(path, timeout_s=60)
    assert summary["config"] == {"profile": "full", "cell_timeout_s": 60}
    assert summary["printed"]["c0"] == "profile full\n"
    assert summary["printed"]["c1"] == "3\n"
    assert "c3" not in summary["printed"]
    assert not summary["completed"]
    assert summary["failure"]["cell_id"] == "c2"
    assert summary["failure"]["error"] == "AssertionError"
    assert "claim fails" in summary["failure"]["message"]
    assert summary["asserts"] == 2


def test_show_prints_pending_then_the_stored_run(tmp_path, capsys):
    assert F.show("ch05", ["c0"], results=tmp_path) is None
    assert "pending" in capsys.readouterr().out
    path = _chapter(
        tmp_path, "05_x.ipynb", ["assert True\nprint('at full size: 0.93')"]
    )
    summary = F.run_full(path, timeout_s=60)
    F.write_json(summary, F.summary_path(path, tmp_path))
    shown = F.show("ch05", ["c0"], results=tmp_path)
    out = capsys.readouterr().out
    assert shown["completed"] and "all 1 asserts held" in out
    assert "at full size: 0.93" in out


def test_cli_refuses_chapter_1_and_non_chapters(tmp_path, capsys):
    assert F.main(["book/01_rank1_collapse.ipynb", "--results", str(tmp_path)]) == 2
    assert F.main(["book/intro.ipynb", "--results", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_differs_lists_the_cells_whose_output_changes_at_full_size(tmp_path, capsys):
    path = _chapter(
        tmp_path,
        "07_x.ipynb",
        [
            "print('same')",
            "import os\nprint(4 if os.environ['CL_BOOK_PROFILE'] == 'full' else 2)",
        ],
    )
    nb = nbformat.read(path, as_version=4)
    for cell, text in zip(nb.cells, ["same\n", "2\n"]):  # the stored quick outputs
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nbformat.write(nb, path)
    summary = F.run_full(path, timeout_s=60)
    assert summary["differs"] == ["c1"]
    F.write_json(summary, F.summary_path(path, tmp_path))
    F.show("ch07", results=tmp_path)
    out = capsys.readouterr().out
    assert "1 of the 2 printed results are the same as on this page" in out
    assert out.rstrip().endswith("4")
