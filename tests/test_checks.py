"""Tests of cl_lib.checks: one message style, the conversions, the documented options."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cl_lib import checks

STYLE = r"^f: {arg} must be .+, got .+$"

BAD = {
    "not a tensor": (lambda: checks.embeddings([[1.0]], "z", "f"), "z"),
    "1-D": (lambda: checks.embeddings(torch.ones(3), "z", "f"), "z"),
    "integer": (lambda: checks.embeddings(torch.ones(3, 2, dtype=torch.long), "z", "f"), "z"),
    "bool": (lambda: checks.embeddings(torch.ones(3, 2, dtype=torch.bool), "z", "f",
                                       floating=False), "z"),
    "too few rows": (lambda: checks.embeddings(torch.ones(1, 2), "z", "f", min_rows=2), "z"),
    "no column": (lambda: checks.embeddings(torch.ones(3, 0), "z", "f"), "z"),
    "NaN": (lambda: checks.embeddings(torch.tensor([[0.0, math.nan]]), "z", "f"), "z"),
    "3-D needed": (lambda: checks.embeddings(torch.ones(3, 2), "v", "f", ndim=3), "v"),
    "shape mismatch": (lambda: checks.views(torch.ones(3, 2), torch.ones(3, 1), "f"), "z2"),
    "zero": (lambda: checks.positive(0, "tau", "f"), "tau"),
    "inf": (lambda: checks.positive(math.inf, "tau", "f"), "tau"),
    "string": (lambda: checks.positive("a", "tau", "f"), "tau"),
    "bool number": (lambda: checks.nonnegative(True, "w", "f"), "w"),
    "negative": (lambda: checks.nonnegative(-1e-9, "w", "f"), "w"),
    "float integer": (lambda: checks.integer(2.0, "n", "f"), "n"),
    "small integer": (lambda: checks.integer(0, "n", "f", minimum=1), "n"),
    "labels None": (lambda: checks.labels(None, 3, "f"), "labels"),
    "labels number": (lambda: checks.labels(0.5, 3, "f"), "labels"),
    "labels float": (lambda: checks.labels(torch.zeros(3), 3, "f"), "labels"),
    "labels length": (lambda: checks.labels(torch.zeros(2, dtype=torch.long), 3, "f"),
                      "labels"),
    "labels 2-D": (lambda: checks.labels(torch.zeros(3, 1, dtype=torch.long), 3, "f"),
                   "labels"),
    "labels -1": (lambda: checks.labels(torch.tensor([0, -1, 1]), 3, "f"), "labels"),
    "labels -2": (lambda: checks.labels(torch.tensor([0, -2, 1]), 3, "f",
                                        allow_unlabelled=True), "labels"),
    "one class": (lambda: checks.labels(torch.tensor([1, 1, -1]), 3, "f",
                                        allow_unlabelled=True, min_classes=2), "labels"),
    "choice": (lambda: checks.one_of("x", ["a", "b"], "kernel", "f"), "kernel"),
    "boolean": (lambda: checks.boolean("no", "flag", "f"), "flag"),
}


@pytest.mark.parametrize("what", list(BAD))
def test_one_message_style(what):
    call, arg = BAD[what]
    with pytest.raises(ValueError, match=STYLE.format(arg=arg)):
        call()


def test_conversions_and_options():
    assert checks.positive(np.float32(0.5), "tau") == 0.5
    assert isinstance(checks.nonnegative(0, "w"), float)
    assert checks.integer(np.int64(3), "n", minimum=1) == 3
    y = checks.labels([0, -1, 2], 3, allow_unlabelled=True, min_classes=2)
    assert y.dtype == torch.long and y.tolist() == [0, -1, 2]
    # values are not read when check_values=False (no device synchronisation)
    assert checks.labels(torch.tensor([-5, 0]), 2, check_values=False).tolist() == [-5, 0]
    # finiteness is not read when finite=False
    z = torch.tensor([[math.nan, 1.0], [0.0, 1.0]])
    assert checks.embeddings(z, finite=False) is z
    assert checks.embeddings(torch.ones(2, 3, dtype=torch.long), floating=False).shape == (2, 3)
    assert checks.one_of("a", ("a", "b"), "kernel") == "a"
    with pytest.raises(ValueError, match="^tau must be"):   # no function: no prefix
        checks.positive(-1, "tau")


def test_no_value_reads_skips_only_value_checks():
    """Inside no_value_reads a loss reads no tensor value (no host sync on a GPU): NaN
    input gives a NaN loss instead of ValueError, while shapes are still checked."""
    from cl_lib.losses import infonce_loss

    z = torch.randn(4, 3)
    bad = z.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        infonce_loss(bad, z)
    with checks.no_value_reads():
        assert torch.isnan(infonce_loss(bad, z))
        with pytest.raises(ValueError, match="shape"):
            infonce_loss(z, z[:3])
    with pytest.raises(ValueError, match="finite"):  # switched back on after the block
        infonce_loss(bad, z)


@pytest.mark.parametrize("name", ["infonce", "dcl", "dhel", "kcl", "vicreg",
                                  "barlow_twins", "supcon", "nscl", "cloa"])
def test_losses_read_no_values_inside_no_value_reads(name, monkeypatch):
    """Every registered loss, called as the trainer calls it, converts no tensor to a
    Python value (bool/int/float/item: each a host-device synchronisation on a GPU)."""
    from cl_lib.losses import get_loss

    kwargs = {"num_classes": 3} if name == "cloa" else {}
    loss_fn = get_loss(name, **kwargs)
    gen = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loss_fn(z1, z2, labels)  # anchors etc. made outside the patched block

    def no_read(*args, **kwargs):
        raise AssertionError("a tensor value was read on the host")

    for attr in ("__bool__", "__int__", "__float__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, attr, no_read)
    with checks.no_value_reads():
        loss = loss_fn(z1, z2, labels)
    monkeypatch.undo()
    assert torch.isfinite(loss)
