"""Code lines stay <= 88 characters in the notebooks and the library (what ``ruff format``
with ``line-length = 88`` in pyproject.toml produces; comments and strings are wrapped by
hand). A plain Python check: it does not need ruff installed."""

import ast
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


# Characters that LaTeX in a non-raw string turns into silently: "\bar" starts with a
# backspace, "\to" and "\theta" with a tab, "\frac" with a form feed, "\alpha" with a bell.
_CONTROL = {chr(8): r"\b", chr(9): r"\t", chr(12): r"\f", chr(7): r"\a", chr(11): r"\v"}


def _control_characters(source):
    """'line N: \\b, \\t' for each string literal of ``source`` with such characters."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            chars = sorted({_CONTROL[c] for c in node.value if c in _CONTROL})
            if chars:
                found.append(f"line {node.lineno}: {', '.join(chars)}")
    return found


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "cl_lib").rglob("*.py")) + sorted((ROOT / "tests").glob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_control_characters_in_strings(path):
    found = _control_characters(path.read_text(encoding="utf-8"))
    hint = "LaTeX in a non-raw string? make it a raw string"
    assert not found, f"{path.relative_to(ROOT)}: control characters ({hint}): {found}"


@pytest.mark.parametrize(
    "path", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.name
)
def test_no_control_characters_in_notebook_strings(path):
    """A plot label such as "$\\tau$" typed without the r prefix loses its backslash."""
    found = []
    for index, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).split("\n")  # IPython magics are not Python
        code = "\n".join(x for x in lines if not x.lstrip().startswith(("%", "!")))
        found += [f"cell {index} {where}" for where in _control_characters(code)]
    assert not found, f"{path.name}: control characters in string literals: {found}"
