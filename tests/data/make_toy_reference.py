"""Writes tests/data/toy_reference.json: fingerprints of toy runs (see
tests/test_toy.py, ``REFERENCE_CASES``) from a frozen copy of
cl_lib/experiments/toy.py, which the current trainers must reproduce bit for bit.

Usage: python tests/data/make_toy_reference.py PATH/TO/toy.py
"""

import importlib.util
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

if __name__ == "__main__":
    spec = importlib.util.spec_from_file_location("toy_frozen", sys.argv[1])
    frozen = importlib.util.module_from_spec(spec)
    sys.modules["toy_frozen"] = frozen
    spec.loader.exec_module(frozen)
    from test_toy import REFERENCE_CASES, run_reference_case

    torch.set_num_threads(1)  # as in the tests
    out = {name: run_reference_case(frozen, name) for name in REFERENCE_CASES}
    with open(os.path.join(HERE, "toy_reference.json"), "w") as f:
        json.dump(out, f, indent=0, sort_keys=True)
