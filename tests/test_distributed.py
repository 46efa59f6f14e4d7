"""Tests for cl_lib.distributed on CPU: 2 processes, gloo backend (torch.multiprocessing.spawn).

The claim: gathering embeddings *with* gradient makes a 2-process run compute the same loss
and the same parameter gradients (after DDP's averaging) as one process on the concatenated
batch; a plain (gradient-free) all_gather does not.
"""
import os
import socket


import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from cl_lib import distributed
from cl_lib.losses import get_loss
from cl_lib.train import TrainConfig, train

from image_folders import make_image_folder

WORLD = 2
N, D_IN, D_OUT = 8, 6, 4  # global batch, input and embedding widths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _problem():
    """A linear encoder and a global batch of two views (same on every process)."""
    torch.manual_seed(0)
    model = nn.Linear(D_IN, D_OUT)
    x1, x2 = torch.randn(N, D_IN), torch.randn(N, D_IN)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0, 1])
    return model, x1, x2, labels


CASES = [("infonce", True), ("supcon", True), ("infonce", False)]  # (loss, gather with grad?)


def _worker(rank: int, port: int, out_dir: str, folder: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.setup(backend="gloo")
    try:
        results = {}
        for loss_name, with_grad in CASES:  # one spawn for all cases: starting processes is the slow part
            model, x1, x2, labels = _problem()
            ddp = nn.parallel.DistributedDataParallel(model)
            b = N // WORLD
            mine = slice(rank * b, (rank + 1) * b)
            z1, z2 = ddp(x1[mine]), ddp(x2[mine])
            if with_grad:
                z1, z2 = distributed.gather_with_grad(z1), distributed.gather_with_grad(z2)
            else:  # plain all_gather: the other ranks' embeddings are constants
                parts1 = [torch.empty_like(z1) for _ in range(WORLD)]
                parts2 = [torch.empty_like(z2) for _ in range(WORLD)]
                dist.all_gather(parts1, z1.detach())
                dist.all_gather(parts2, z2.detach())
                parts1[rank], parts2[rank] = z1, z2
                z1, z2 = torch.cat(parts1), torch.cat(parts2)
            loss = get_loss(loss_name)(z1, z2, labels)
            loss.backward()
            results[(loss_name, with_grad)] = {"loss": loss.detach(), "grads": [p.grad for p in model.parameters()]}
        results["world"], results["rank"] = distributed.world_size(), distributed.rank()
        # the trainer under torchrun-style env vars (it joins the existing process group and
        # destroys it at the end, so it runs last): 1 epoch, global batch 16 = 2 x 8
        run = train(TrainConfig(dataset=f"imagefolder:{folder}", cache_dir=os.path.join(out_dir, f"cache{rank}"),
                                arch="small_cnn", width=4, proj_dim=8, epochs=1, batch_size=16, warmup_epochs=0,
                                linear_probe=False, metrics=False, knn_k=10, quiet=True, progress=False,
                                out_dir=os.path.join(out_dir, "run")))
        results["train"] = {"state": run.model.state_dict(), "history": run.history, "results": run.results}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        distributed.cleanup()


def _single_process(loss_name: str):
    model, x1, x2, labels = _problem()
    loss = get_loss(loss_name)(model(x1), model(x2), labels)
    loss.backward()
    return loss.detach(), [p.grad for p in model.parameters()]


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    folder = make_image_folder(out / "imgs")
    mp.spawn(_worker, args=(_free_port(), str(out), str(folder)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize("loss_name", ["infonce", "supcon"])
def test_gather_with_grad_matches_single_process(two_process_results, loss_name):
    loss, grads = _single_process(loss_name)
    for r, res in enumerate(two_process_results):
        assert res["world"] == WORLD and res["rank"] == r
        out = res[(loss_name, True)]
        torch.testing.assert_close(out["loss"], loss, rtol=1e-5, atol=1e-6)
        for g_dist, g_single in zip(out["grads"], grads):
            torch.testing.assert_close(g_dist, g_single, rtol=1e-5, atol=1e-6)


def test_plain_all_gather_gets_gradients_wrong(two_process_results):
    out = two_process_results[0][("infonce", False)]
    loss, grads = _single_process("infonce")
    torch.testing.assert_close(out["loss"], loss, rtol=1e-5, atol=1e-6)  # the forward pass is fine...
    assert not torch.allclose(out["grads"][0], grads[0], rtol=1e-3, atol=1e-5)  # ...the gradient is not


def test_trainer_under_two_processes(two_process_results, tmp_path_factory):
    """train() with WORLD_SIZE=2: DDP keeps the replicas identical, the loss (computed on the
    gathered global batch) is the same on both ranks, rank 0 writes the results."""
    a, b = (res["train"] for res in two_process_results)
    assert a["results"]["hardware"]["world_size"] == 2
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert len(a["history"]) == 1 and a["history"][0]["loss"] > 0
    params = [k for k in a["state"] if not any(s in k for s in ("running_", "num_batches"))]
    assert len(params) > 10
    for k in params:  # BN running statistics stay per-process on CPU (SyncBatchNorm is GPU-only)
        torch.testing.assert_close(a["state"][k], b["state"][k], rtol=0, atol=0)
    assert "knn_acc" in a["results"]["final"] and b["results"]["final"] == {}  # evaluation on rank 0 only


def test_single_process_fallbacks():
    z = torch.randn(3, 2, requires_grad=True)
    assert distributed.gather_with_grad(z) is z
    assert distributed.world_size() == 1 and distributed.rank() == 0
    distributed.barrier()  # no-op


def test_setup_needs_world_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(ValueError):
        distributed.setup()


def test_process_group_destroyed_after_nonfinite_loss(tmp_path, monkeypatch):
    """Under torchrun (WORLD_SIZE > 1) train() joins a process group; it must destroy it on
    every exit path, also when training stops with NonFiniteLossError. Here a one-process gloo
    group stands in for torchrun's, so no second process is needed."""
    import cl_lib.train as train_mod

    folder = make_image_folder(tmp_path / "imgs")
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets; setup() is replaced below

    def one_process_group(backend=None):
        store = dist.FileStore(str(tmp_path / "store"), 1)
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        return torch.device("cpu")

    monkeypatch.setattr(train_mod.distributed, "setup", one_process_group)

    def nan_loss(z1, z2, labels=None):
        return (z1 - z2).pow(2).mean() * float("nan")

    cfg = TrainConfig(dataset=f"imagefolder:{folder}", cache_dir=str(tmp_path / "cache"),
                      arch="small_cnn", width=4, proj_dim=8, epochs=1, batch_size=16,
                      warmup_epochs=0, linear_probe=False, metrics=False, quiet=True,
                      progress=False, loss=nan_loss)
    with pytest.raises(train_mod.NonFiniteLossError):
        train(cfg)
    assert not dist.is_initialized()
