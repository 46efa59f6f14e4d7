import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_cpu_thread():
    """The tests use tiny tensors: intra-op threads only add wake-up latency (tens of ms per op
    on a busy 2-core machine), so the whole suite runs single-threaded."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
