"""The two run profiles of the book, plus seeding (:func:`mix_seed`) and device helpers.

Every chapter and the CLI read ``CL_BOOK_PROFILE``:

- ``quick`` (default): CPU, small models and subsets; what CI and ``pytest --nbval``
  run.
- ``full``: GPU, paper scale.

The same code path runs in both; only sizes change, chosen with :func:`by_profile`.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

PROFILES = ("quick", "full")


def get_profile() -> str:
    """Return the active profile name from ``CL_BOOK_PROFILE`` (default ``quick``).

    Returns:
        ``"quick"`` or ``"full"``.
    """
    name = os.environ.get("CL_BOOK_PROFILE", "quick").strip().lower() or "quick"
    if name not in PROFILES:
        raise ValueError(f"CL_BOOK_PROFILE must be one of {PROFILES}, got {name!r}")
    return name


def by_profile(quick, full):
    """Pick ``quick`` or ``full`` according to the active profile.

    Args:
        quick, full: the two values.

    Returns:
        The value of the active profile.
    """
    return quick if get_profile() == "quick" else full


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a CPU generator seeded alike.

    Args:
        seed: an int in [0, 2**32).

    Returns:
        A ``torch.Generator`` seeded with ``seed``.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from a tuple of ints (NumPy's ``SeedSequence`` hashing).

    The one seed-mixing function of the engine: the data order of an epoch is
    ``mix_seed(seed, epoch)``, the augmentation of a batch ``mix_seed(seed, epoch,
    batch, 1)``, a rank's stream under torchrun ``mix_seed(seed, rank)``. Nearby tuples
    give unrelated seeds (``seed + epoch`` would make run 1's epoch 0 equal run 0's
    epoch 1).

    Args:
        *values: ints (negative ones are taken modulo 2**32).

    Returns:
        An int in [0, 2**63).
    """
    words = [int(v) & 0xFFFFFFFF for v in values]
    state = np.random.SeedSequence(words).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def default_device() -> torch.device:
    """CUDA when the full profile runs on a GPU machine, else CPU (quick is always CPU).

    Returns:
        ``torch.device("cuda")`` or ``torch.device("cpu")``.
    """
    if get_profile() == "full" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_cpu_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Make glibc's allocator keep freed memory in the process on a CPU run.

    By default glibc serves every block above a (dynamic, at most 32 MiB) threshold
    with a fresh ``mmap`` and hands it back with ``munmap`` when freed. A training step
    frees and re-allocates its large activations every step, so each step faults in
    and zeroes fresh pages: on a 2-core machine a third of a CPU run's time was
    system time (page faults), not arithmetic. Raising the mmap and trim thresholds
    keeps those blocks in the heap for the next step (the same as starting Python
    with ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set). Values are
    unchanged; only where memory comes from changes.

    Args:
        threshold_bytes: blocks up to this size stay in the heap.

    Returns:
        True when glibc took both settings; False elsewhere (musl, macOS, Windows),
        where nothing changes.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes))
    ok &= mallopt(_M_TRIM_THRESHOLD, int(threshold_bytes))
    return bool(ok)
