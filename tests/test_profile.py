import pytest
import torch

from cl_lib import by_profile, default_device, get_profile, seed_everything


def test_default_profile_is_quick(monkeypatch):
    monkeypatch.delenv("CL_BOOK_PROFILE", raising=False)
    assert get_profile() == "quick"
    assert by_profile(quick=1, full=2) == 1
    assert default_device() == torch.device("cpu")


def test_full_profile(monkeypatch):
    monkeypatch.setenv("CL_BOOK_PROFILE", "FULL")
    assert get_profile() == "full"
    assert by_profile(quick=1, full=2) == 2


def test_unknown_profile_raises(monkeypatch):
    monkeypatch.setenv("CL_BOOK_PROFILE", "medium")
    with pytest.raises(ValueError, match="CL_BOOK_PROFILE"):
        get_profile()


def test_seed_everything_is_reproducible():
    seed_everything(3)
    a = torch.randn(4)
    g = seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    assert torch.equal(torch.randn(2, generator=g), torch.randn(2, generator=torch.Generator().manual_seed(3)))
