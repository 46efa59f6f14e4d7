"""book/conftest.py: nbval skips the plotly JSON mime bundle (raw floats) through a
pytest hook, without replacing any nbval class or method."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BOOK_CONFTEST = Path(__file__).resolve().parents[1] / "book" / "conftest.py"
PLOTLY = "application/vnd.plotly.v1+json"
SOURCE = (
    "from IPython.display import display\n"
    "display({%r: {'data': [{'x': [0.1 + 0.2]}]}, 'text/plain': 'figure'}, raw=True)"
    % PLOTLY
)


def _notebook(path: Path, stored_x: float) -> None:
    """One cell whose stored plotly payload differs from what running it gives."""
    output = {
        "output_type": "display_data",
        "metadata": {},
        "data": {PLOTLY: {"data": [{"x": [stored_x]}]}, "text/plain": "figure"},
    }
    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "id": "c0",
        "metadata": {},
        "source": SOURCE,
        "outputs": [output],
    }
    nb = {
        "cells": [cell],
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "language": "python",
                "display_name": "Python 3",
            }
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


def _nbval(folder: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval",
        "--nbval-current-env",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "--rootdir",
        str(folder),
        str(folder),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=folder, timeout=120)


def test_plotly_json_is_not_compared_but_other_outputs_are(tmp_path):
    pytest.importorskip("nbval")
    pytest.importorskip("ipykernel")
    assert "IPyNbFile.__init__" not in BOOK_CONFTEST.read_text()  # no monkeypatching
    with_conftest, without = tmp_path / "book", tmp_path / "bare"
    for folder in (with_conftest, without):
        folder.mkdir()
        _notebook(folder / "nb.ipynb", stored_x=0.30000000000000004 + 1e-12)
    shutil.copy(BOOK_CONFTEST, with_conftest / "conftest.py")
    assert _nbval(without).returncode == 1  # nbval alone compares the raw floats
    run = _nbval(with_conftest)
    assert run.returncode == 0, run.stdout[-2000:]  # the book's conftest skips them
    nb = json.loads((with_conftest / "nb.ipynb").read_text())
    nb["cells"][0]["outputs"][0]["data"]["text/plain"] = "another figure"
    (with_conftest / "nb.ipynb").write_text(json.dumps(nb))
    assert _nbval(with_conftest).returncode == 1  # the other outputs are still compared
