r"""Multi-GPU contrastive training: negatives from every GPU, gradients through the
gather.

With $W$ processes each holding a local batch of $b$ embeddings $z^{(r)}$, a contrastive
loss must see the *global* batch $Z = [z^{(0)}; \dots; z^{(W-1)}]$ (so each sample has
$2Wb - 2$ negatives, as on one big GPU). Every rank gathers $Z$, computes the same loss
$\mathcal{L}(Z)$, and backpropagates. A plain ``all_gather`` cuts the graph: the other
ranks' blocks are constants, so $z^{(r)}$ would only get the gradient of its own block
*as a positive/anchor*, not as a negative of everyone else's samples.

:class:`GatherWithGrad` (also ``torch.distributed.nn.functional.all_gather``) fixes
this: its backward sums the incoming gradients over ranks and keeps this rank's slice,

$$\frac{\partial}{\partial z^{(r)}} \sum_{s=0}^{W-1} \mathcal{L}_s(Z)
   = W \, \frac{\partial \mathcal{L}(Z)}{\partial z^{(r)}} \quad (\text{all }
   \mathcal{L}_s \text{ equal}),$$

and DistributedDataParallel then *averages* parameter gradients over ranks, dividing by
$W$: the update equals single-process training on the concatenated batch (tested in
``tests/test_distributed.py`` with the CPU ``gloo`` backend).

Launch with ``torchrun --nproc_per_node=G -m cl_lib.train ...``; the trainer calls
:func:`setup` when ``WORLD_SIZE > 1``.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = [
    "GatherWithGrad",
    "gather_with_grad",
    "is_distributed",
    "world_size",
    "rank",
    "setup",
    "cleanup",
    "barrier",
]


class GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward all-reduces (sums) the gradient and returns
    this rank's slice. Local batches must have equal sizes on all ranks."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.batch = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.batch : (ctx.rank + 1) * ctx.batch]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (b, ...) from all ranks in rank order -> (W*b, ...),
    differentiable. Identity when not running distributed.

    Args:
        x: (b, ...) this rank's tensor.

    Returns:
        (W*b, ...) tensor, differentiable with respect to ``x``.
    """
    if not is_distributed():
        return x
    return GatherWithGrad.apply(x)


def is_distributed() -> bool:
    """Is a process group of more than one process running?

    Returns:
        True under torchrun with WORLD_SIZE > 1 after :func:`setup`.
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Processes in the group (1 when not distributed).

    Returns:
        W.
    """
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 when not distributed).

    Returns:
        An int in [0, W).
    """
    return dist.get_rank() if is_distributed() else 0


def setup(backend: str | None = None) -> torch.device:
    """Initialise the process group from torchrun's environment (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); NCCL on GPUs, gloo
    on CPU. Returns this process's device (``cuda:LOCAL_RANK`` or ``cpu``).

    Args:
        backend: ``"nccl"``, ``"gloo"`` or None (chosen by device).

    Returns:
        This process's device.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        raise ValueError(
            "distributed.setup() needs WORLD_SIZE >= 2 (launch with torchrun)"
        )
    use_cuda = torch.cuda.is_available() and backend != "gloo"
    device = (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if use_cuda
        else torch.device("cpu")
    )
    if use_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if use_cuda else "gloo"))
    return device


def cleanup() -> None:
    """Destroy the process group, if any (the trainer calls this on every exit path).

    Returns:
        None.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed).

    Returns:
        None.
    """
    if is_distributed():
        dist.barrier()
