"""Code lines stay <= 88 characters in the notebooks and the library (what ``ruff format``
with ``line-length = 88`` in pyproject.toml produces; comments and strings are wrapped by
hand). A plain Python check: it does not need ruff installed."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 88


def _long_lines(lines):
    return [(k, len(line)) for k, line in enumerate(lines, 1) if len(line) > LIMIT]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.name
)
def test_notebook_code_lines_fit(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    too_long = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).split("\n")
        too_long += [f"cell {index} line {k}: {n} chars" for k, n in _long_lines(lines)]
    assert not too_long, f"{path.name}: code lines over {LIMIT} characters: {too_long}"


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "cl_lib").rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_library_lines_fit(path):
    lines = path.read_text(encoding="utf-8").split("\n")
    too_long = [f"line {k}: {n} chars" for k, n in _long_lines(lines)]
    assert not too_long, f"{path.relative_to(ROOT)}: lines over {LIMIT}: {too_long}"
