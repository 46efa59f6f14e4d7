r"""Optimisation of a run: the optimisers (SGD with momentum, AdamW, :class:`LARS`),
the learning-rate schedule (:func:`lr_at`) and the check of their settings
(:func:`check_optimizer`).

The learning rate follows a linear warm-up then a cosine decay, updated every step $s$
(Loshchilov & Hutter, 2017; Goyal et al., 2017 for the warm-up and the linear scaling
rule):

$$\eta_s = \begin{cases} \eta \, \dfrac{s+1}{S_w} & s < S_w \\[4pt]
  \eta_\text{min} + \tfrac12 (\eta - \eta_\text{min})
  \Big(1 + \cos \pi \dfrac{s - S_w}{S - S_w}\Big) & s \ge S_w \end{cases},
  \qquad \eta = \texttt{lr} \cdot \frac{B}{256}.$$

Optimisers: SGD with momentum (default), AdamW, or LARS (:class:`LARS`, You et al.
2017, as in the simclr-pytorch code that Koromilas et al. 2024 trained DHEL/KCL with).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from cl_lib import checks

if TYPE_CHECKING:  # the config module imports this one
    from cl_lib.config import TrainConfig

__all__ = ["DEFAULT_LR", "LARS", "build_optimizer", "check_optimizer", "lr_at"]

# lr per 256 images when TrainConfig.lr is None; LARS: 4.0 at batch 1024 (DHEL/KCL)
DEFAULT_LR = {"sgd": 0.06, "adamw": 1e-3, "lars": 1.0}


def check_optimizer(
    optimizer: str,
    lr: float | None = None,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    warmup_epochs: float = 0.0,
    min_lr_ratio: float = 0.0,
    grad_clip: float | None = None,
) -> None:
    """Check the optimiser's and the schedule's settings, as :func:`build_optimizer`
    and :func:`lr_at` use them (the :class:`~cl_lib.config.TrainConfig` fields of the
    same names).

    Args:
        optimizer: ``"sgd"``, ``"adamw"`` or ``"lars"``.
        lr: learning rate per 256 images (None: :data:`DEFAULT_LR`).
        momentum: SGD/LARS momentum, in [0, 1).
        weight_decay: decoupled (AdamW) or L2 weight decay, >= 0.
        warmup_epochs: length of the linear warm-up, a finite number >= 0.
        min_lr_ratio: final learning rate over the peak one, in [0, 1].
        grad_clip: max global gradient norm (> 0) or None.

    Returns:
        None.

    Raises:
        ValueError: one line naming the setting and the value.
    """
    if optimizer not in DEFAULT_LR:
        raise checks.fail(
            None, "optimizer", f"one of {sorted(DEFAULT_LR)}", repr(optimizer)
        )
    if lr is not None:
        checks.positive(lr, "lr")
    momentum = checks.nonnegative(momentum, "momentum")
    if momentum >= 1:
        raise checks.fail(None, "momentum", "in [0, 1)", momentum)
    checks.nonnegative(weight_decay, "weight_decay")
    checks.nonnegative(warmup_epochs, "warmup_epochs")
    ratio = checks.nonnegative(min_lr_ratio, "min_lr_ratio")
    if ratio > 1:
        raise checks.fail(None, "min_lr_ratio", "in [0, 1]", ratio)
    if grad_clip is not None:
        checks.positive(grad_clip, "grad_clip")


def lr_at(
    step: int,
    total_steps: int,
    base_lr: float,
    warmup_steps: int,
    min_lr_ratio: float = 0.0,
) -> float:
    r"""Linear warm-up over ``warmup_steps``, then cosine decay to
    ``min_lr_ratio * base_lr``.

    Args:
        step: the 0-based step $s$.
        total_steps: all steps of the run, $S$.
        base_lr: the peak learning rate $\eta$.
        warmup_steps: the warm-up length $S_w$ (0: none).
        min_lr_ratio: $\eta_\text{min} / \eta$.

    Returns:
        The learning rate of ``step``.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    min_lr = min_lr_ratio * base_lr
    return min_lr + 0.5 * (base_lr - min_lr) * (
        1.0 + math.cos(math.pi * min(1.0, progress))
    )


class LARS(torch.optim.SGD):
    r"""SGD with momentum on gradients rescaled per tensor by the LARS trust ratio (You,
    Gitman & Ginsburg 2017), as in the simclr-pytorch code (Atanov) that Koromilas et
    al. 2024 trained DHEL and KCL with. For each parameter tensor $w$ of a group with
    ``lars=True``:

    $$g \leftarrow g + \lambda w, \qquad
      g \leftarrow \eta_\text{trust} \frac{\lVert w \rVert}{\lVert g \rVert} \, g
      \quad (\text{if } \lVert w \rVert > 0 \text{ and } \lVert g \rVert > 0),$$

    then the plain SGD-with-momentum update with the scheduled learning rate. Groups
    with ``lars=False`` (biases and BatchNorm parameters in :func:`build_optimizer`) get
    neither weight decay nor adaptation, as in that code. The ratio is computed with
    ``torch.where`` on the device: no host synchronisation.

    Args:
        params: parameters or groups (a group may set ``lars`` and ``weight_decay``).
        lr: learning rate (the trainer overwrites it every step).
        momentum: SGD momentum (0.9 in simclr-pytorch).
        weight_decay: $\lambda$ of groups that do not set their own.
        trust_coefficient: $\eta_\text{trust}$ (0.001 in simclr-pytorch).
    """

    def __init__(
        self,
        params,
        lr: float = 0.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
    ):
        if not trust_coefficient > 0:
            raise ValueError(f"trust_coefficient must be > 0, got {trust_coefficient}")
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.trust_coefficient = trust_coefficient
        for group in self.param_groups:
            group.setdefault("lars", True)

    @torch.no_grad()
    def step(self, closure=None):
        decays = [group["weight_decay"] for group in self.param_groups]
        for group, decay in zip(self.param_groups, decays):
            for p in group["params"]:
                if p.grad is None or not group["lars"]:
                    continue
                g = p.grad.add_(p, alpha=decay) if decay else p.grad
                w_norm, g_norm = (
                    torch.linalg.vector_norm(p),
                    torch.linalg.vector_norm(g),
                )
                ratio = self.trust_coefficient * w_norm / g_norm
                g.mul_(
                    torch.where(
                        (w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio)
                    )
                )
            group["weight_decay"] = 0.0  # applied above; SGD must not add it again
        try:
            return super().step(closure)
        finally:
            for group, decay in zip(self.param_groups, decays):
                group["weight_decay"] = decay


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD+momentum, AdamW or :class:`LARS`; no weight decay (and for LARS no
    adaptation) on biases and BatchNorm parameters (1-D tensors), the usual choice for
    SimCLR-style training.

    Args:
        model: the network to optimise.
        cfg: ``optimizer``, ``momentum``, ``weight_decay`` are read.

    Returns:
        The optimiser, with learning rate 0 (the trainer sets it every step).
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=0.0, momentum=cfg.momentum)
    if cfg.optimizer == "lars":
        groups[1]["lars"] = False
        return LARS(groups, lr=0.0, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=0.0)
