"""Small I/O helpers of the engine: atomic writes, hardware description, library commit.

Every file the library writes (data caches, checkpoints, results JSON) goes through
:func:`write_atomic`, so an interrupted run never leaves a truncated file behind.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch

from cl_lib import distributed


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, fsync it, then
    ``os.replace`` it
    into place: a crash mid-write never leaves a truncated file (the rename is atomic),
    a power loss never leaves a renamed but empty one (the fsync), and a failed write
    leaves no stray temporary file. Used for data caches, checkpoints and results files
    alike.

    Args:
        path: the file to (re)place.
        write: writes the content to the path it is given.

    Returns:
        None.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    # mkstemp makes the file private (0600); use the usual mode
    os.fchmod(fd, 0o666 & ~umask)
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_atomic(obj, path: str | Path) -> None:
    """``torch.save`` through :func:`write_atomic`.

    Args:
        obj: anything ``torch.save`` takes; path: the file.

    Returns:
        None.
    """
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_json(obj, path: str | Path) -> None:
    """Write ``obj`` as indented JSON through :func:`write_atomic`.

    Args:
        obj: a JSON-able object; path: the file.

    Returns:
        None.
    """
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1) + "\n"))


def hardware_info(device: torch.device) -> dict:
    """What a result was computed on.

    Args:
        device: the run's device.

    Returns:
        dict with ``device``, ``cpu``, ``cpu_count``, ``threads`` (torch's intra-op
        threads: what a CPU run's speed depends on), ``platform``, ``gpu``,
        ``gpu_count``, ``gpu_memory_gb``, ``world_size``.
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in f
                    if line.startswith("model name")
                ),
                cpu,
            )
    except OSError:
        pass
    hw = {
        "device": device.type,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "gpu": None,
        "gpu_count": 0,
        "gpu_memory_gb": None,
        "world_size": distributed.world_size(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device if device.type == "cuda" else 0)
        hw.update(
            gpu=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_memory_gb=round(props.total_memory / 2**30, 2),
        )
    return hw


def loaded_library_files() -> list[str]:
    """The files of the ``cl_lib`` modules this process has imported, plus the
    package's data files (non-Python files next to its modules), relative to the
    repository root: the code a run executed."""
    package = Path(__file__).resolve().parent
    files = {
        Path(m.__file__).resolve()
        for name, m in list(sys.modules.items())
        if (name == "cl_lib" or name.startswith("cl_lib."))
        and getattr(m, "__file__", None)
    }
    files |= {f for f in package.iterdir() if f.is_file() and f.suffix == ".txt"}
    return sorted(
        str(f.relative_to(package.parent)) for f in files if package in f.parents
    )


def library_commit(only_loaded: bool = False) -> tuple[str, bool | None]:
    """(``git rev-parse HEAD`` of the repository holding cl_lib, does the library differ
    from it?) or ("unknown", None) outside a git checkout.

    "Differs" means any uncommitted change under ``cl_lib/``: a modified or staged
    tracked file, or an untracked (not ignored) file -- a new module that is not
    committed yet is not identified by the commit either. Changes elsewhere in the
    repository (notebooks, tests) do not make a result's code unidentified, so they are
    not counted.

    Args:
        only_loaded: count only the library files this process imported
            (:func:`loaded_library_files`): the trainer and the campaign use it, since
            an edit to a module a run never imports (a chapter's toy model) leaves the
            run's code identified by the commit.

    Returns:
        ``(commit hash, differs)``.
    """
    package = Path(__file__).resolve().parent
    paths = loaded_library_files() if only_loaded else [package.name]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=package.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=all",
                "--",
                *paths,
            ],
            cwd=package.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return head or "unknown", bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
