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


def test_notebook_kernels_get_one_arithmetic_on_every_cpu():
    """The stored outputs and nbval's re-run both use SAME_ARITHMETIC_ENV: loading the
    book's conftest sets it for the kernels (without overriding what is already set),
    and torch then runs its AVX2 kernels."""
    code = (
        "import importlib.util, os, subprocess, sys\n"
        f"spec = importlib.util.spec_from_file_location('c', {str(BOOK_CONFTEST)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "assert all(os.environ[k] == v for k, v in mod.SAME_ARITHMETIC_ENV.items())\n"
        "kernel = 'import torch; print(torch.backends.cpu.get_cpu_capability())'\n"
        "print(subprocess.run([sys.executable, '-c', kernel], capture_output=True,\n"
        "                     text=True, check=True).stdout.strip())\n"
    )
    keys = ("MKL_CBWR", "ATEN_CPU_CAPABILITY")
    env = {k: v for k, v in __import__("os").environ.items() if k not in keys}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "AVX2"
