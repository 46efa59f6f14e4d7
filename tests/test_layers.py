"""The two layers: what a user installs (the engine) imports no book layer and no
plotting or notebook package, pyproject.toml declares every package the engine imports,
and ``pip install .`` followed by ``cl-train`` works in a fresh virtual environment."""

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the engine is cl_lib's top-level modules; its sub-packages are the book layer:
# cl_lib/experiments (what the chapters import) and cl_lib/campaign (runs the
# chapters' grid; it reads cl_lib.experiments.grid)
ENGINE = sorted((ROOT / "cl_lib").glob("*.py"))
BOOK_LAYER = sorted(
    p.name for p in (ROOT / "cl_lib").iterdir() if (p / "__init__.py").exists()
)
BOOK_ONLY = ("plotly", "IPython", "ipywidgets", "matplotlib")
DIST_NAME = {
    "PIL": "pillow",
    "sklearn": "scikit-learn",
}  # import name -> distribution name


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in a file (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_engine_imports_no_book_layer():
    assert BOOK_LAYER == ["campaign", "experiments"]
    book = tuple(f"cl_lib.{name}" for name in BOOK_LAYER)
    for path in ENGINE:
        bad = sorted(
            n
            for n in _imports(path)
            if n in book or n.startswith(tuple(b + "." for b in book))
        )
        assert not bad, f"{path.name} imports {bad}"


def test_importing_the_engine_pulls_in_no_plotting_or_notebook_package():
    code = (
        "import sys, json, cl_lib, cl_lib.train\n"
        "names = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{BOOK_ONLY!r})\n"
        "print(json.dumps(names))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == []


def test_pyproject_declares_every_engine_dependency():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    names = {
        d.split(";")[0]
        .split("[")[0]
        .split("<")[0]
        .split(">")[0]
        .split("=")[0]
        .split("~")[0]
        .strip()
        .lower()
        for d in declared
    }
    stdlib = set(sys.stdlib_module_names) | {"cl_lib", "__future__"}
    used = {n.split(".")[0] for path in ENGINE for n in _imports(path)} - stdlib
    missing = sorted(m for m in used if DIST_NAME.get(m, m).lower() not in names)
    assert not missing, (
        f"engine imports {missing} but pyproject.toml does not declare them"
    )
    assert "scipy" in names  # cl_lib.metrics needs it at evaluation time


@pytest.mark.skipif(
    not os.environ.get("CL_LIB_DATA"),
    reason="CL_LIB_DATA is not set: no CIFAR-10 archive for cl-train to read",
)
def test_pip_install_then_cl_train_in_a_fresh_venv(tmp_path):
    """``pip install .`` (no dependencies downloaded: this environment's packages are
    made visible to the new venv by a .pth file) then ``cl-train --profile quick
    --dataset cifar10 --epochs 1``, run outside the repository so that the installed
    copy is what runs."""
    if not (Path(os.environ["CL_LIB_DATA"]) / "cifar10-jpeg.tar.gz").exists():
        pytest.skip("CL_LIB_DATA has no cifar10-jpeg.tar.gz")
    src = tmp_path / "src"  # a copy: building must not write into the working tree
    shutil.copytree(
        ROOT / "cl_lib",
        src / "cl_lib",
        ignore=shutil.ignore_patterns("__pycache__", "experiments"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        timeout=120,
    )
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    where = subprocess.run(
        [str(py), "-c", "import cl_lib; print(cl_lib.__file__)"],
        capture_output=True,
        text=True,
        cwd=run_dir,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(Path(site)), where  # the installed copy
    proc = subprocess.run(
        [
            str(venv / "bin" / "cl-train"),
            "--profile",
            "quick",
            "--dataset",
            "cifar10",
            "--epochs",
            "1",
            "--out",
            str(run_dir / "run"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=run_dir,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((run_dir / "run" / "results.json").read_text())
    assert res["finished"] and 0 <= res["final"]["knn_acc"] <= 1 and res["metrics"]
