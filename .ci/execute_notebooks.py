#!/usr/bin/env python
"""Execute book notebooks in place, in the quick profile, exactly as nbval re-runs them.

    python .ci/execute_notebooks.py book/01_rank1_collapse.ipynb [more.ipynb ...]

Runs from the notebook's folder (as nbval does), with CL_BOOK_PROFILE=quick and the
environment that book/conftest.py gives nbval's kernels, and prints the wall time per
notebook.
"""
import importlib.util
import os
import sys
import time

import nbformat
from nbclient import NotebookClient

os.environ["CL_BOOK_PROFILE"] = "quick"
_spec = importlib.util.spec_from_file_location(
    "book_conftest", os.path.join(os.path.dirname(__file__), "..", "book", "conftest.py"))
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))  # sets the kernel env
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    NotebookClient(nb, timeout=1800, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
    nbformat.write(nb, path)
    print(f"{path}: executed in {time.time() - t0:.1f} s")
