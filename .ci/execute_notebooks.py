#!/usr/bin/env python
"""Execute book notebooks in place, in the quick profile, exactly as nbval re-runs them.

    python .ci/execute_notebooks.py book/01_rank1_collapse.ipynb [more.ipynb ...]

Runs from the notebook's folder (as nbval does), with CL_BOOK_PROFILE=quick, and prints the
wall time per notebook.
"""
import os
import sys
import time

import nbformat
from nbclient import NotebookClient

os.environ["CL_BOOK_PROFILE"] = "quick"
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    NotebookClient(nb, timeout=1800, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
    nbformat.write(nb, path)
    print(f"{path}: executed in {time.time() - t0:.1f} s")
