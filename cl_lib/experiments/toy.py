"""The rank-1 subspace toy of the CLOA paper (Li & Pimentel-Alarcón 2024, Sec. 3).

Read top to bottom:

1. **Data** -- :func:`make_subspace_data`: ``num_classes`` lines through the origin of
   $\\mathbb{R}^3$, points spread along each line plus small Gaussian noise.
   :func:`augment`: random negation plus Gaussian noise (the paper's augmentation), so
   $x$ and $-x$ are positives and a good encoder must be *even* in its input.
2. **Encoder** -- :class:`ToyEncoder`: three linear layers, BatchNorm and ReLU (paper,
   Sec. 3).
3. **Training** -- :func:`train_toy`: SGD at batch size 128 with any loss of
   :func:`cl_lib.losses.get_loss`, optionally plus the CLOA anchor term (paper, eq. 2)
   on a fraction of labelled samples; returns history, snapshots, final embeddings and
   metrics. It is one run of :func:`train_toy_batch`, which trains several seeds and
   learning rates as one batched network (:class:`_ToyBatch`).
4. **Evaluation** -- :func:`probe_accuracies` (linear probe and kNN of
   ``cl_lib.evaluate`` on normalised embeddings), :func:`class_mean_collinearity`,
   :func:`dead_relu_fraction`.
5. **Theorem 3.1** -- :func:`collapsed_configuration`, :func:`infonce_unnormalised`,
   :func:`sphere_gradients`, :func:`riemannian_hessian`, :func:`tangent_probe`: the
   gradient and the second-order behaviour of InfoNCE at collapsed embeddings, on the
   product of spheres; :func:`last_layer_hessian`: the same question in the encoder's
   parameter space; :func:`loss_slice`: the loss along one tangent direction (a 1-D
   picture of a saddle).
6. **Plateaus** -- :func:`angular_gradient_norm` (how far a state is from a critical
   point), :func:`rescale_output_layer` and :func:`revive_dead_units` (interventions
   that leave the embeddings unchanged but change the weights), passed to
   :func:`train_toy` as ``intervention``.
7. **Figures** -- :func:`plot_toy_data`, :func:`plot_embedding_trajectory` (plotly,
   shown with ``cl_lib.experiments.viz.show_plotly``).
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cl_lib.profile import mix_seed

__all__ = [
    "ToyEncoder",
    "ToyRun",
    "angular_gradient_norm",
    "augment",
    "class_mean_collinearity",
    "collapsed_configuration",
    "dead_relu_fraction",
    "infonce_unnormalised",
    "last_layer_hessian",
    "loss_slice",
    "make_split",
    "make_subspace_data",
    "mean_std",
    "momentum_reset",
    "plot_embedding_trajectory",
    "plot_toy_data",
    "probe_accuracies",
    "rescale_output_layer",
    "revive_dead_units",
    "riemannian_hessian",
    "sphere_gradients",
    "sweep_table",
    "sweep_toy",
    "sweep_toy_batch",
    "tangent_probe",
    "train_toy",
    "train_toy_batch",
]


# ----------------------------------------------------------------------------- 1. data
def class_directions(
    num_classes: int = 3, dim: int = 3, seed: int = 0, min_angle_deg: float = 40.0
) -> torch.Tensor:
    """Random unit directions $u_k$ of the class lines, redrawn until every pair of
    *lines* is at least ``min_angle_deg`` apart (lines: the angle between $u_k$ and
    $\\pm u_l$)."""
    if num_classes < 1 or dim < 2:
        raise ValueError(
            f"need num_classes >= 1 and dim >= 2, got {num_classes}, {dim}"
        )
    g = torch.Generator().manual_seed(seed)
    cos_max = math.cos(math.radians(min_angle_deg))
    for _ in range(1000):
        u = F.normalize(torch.randn(num_classes, dim, generator=g), dim=1)
        cos = (u @ u.T).abs() - torch.eye(num_classes)
        if num_classes == 1 or cos.max() <= cos_max:
            return u
    raise ValueError(
        f"could not place {num_classes} lines {min_angle_deg} deg apart in R^{dim}"
    )


def make_subspace_data(
    n_per_class: int = 200,
    num_classes: int = 3,
    dim: int = 3,
    noise: float = 0.05,
    seed: int = 0,
    directions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Points on ``num_classes`` rank-1 subspaces (lines through the origin), paper
    Sec. 3:

    $$x = t\,u_y + \sigma\,\varepsilon,\qquad t \sim \mathcal U(-1, 1),\;
      \varepsilon \sim \mathcal N(0, I_d),$$

    so both halves $\pm u_y$ of a line belong to class $y$. Returns ``(x, y)``: ``x``
    float32 $(C\cdot n, d)$, ``y`` int64 class labels. ``directions`` defaults to
    :func:`class_directions` (seed 0, fixed across train/test splits; ``seed`` only
    moves points)."""
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    u = class_directions(num_classes, dim) if directions is None else directions.float()
    if u.shape != (num_classes, dim):
        raise ValueError(
            f"directions must have shape {(num_classes, dim)}, got {tuple(u.shape)}"
        )
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    t = 2 * torch.rand(len(y), 1, generator=g) - 1
    x = t * u[y] + noise * torch.randn(len(y), dim, generator=g)
    return x, y


def make_split(
    seed: int, n_per_class: int = 200, noise: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training and test sets of toy seed ``seed``, ``(x, y, x_test, y_test)``:
    :func:`make_subspace_data` drawn from the seed's own streams
    ``mix_seed(seed, 1)`` and ``mix_seed(seed, 2)``, so that no seed's training set
    is another's test set."""
    x, y = make_subspace_data(n_per_class, noise=noise, seed=mix_seed(seed, 1))
    x_test, y_test = make_subspace_data(
        n_per_class, noise=noise, seed=mix_seed(seed, 2)
    )
    return x, y, x_test, y_test


def augment(
    x: torch.Tensor,
    noise: float = 0.05,
    flip_prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The paper's augmentation: random negation plus Gaussian noise, $x' = s\,x +
    \sigma\varepsilon$ with $s = -1$ with probability ``flip_prob``, else $+1$."""
    if not 0 <= flip_prob <= 1:
        raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    flip = torch.rand(x.shape[0], 1, generator=generator) < flip_prob
    sign = 1.0 - 2.0 * flip.to(x.dtype)
    return sign * x + noise * torch.randn(x.shape, generator=generator, dtype=x.dtype)


# --------------------------------------------------------------------------- 2. encoder
class ToyEncoder(nn.Module):
    """The paper's small MLP: Linear-BN-ReLU-Linear-BN-ReLU-Linear (3 linear layers)."""

    def __init__(self, in_dim: int = 3, hidden: int = 64, out_dim: int = 3):
        super().__init__()
        if min(in_dim, hidden, out_dim) < 1:
            raise ValueError(
                f"dimensions must be >= 1, got {in_dim}, {hidden}, {out_dim}"
            )
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the two ReLUs (for dead-unit counts)."""
        acts, h = [], x
        for layer in self.net:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                acts.append(h)
        return acts


# ------------------------------------------------------------------------ 4. evaluation
def probe_accuracies(
    z_train: torch.Tensor,
    y_train: torch.Tensor,
    z_test: torch.Tensor,
    y_test: torch.Tensor,
    k: int = 5,
) -> tuple[float, float]:
    """``(linear probe, kNN)`` test accuracies from :mod:`cl_lib.evaluate`, on
    L2-normalised embeddings (what the sphere-based losses see, whatever the raw scale)
    and *without*
    standardising: a collapsed embedding must not be blown back up by the probe. kNN:
    cosine, ``k`` neighbours (5: the toy has a few hundred points, not an image
    bank)."""
    held = _heldout(z_train, y_train, z_test, y_test, k=k, geometry=False)
    return held["linear_probe_acc"], held["knn_acc"]


def _heldout(
    z_train, y_train, z_test, y_test, views=None, k: int = 5, geometry: bool = True
) -> dict:
    """The library's one held-out evaluation (:func:`cl_lib.evaluate.heldout_metrics`)
    as the toy uses it: geometry of the raw ``z_train`` (and ``views``), probes on the
    sphere."""
    from cl_lib.evaluate import heldout_metrics

    a, b = (F.normalize(v.float(), dim=1) for v in (z_train, z_test))
    return heldout_metrics(
        z_train if geometry else None,
        y_test,
        views=views,
        bank=a,
        bank_labels=y_train,
        query=b,
        knn_k=k,
        probe={"standardize": False},
        wasserstein=False,
    )


def class_mean_collinearity(
    z: torch.Tensor, y: torch.Tensor, centred: bool = False
) -> float:
    r"""How close the class means of the normalised embeddings are to one line through
    0: $\sigma_1^2 / \sum_k \sigma_k^2$ of the (uncentred) matrix of the $C$ class means
    $m_c = \operatorname{mean}_{y_i=c} z_i/\lVert z_i\rVert$. It is 1 when all means lie
    on one line $\pm v$ (the paper's picture of over-fusion) and $1/C$ for orthogonal
    means of equal norm.

    With ``centred``, the mean of the class means is subtracted first: then it measures
    whether the classes differ along one direction only. Use it for features that are
    non-negative (after a ReLU), whose uncentred means share one large common direction
    whatever the network has learned."""
    if z.ndim != 2 or y.ndim != 1 or len(z) != len(y):
        raise ValueError(
            f"need z (N, d) and y (N,), got {tuple(z.shape)}, {tuple(y.shape)}"
        )
    u = F.normalize(z.detach().double(), dim=1)
    means = torch.stack([u[y == c].mean(0) for c in torch.unique(y)])
    if centred:
        means = means - means.mean(0)
    s2 = torch.linalg.svdvals(means).pow(2)
    return float(s2[0] / s2.sum())


@torch.no_grad()
def dead_relu_fraction(model: ToyEncoder, x: torch.Tensor) -> float:
    """Fraction of hidden ReLU units that output 0 for *every* input in ``x`` (eval
    mode). A dead unit passes no gradient to the weights before it."""
    was_training = model.training
    model.eval()
    acts = model.hidden_activations(x)
    model.train(was_training)
    dead = sum(int((a <= 0).all(0).sum()) for a in acts)
    return dead / sum(a.shape[1] for a in acts)


# -------------------------------------------------------------------------- 3. training
@dataclass
class ToyRun:
    """What :func:`train_toy` returns."""

    config: dict
    history: dict  # per epoch: loss, variance_sphere, effective_rank, grad_norm
    snapshots: list  # (epoch, normalised embeddings of the snapshot points) pairs
    snapshot_labels: torch.Tensor
    z: torch.Tensor  # final raw embeddings of the (clean) training points
    y: torch.Tensor
    metrics: dict
    model: ToyEncoder = field(repr=False)


def _embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        z = model(x)
    model.train(was_training)
    return z


_HISTORY_KEYS = (
    "epoch",
    "loss",
    "variance_sphere",
    "effective_rank",
    "class_mean_collinearity",
    "grad_norm",
    "eval_loss",
    "angular_grad",
    "effective_rank_sphere",
)


def _record_epoch(history, epoch, loss_value, grad_norm, z, y, base_loss, e1, e2):
    """Append one epoch to a :func:`train_toy` history: ``z`` the clean embeddings
    (eval mode), ``e1, e2`` the fixed evaluation views (None: no plateau tracking).
    The geometry is the library's one held-out evaluation
    (:func:`cl_lib.evaluate.heldout_metrics`), in float64: a run in collapse can
    underflow in float32."""
    from cl_lib.evaluate import heldout_metrics

    nan = float("nan")
    z = z.double()
    geometry = heldout_metrics(z, wasserstein=False)
    ok = bool(torch.isfinite(z).all() and (z.norm(dim=1) > 0).all())
    history["epoch"].append(epoch)
    history["loss"].append(loss_value)
    history["variance_sphere"].append(geometry["embedding_variance_sphere"])
    history["effective_rank"].append(geometry["effective_rank"])
    history["class_mean_collinearity"].append(
        class_mean_collinearity(z, y) if ok else nan
    )
    history["grad_norm"].append(grad_norm)
    if e1 is not None and ok and torch.isfinite(e1).all() and torch.isfinite(e2).all():
        ev_loss, ang = angular_gradient_norm(base_loss, e1.double(), e2.double())
    else:
        ev_loss = ang = nan
    history["eval_loss"].append(ev_loss)
    history["angular_grad"].append(ang)
    history["effective_rank_sphere"].append(geometry["effective_rank_sphere"])


def _toy_base_loss(loss_name: str, tau: float, loss_kwargs: dict | None):
    """The toy's contrastive loss: ``tau`` goes to the losses that take one (the
    registry refuses it elsewhere)."""
    from cl_lib.losses import get_loss, loss_spec

    kwargs = dict(loss_kwargs or {})
    spec = loss_spec(loss_name)
    base = kwargs.get("base", spec.defaults.get("base"))  # CLOA: its base loss's tau
    takes_tau = "tau" in spec.defaults or (
        base is not None and "tau" in loss_spec(base).defaults
    )
    return get_loss(loss_name, **({"tau": tau} if takes_tau else {}), **kwargs)


# Seeds of the toy: integers in [0, TOY_SEEDS); mix_seed reads seeds modulo 2**32,
# so larger ones would repeat the streams of smaller ones
TOY_SEEDS = 2**32


def _toy_setup(
    seed,
    n_per_class,
    noise,
    hidden,
    out_dim,
    label_fraction,
    batch_size,
    aug_noise,
    n_snapshot,
) -> dict:
    """Every random draw of one toy run before training, in one order: the global
    seed, the training generator ``g``, train and test data, the initial weights, the
    labelled subset and its anchors (``None`` without labels), the snapshot points and
    the fixed evaluation views. :func:`train_toy` and :func:`train_toy_batch` both
    start here, which is what keeps their runs bit-identical; ``rng`` is the global
    RNG state after the initial weights (the labels draw from ``g``)."""
    from cl_lib.losses import make_anchors

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, y, x_test, y_test = make_split(seed, n_per_class, noise)
    num_classes = int(y.max()) + 1
    model = ToyEncoder(x.shape[1], hidden, out_dim)
    rng = torch.get_rng_state()
    # labelled subset for the anchor term: label_fraction of each class, at least one
    # per class
    labels, anchors = torch.full_like(y, -1), None
    if label_fraction > 0:
        for c in range(num_classes):
            idx = (y == c).nonzero().squeeze(1)
            n_lab = max(1, round(label_fraction * len(idx)))
            labels[idx[torch.randperm(len(idx), generator=g)[:n_lab]]] = c
        anchors = make_anchors(num_classes, out_dim, seed=seed)
    snap_idx = torch.randperm(len(x), generator=g)[:n_snapshot]
    g_eval = torch.Generator().manual_seed(mix_seed(seed, 3))  # not g
    eval_idx = torch.randperm(len(x), generator=g_eval)[:batch_size]
    x_eval = [augment(x[eval_idx], aug_noise, generator=g_eval) for _ in range(2)]
    return {
        "g": g,
        "x": x,
        "y": y,
        "x_test": x_test,
        "y_test": y_test,
        "num_classes": num_classes,
        "model": model,
        "rng": rng,
        "labels": labels,
        "anchors": anchors,
        "snap_idx": snap_idx,
        "x_eval": x_eval,
    }


def _final_metrics(
    model, x, y, x_test, y_test, labels, g, batch_loss, batch_size, aug_noise, diverged
) -> dict:
    """The end-of-training metrics of :func:`train_toy` (see there), plus ``"z"``: the
    final raw embeddings of the clean training points (float64). Draws from ``g``."""
    # float64: huge norms
    z, z_test = (
        _embed(model, x).double(),
        _embed(model, x_test).double(),
    )
    finite = bool(
        torch.isfinite(z).all()
        and torch.isfinite(z_test).all()
        and (z.norm(dim=1) > 0).all()
        and torch.isfinite(z.norm(dim=1)).all()
    )
    z1, z2 = (
        _embed(model, augment(x, aug_noise, generator=g)).double() for _ in range(2)
    )
    nan = float("nan")
    held = _heldout(z, y, z_test, y_test, views=(z1, z2)) if finite else {}
    out = {
        "variance": held.get("embedding_variance", nan),
        "variance_sphere": held.get("embedding_variance_sphere", nan),
        "effective_rank": held.get("effective_rank", nan),
        "effective_rank_sphere": held.get("effective_rank_sphere", nan),
        "alignment": held.get("alignment", nan),
        "uniformity": held.get("uniformity", nan),
        "linear_probe": held.get("linear_probe_acc", nan),
        "knn": held.get("knn_acc", nan),
        "mean_norm": float(z.norm(dim=1).mean()) if finite else nan,
        "class_mean_collinearity": class_mean_collinearity(z, y) if finite else nan,
        "dead_relu": dead_relu_fraction(model, x),
        "grad_norm": nan,
        "diverged": diverged,
    }
    # gradient reaching the weights at the end: one training-mode batch (done last: it
    # moves BN stats)
    model.train()
    model.zero_grad()
    b = torch.randperm(len(x), generator=g)[:batch_size]
    final_loss = batch_loss(x[b], labels[b])
    if torch.isfinite(final_loss):
        final_loss.backward()
        out["grad_norm"] = float(
            torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters()))
        )
    out["z"] = z
    return out


def train_toy(
    loss_name: str = "infonce",
    lr: float = 0.1,
    epochs: int = 30,
    seed: int = 0,
    label_fraction: float = 0.0,
    tau: float = 0.5,
    n_per_class: int = 200,
    batch_size: int = 128,
    hidden: int = 16,
    out_dim: int = 3,
    noise: float = 0.05,
    aug_noise: float = 0.05,
    momentum: float = 0.9,
    anchor_weight: float = 1.0,
    snapshot_every: int = 0,
    n_snapshot: int = 150,
    loss_kwargs: dict | None = None,
    intervention=None,
    intervene_at: int = 0,
    stop_when=None,
    track_plateau: bool = False,
) -> ToyRun:
    r"""Train :class:`ToyEncoder` on the toy with SGD (batch size 128, as in the paper;
    the paper
    gives neither the width nor the momentum: we use 16 hidden units and momentum 0.9).
    One run of :func:`train_toy_batch` (the library's one toy trainer).

    Loss per batch: ``get_loss(loss_name)(z1, z2)`` on two augmented views, plus, when
    ``label_fraction > 0``, ``anchor_weight`` times the CLOA anchor regression (paper
    eq. 2, :func:`cl_lib.losses.cloa_anchor_term`) on both views of the labelled samples
    (a fixed random ``label_fraction`` of the training set, at least one per class;
    anchors: :func:`cl_lib.losses.make_anchors`). ``tau`` goes to the losses that take a
    temperature.

    Metrics on the clean points (eval mode): ``variance`` (raw, paper Fig. 2),
    ``variance_sphere`` (of the L2-normalised embeddings; at most 1, comparable across
    losses), ``effective_rank`` (raw) and ``effective_rank_sphere`` (normalised; about 1
    when the embeddings lie on one line $\pm v$, whose sphere variance is still 1),
    ``alignment``, ``uniformity``, ``class_mean_collinearity`` (see
    :func:`class_mean_collinearity`), ``mean_norm`` (mean raw norm: for losses that
    normalise, the gradient reaching the weights scales like $1/\lVert\tilde z\rVert$),
    ``linear_probe`` and ``knn`` accuracy (fitted on the training points, scored on a
    fresh test set), ``dead_relu`` fraction, ``grad_norm`` (norm of the loss gradient
    w.r.t. all weights, one batch, at the end), ``diverged`` (a non-finite loss stopped
    training).

    ``history`` also holds, per epoch, ``effective_rank_sphere`` of the normalised clean
    embeddings and, with ``track_plateau`` (NaN without: it costs a gradient per epoch),
    on one fixed evaluation batch (two augmented views of ``batch_size`` training
    points, drawn once from their own generator, eval mode): ``eval_loss`` (the base
    loss) and ``angular_grad`` (:func:`angular_gradient_norm`: 0 exactly at a critical
    point of a scale-invariant loss, such as a collapsed state).

    ``snapshots``: with ``snapshot_every > 0``, ``(epoch, normalised embeddings)`` of
    ``n_snapshot`` fixed training points (eval mode) at epoch 0, every
    ``snapshot_every`` epochs and at epoch ``epochs``.

    Interventions: ``intervention(model, x)`` (e.g. :func:`revive_dead_units`) is called
    once, after epoch ``intervene_at``, before training goes on (one marked by
    :func:`momentum_reset` also zeroes SGD's momentum; its return value is kept in
    ``config["intervention_value"]``); ``stop_when(history)``
    ends training after any epoch for which it returns True. Neither draws from the
    training generator, so a run with an intervention sees the same batches and
    augmentations as one without.
    """
    args = {k: v for k, v in locals().items() if k != "seed"}  # all but seed
    return train_toy_batch(seeds=[seed], **args)[0]


def sweep_toy(losses, lrs, seeds=(0,), **train_kwargs) -> dict:
    """Run :func:`train_toy` for every loss x learning rate x seed. Returns
    ``{(loss, lr): {metric: np.ndarray over seeds}}`` (``diverged`` as 0/1)."""
    out = {}
    for loss in losses:
        for lr in lrs:
            runs = [
                train_toy(loss, lr=lr, seed=s, **train_kwargs).metrics for s in seeds
            ]
            out[loss, lr] = {k: np.array([float(r[k]) for r in runs]) for k in runs[0]}
    return out


# ------------------------------------------------------ 3b. training, seeds in parallel
def _batched_linear(x, weight, bias):
    """``F.linear`` for a stack of models: ``x`` (S, B, i), ``weight`` (S, o, i)."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous: the layers before the
    batched BatchNorm then reduce their gradients in the same order as one model's
    (a strided gradient is summed in another order, which changes the last bits)."""

    @staticmethod
    def forward(ctx, h):
        return h.view_as(h)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def _batched_batch_norm(h, mean, var, weight, bias, training):
    """``F.batch_norm`` of S models at once: the S x C channels side by side, so each
    channel is normalised over the batch exactly as by its own model. ``mean`` and
    ``var`` are views (S, C) of the running statistics, updated in place."""
    s, b, c = h.shape
    flat = _ContiguousGrad.apply(h).transpose(0, 1).reshape(b, s * c)
    rm, rv = mean.view(-1), var.view(-1)
    out = F.batch_norm(
        flat, rm, rv, weight.reshape(-1), bias.reshape(-1), training, 0.1, 1e-5
    )
    return out.reshape(b, s, c).transpose(0, 1)


def _reuse_freed_memory() -> None:
    """Ask glibc to keep freed blocks of up to 256 MB for reuse instead of returning
    them to the OS: a batched step allocates and frees tensors of a few MB (the logits
    of every run), and glibc's default (``mmap`` above 128 kB) makes each of them cost
    fresh page faults -- a fifth of the CPU time of a sweep. Memory use is unchanged
    in practice; elsewhere than glibc this does nothing."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD


def _equal_slices(values) -> list:
    """``(start, stop, value)`` for each stretch of equal consecutive values."""
    out = []
    for i, v in enumerate(values):
        if out and out[-1][2] == v:
            out[-1] = (out[-1][0], i + 1, v)
        else:
            out.append((i, i + 1, v))
    return out


# losses whose vmap-ed gradient is bit-identical to one model's (tests/test_toy.py)
_VMAP_EXACT = ("infonce", "dcl", "vicreg")


class _ToyBatch:
    """The runs of :func:`train_toy_batch` as one batched network.

    ``runs``: one dict per run (its data and random draws from :func:`_toy_setup`, its
    generator ``g``, history ``hist``, snapshots ``snaps``, ``diverged``, ``value``
    of its intervention, ``src`` of a fork); ``state``: every entry of a
    :class:`ToyEncoder`'s state dict, stacked over the runs (S, ...), with the SGD
    momentum ``velocity`` of its weights; ``active``: the runs still training. ``o``:
    the arguments of :func:`train_toy_batch`."""

    def __init__(self, o, seeds, lrs):
        self.o, self.lrs, self.alone = o, lrs, len(seeds) == 1
        self.base_loss = _toy_base_loss(o.loss_name, o.tau, o.loss_kwargs)
        self.runs = [self._setup_run(seed, run_lr) for seed, run_lr in zip(seeds, lrs)]
        self.names = list(self.runs[0]["state"])
        self.params = [k for k in self.names if k.endswith(("weight", "bias"))]
        self.state = {
            k: torch.stack([r["state"][k] for r in self.runs]) for k in self.names
        }
        for k in self.params:
            self.state[k].requires_grad_(True)
        self.velocity = {k: torch.zeros_like(self.state[k]) for k in self.params}
        self.x_all = torch.stack([r["x"] for r in self.runs])
        self.x_eval_all = [
            torch.stack([r["x_eval"][v] for r in self.runs]) for v in range(2)
        ]
        self.anchors_all = torch.stack([r["anchors"] for r in self.runs])
        lin = [k[: -len(".weight")] for k in self.names if k.endswith(".weight")]
        self.linear_layers = [k for k in lin if self.state[k + ".weight"].ndim == 3]
        self.bn_layers = [k for k in lin if self.state[k + ".weight"].ndim == 2]
        self.lr_slices = _equal_slices(self.lrs)
        self.active = list(range(len(self.runs)))

    def _setup_run(self, seed, run_lr) -> dict:
        """One run's random draws, exactly those of one run trained alone."""
        o = self.o
        r = _toy_setup(
            seed,
            o.n_per_class,
            o.noise,
            o.hidden,
            o.out_dim,
            o.label_fraction,
            o.batch_size,
            o.aug_noise,
            o.n_snapshot,
        )
        if r["anchors"] is None:  # stacked with the others: zeros, never used
            r["anchors"] = torch.zeros(r["num_classes"], o.out_dim)
        self.template = r.pop("model")  # copied by member_model: no global draws
        r.update(
            seed=seed,
            lr=run_lr,
            state=self.template.state_dict(),
            diverged=False,
            hist={k: [] for k in _HISTORY_KEYS},
            snaps=[],
            value=None,
        )
        return r

    def forward(self, idx, xb, training):
        """The networks of every run, in place (``idx`` None), or of the runs
        ``idx`` on copies, their running statistics written back in training."""
        st = self.state if idx is None else {k: self.state[k][idx] for k in self.names}
        h = xb
        for i, name in enumerate(self.linear_layers):
            h = _batched_linear(h, st[name + ".weight"], st[name + ".bias"])
            if i < len(self.bn_layers):
                bn = self.bn_layers[i]
                h = _batched_batch_norm(
                    h,
                    st[bn + ".running_mean"],
                    st[bn + ".running_var"],
                    st[bn + ".weight"],
                    st[bn + ".bias"],
                    training,
                )
                h = F.relu(h)
        if training:
            with torch.no_grad():
                for bn in self.bn_layers:  # as nn.BatchNorm1d counts its batches
                    count = self.state[bn + ".num_batches_tracked"]
                    if idx is None:
                        count.add_(1)
                        continue
                    count[idx] += 1
                    for k in (".running_mean", ".running_var"):
                        self.state[bn + k][idx] = st[bn + k]
        return h

    def loss_per_run(self, idx, z1, z2, lb):
        """The loss of each run ``idx`` (S,) on its views ``z1, z2`` (S, B, d)."""
        from torch.func import vmap

        from cl_lib.checks import no_value_reads
        from cl_lib.losses import cloa_anchor_term

        o = self.o
        if self.alone and len(idx) == 1:  # as one model's: train_toy (no vmap: faster)
            if not (torch.isfinite(z1).all() and torch.isfinite(z2).all()):
                return torch.full((1,), float("nan"))  # diverged: the caller stops
            return self.one_loss(z1[0], z2[0], lb[0], self.anchors_all[idx[0]])[None]
        with no_value_reads():  # vmap cannot read values; finiteness checked later
            if o.loss_name in _VMAP_EXACT:
                loss = vmap(self.base_loss)(z1, z2)
            else:  # e.g. Barlow Twins: vmap's backward sums in another order
                loss = torch.stack([self.base_loss(a, b) for a, b in zip(z1, z2)])
            if o.label_fraction > 0:
                anchor_term = vmap(cloa_anchor_term)(
                    torch.cat([z1, z2], 1),
                    torch.cat([lb, lb], 1),
                    self.anchors_all[idx],
                )
                has_labels = (lb >= 0).any(1)
                loss = torch.where(
                    has_labels, loss + o.anchor_weight * anchor_term, loss
                )
        return loss

    def one_loss(self, z1, z2, lb, anchors):
        """One run's loss on its views ``z1, z2`` (B, d) with labels ``lb`` (B,)."""
        from cl_lib.losses import cloa_anchor_term

        loss = self.base_loss(z1, z2)
        if self.o.label_fraction > 0 and (lb >= 0).any():
            term = cloa_anchor_term(torch.cat([z1, z2]), torch.cat([lb, lb]), anchors)
            loss = loss + self.o.anchor_weight * term
        return loss

    def member_model(self, i) -> ToyEncoder:
        """Run ``i`` as a :class:`ToyEncoder` (a copy of its state)."""
        model = copy.deepcopy(self.template)
        model.load_state_dict({k: self.state[k][i].detach() for k in self.names})
        return model

    def apply_hook(self, i, hook):
        """``hook`` on run ``i``'s model, its state written back (and its momentum
        zeroed for a :func:`momentum_reset` hook)."""
        model = self.member_model(i)
        self.runs[i]["value"] = hook(model, self.runs[i]["x"])
        with torch.no_grad():
            for k, v in model.state_dict().items():
                self.state[k][i] = v
            if getattr(hook, "reset_momentum", False):
                for k in self.params:
                    self.velocity[k][i] = 0.0

    def intervene(self, intervention):
        """``intervention`` (one hook, or one hook or None per run of ``seeds``) on
        every active run (forks excepted)."""
        hooks = list(intervention) if isinstance(intervention, (list, tuple)) else None
        for i in self.active:
            if hooks is not None and i >= len(hooks):  # a fork
                continue
            hook = intervention if hooks is None else hooks[i]
            if hook is not None:
                self.apply_hook(i, hook)

    def fork(self, pairs):
        """For each ``(i, hook)`` of ``pairs``, a copy of run ``i`` (state, momentum,
        generator, history, snapshots) added to the batch, then ``hook`` on it."""
        if any(i not in self.active for i, _ in pairs):
            raise ValueError("fork: a run that has stopped cannot be forked")
        first, runs = len(self.runs), self.runs
        for i, _ in pairs:
            g = torch.Generator()
            g.set_state(runs[i]["g"].get_state())
            hist = {k: list(v) for k, v in runs[i]["hist"].items()}
            copied = {"g": g, "hist": hist, "snaps": list(runs[i]["snaps"]), "src": i}
            runs.append({**runs[i], **copied, "value": None})
            self.lrs.append(self.lrs[i])
        if not pairs:
            return
        rows = torch.tensor([i for i, _ in pairs])
        with torch.no_grad():
            self.state = {
                k: torch.cat([v.detach(), v.detach()[rows]])
                for k, v in self.state.items()
            }
            self.velocity = {
                k: torch.cat([v, v[rows]]) for k, v in self.velocity.items()
            }
        for k in self.params:
            self.state[k].requires_grad_(True)
        self.x_all = torch.cat([self.x_all, self.x_all[rows]])
        self.x_eval_all = [torch.cat([v, v[rows]]) for v in self.x_eval_all]
        self.anchors_all = torch.cat([self.anchors_all, self.anchors_all[rows]])
        self.lr_slices = _equal_slices(self.lrs)
        self.active = self.active + list(range(first, len(runs)))
        for j, (_, hook) in enumerate(pairs):
            self.apply_hook(first + j, hook)

    def train_epoch(self):
        """One epoch of SGD for every active run. Returns ``(losses, norms)``: per
        run still active, the mean loss and gradient norm over its steps; None when
        the data holds no full batch (nothing trained)."""
        n, batch_size = self.x_all.shape[1], self.o.batch_size
        starts = range(0, n - batch_size + 1, batch_size)  # drop_last: BN needs > 1
        if not starts:
            return None
        perms = {i: torch.randperm(n, generator=self.runs[i]["g"]) for i in self.active}
        losses = {i: [] for i in self.active}
        norms = {i: [] for i in self.active}
        for start in starts:
            if not self.active:
                break
            rows = [perms[i][start : start + batch_size] for i in self.active]
            self.step(rows, losses, norms)
        return (
            {i: float(np.mean(losses[i])) for i in self.active},
            {i: float(np.mean(norms[i])) for i in self.active},
        )

    def step(self, rows, losses, norms):
        """One SGD step of every active run on its batch ``rows``; a run whose
        embeddings or loss are not finite stops (diverged), as when trained alone.
        Appends each step's loss and gradient norm to ``losses``, ``norms``."""
        runs, active, aug = self.runs, self.active, self.o.aug_noise
        idx = torch.tensor(active)
        xb = torch.stack([runs[i]["x"][b] for i, b in zip(active, rows)])
        lb = torch.stack([runs[i]["labels"][b] for i, b in zip(active, rows)])
        views = [[], []]
        for j, i in enumerate(active):
            for v in range(2):
                views[v].append(augment(xb[j], aug, generator=runs[i]["g"]))
        every = len(active) == len(runs)  # no gathers needed
        z1 = self.forward(None if every else idx, torch.stack(views[0]), True)
        z2 = self.forward(None if every else idx, torch.stack(views[1]), True)
        loss = self.loss_per_run(idx, z1, z2, lb)
        finite = (
            torch.isfinite(z1).flatten(1).all(1)
            & torch.isfinite(z2).flatten(1).all(1)
            & torch.isfinite(loss)
        )
        for j in (~finite).nonzero().flatten().tolist():
            runs[active[j]]["diverged"] = True
        keep = finite.nonzero().flatten()
        if len(keep) == 0:
            self.active = []
            return
        loss[keep].sum().backward()
        kept = idx[keep]
        sq = self.sgd(kept, every and len(keep) == len(runs))
        for j, i in enumerate(kept.tolist()):
            losses[i].append(float(loss[keep[j]].detach()))
            norms[i].append(float(sq[j].sqrt()))
        self.active = kept.tolist()

    @torch.no_grad()
    def sgd(self, kept, every):
        """SGD with momentum on the runs ``kept`` (all of them, in place: ``every``)
        from their gradients. Returns the squared gradient norm of each."""
        state, velocity, momentum = self.state, self.velocity, self.o.momentum
        sq = sum(state[k].grad[kept].pow(2).flatten(1).sum(1) for k in self.params)
        if every:  # in place, slices of equal lr
            for k in self.params:
                p, buf = state[k], velocity[k]
                buf.mul_(momentum).add_(p.grad)
                for a, b, run_lr in self.lr_slices:
                    p[a:b].add_(buf[a:b], alpha=-run_lr)
                p.grad = None
            return sq
        kept_list = kept.tolist()
        for k in self.params:
            p, grad = state[k], state[k].grad[kept]
            buf = velocity[k][kept].mul_(momentum).add_(grad)
            velocity[k][kept] = buf
            for run_lr in sorted({self.lrs[i] for i in kept_list}):
                sel = [j for j, i in enumerate(kept_list) if self.lrs[i] == run_lr]
                p[kept[sel]] = p[kept[sel]].add_(buf[sel], alpha=-run_lr)
            p.grad = None
        return sq

    def record(self, epoch, losses, norms):
        """The history (and the due snapshots) of every active run after ``epoch``
        with its mean ``losses`` and gradient ``norms`` (NaN where missing)."""
        o, nan, active = self.o, float("nan"), self.active
        idx = torch.tensor(active)
        plateau = o.track_plateau and o.history
        with torch.no_grad():
            z_all = self.forward(idx, self.x_all[idx], False)
            e_all = [self.forward(idx, v[idx], False) for v in self.x_eval_all]
            e_all = e_all if plateau else None
        snap = o.snapshot_every and (epoch % o.snapshot_every == 0 or epoch == o.epochs)
        for j, i in enumerate(active):
            r, z = self.runs[i], z_all[j]
            if snap:
                u = F.normalize(z[r["snap_idx"]], dim=1)
                r["snaps"].append((epoch, u.numpy().copy()))
            if not o.history:
                continue
            e1, e2 = (e_all[0][j], e_all[1][j]) if plateau else (None, None)
            loss, norm = losses.get(i, nan), norms.get(i, nan)
            _record_epoch(
                r["hist"], epoch, loss, norm, z, r["y"], self.base_loss, e1, e2
            )

    def results(self, final_metrics) -> list:
        """One :class:`ToyRun` per run (see :func:`train_toy_batch`)."""
        return [self._result(i, final_metrics) for i in range(len(self.runs))]

    def _result(self, i, final_metrics) -> ToyRun:
        o, r = self.o, self.runs[i]
        torch.set_rng_state(r["rng"])  # the global RNG as after one run's setup
        model = self.member_model(i)
        model.train()
        if final_metrics:
            m = _final_metrics(
                model,
                r["x"],
                r["y"],
                r["x_test"],
                r["y_test"],
                r["labels"],
                r["g"],
                self._batch_loss(model, r),
                o.batch_size,
                o.aug_noise,
                r["diverged"],
            )
        else:
            with torch.no_grad():
                z_final = self.forward(torch.tensor([i]), r["x"][None], False)[0]
            m = {"z": z_final.double()}
        config = {
            "loss_name": o.loss_name,
            "lr": r["lr"],
            "epochs": o.epochs,
            "seed": r["seed"],
            "label_fraction": o.label_fraction,
            "tau": o.tau,
            "n_per_class": o.n_per_class,
            "batch_size": o.batch_size,
            "hidden": o.hidden,
            "momentum": o.momentum,
            "anchor_weight": o.anchor_weight,
            "intervention_value": r["value"],
            "forked_from": r.get("src"),
        }
        hist = r["hist"] if o.history else {k: [] for k in _HISTORY_KEYS}
        snap_labels, z = r["y"][r["snap_idx"]], m.pop("z")
        return ToyRun(config, hist, r["snaps"], snap_labels, z, r["y"], m, model)

    def _batch_loss(self, model, r):
        """Run ``r``'s loss on a batch for :func:`_final_metrics`, through ``model``
        (NaN when the embeddings are not finite)."""

        def batch_loss(xb, lb):
            z1, z2 = (
                model(augment(xb, self.o.aug_noise, generator=r["g"])),
                model(augment(xb, self.o.aug_noise, generator=r["g"])),
            )
            if not (torch.isfinite(z1).all() and torch.isfinite(z2).all()):
                return torch.tensor(float("nan"))
            return self.one_loss(z1, z2, lb, r["anchors"])

        return batch_loss


def _checked_seeds_and_lrs(o) -> tuple[list, list]:
    """The seeds and the learning rate of each, from the arguments ``o`` of
    :func:`train_toy_batch`, which are checked."""
    seeds = list(o.seeds)
    lr = o.lr
    lrs = [float(v) for v in (lr if np.ndim(lr) else [lr] * len(seeds))]
    if not seeds or len(lrs) != len(seeds):
        raise ValueError(f"need one lr per seed, got {len(lrs)} for {len(seeds)}")
    # a run draws from four streams: seed and mix_seed(seed, k) for its data (k = 1),
    # test set (2) and evaluation views (3), see make_split and _toy_setup
    bad = [
        s for s in seeds if not (isinstance(s, numbers.Integral) and 0 <= s < TOY_SEEDS)
    ]
    if bad:
        raise ValueError(f"toy seeds must be integers in [0, {TOY_SEEDS}), got {bad}")
    seeds = [int(s) for s in seeds]  # torch generators take Python ints only
    if min(lrs) <= 0 or o.epochs < 0 or o.batch_size < 2:
        raise ValueError(
            "need lr > 0, epochs >= 0, batch_size >= 2; "
            f"got {lrs}, {o.epochs}, {o.batch_size}"
        )
    if not 0 <= o.label_fraction <= 1:
        raise ValueError(f"label_fraction must be in [0, 1], got {o.label_fraction}")
    hooks = o.intervention
    if isinstance(hooks, (list, tuple)) and len(hooks) != len(seeds):
        raise ValueError(f"need one intervention per seed, got {len(hooks)}")
    if o.stop_when is not None and not o.history:
        raise ValueError("stop_when reads the history: set history=True")
    return seeds, lrs


def train_toy_batch(
    loss_name: str = "infonce",
    seeds=(0,),
    lr=0.1,
    epochs: int = 30,
    label_fraction: float = 0.0,
    tau: float = 0.5,
    n_per_class: int = 200,
    batch_size: int = 128,
    hidden: int = 16,
    out_dim: int = 3,
    noise: float = 0.05,
    aug_noise: float = 0.05,
    momentum: float = 0.9,
    anchor_weight: float = 1.0,
    history: bool = True,
    track_plateau: bool = False,
    intervention=None,
    intervene_at: int = 0,
    stop_when=None,
    loss_kwargs: dict | None = None,
    final_metrics: bool = True,
    fork_at: int = 0,
    fork=None,
    snapshot_every: int = 0,
    n_snapshot: int = 150,
) -> list[ToyRun]:
    r"""The toy trainer: one run of :func:`train_toy` per entry of ``seeds`` (integers
    below :data:`TOY_SEEDS`; each draws its data and test set from its own mixed
    streams, see :func:`~cl_lib.profile.mix_seed`; with
    learning rate ``lr``, a number or one per seed), all trained in one batched
    network so that a step costs about as much as for one run; every argument of
    :func:`train_toy` means the same here.

    Each run draws exactly the random numbers of its seed alone and computes the same
    operations, batched (``baddbmm`` linear layers, BatchNorm channels side by side,
    the loss through ``torch.func.vmap``, SGD with momentum per run): a run is the
    same, bit for bit on CPU, alone or next to others (``tests/test_toy.py`` checks
    it, and both against frozen runs of the former one-run trainer) -- except Barlow
    Twins with labels, whose vmap-ed anchor term differs in the last bits. The runs
    do not interact; one that diverges or meets ``stop_when`` leaves the batch.

    ``history=False`` skips the per-epoch record (the final metrics are unchanged;
    ``stop_when`` needs the history). ``intervention(model, x)`` (one callable, or a
    list with one callable or None per run) is called per run on a
    :class:`ToyEncoder` copy whose state is written back; its return value is kept
    in ``config["intervention_value"]``. ``final_metrics=False`` skips the
    end-of-training evaluation (``metrics`` is then empty, ``z`` the final raw
    embeddings): for runs read only through their history.

    Forks: ``fork(histories)``, called once after epoch ``fork_at`` with the history
    of every run, returns ``(i, hook)`` pairs; each adds a copy of run ``i`` (state,
    momentum, random generator, history, snapshots) to the batch, on which
    ``hook(model, x)`` is called before training goes on -- the same run as one
    trained from scratch with that intervention at ``fork_at``, without training the
    first ``fork_at`` epochs again. Forks come after the runs of ``seeds`` in the
    result, in the order given; ``config["forked_from"]`` is the position of their
    source.

    Returns:
        One :class:`ToyRun` per seed, in the order of ``seeds``, then the forks.
    """
    o = SimpleNamespace(**locals())  # the arguments, for _ToyBatch
    _reuse_freed_memory()
    seeds, lrs = _checked_seeds_and_lrs(o)
    batch = _ToyBatch(o, seeds, lrs)
    if history or snapshot_every:
        batch.record(0, {}, {})
    for epoch in range(1, epochs + 1):
        if not batch.active:
            break
        if fork is not None and epoch == fork_at + 1:
            batch.fork(list(fork([r["hist"] for r in batch.runs])))
        if intervention is not None and epoch == intervene_at + 1:
            batch.intervene(intervention)
        means = batch.train_epoch()
        if means is None or not batch.active:
            break
        if history or snapshot_every:
            batch.record(epoch, *means)
        if stop_when is not None:
            batch.active = [
                i for i in batch.active if not stop_when(batch.runs[i]["hist"])
            ]
    return batch.results(final_metrics)


def sweep_toy_batch(losses, lrs, seeds=(0,), **train_kwargs) -> dict:
    """:func:`sweep_toy` with the learning rates and seeds of each loss trained as one
    batch (:func:`train_toy_batch`, ``history=False``): the same runs, several times
    faster. Returns ``{(loss, lr): {metric: np.ndarray over seeds}}``."""
    out = {}
    members = [(lr, s) for lr in lrs for s in seeds]
    for loss in losses:
        runs = train_toy_batch(
            loss,
            seeds=[s for _, s in members],
            lr=[lr for lr, _ in members],
            history=False,
            **train_kwargs,
        )
        for lr in lrs:
            ms = [r.metrics for r, (l, _) in zip(runs, members) if l == lr]
            out[loss, lr] = {k: np.array([float(m[k]) for m in ms]) for k in ms[0]}
    return out


def mean_std(values, digits: int = 2) -> str:
    """
    ``"m"`` for one value, ``"m +- s"`` for several (NaN-aware), rounded to ``digits``.
    """
    v = np.asarray(values, dtype=float)
    if np.isnan(v).all():
        return "nan"
    m = float(np.nanmean(v))
    if v.size == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} +- {float(np.nanstd(v)):.{digits}f}"


def sweep_table(results: dict, metric_names, digits: int = 2) -> str:
    """
    Text table: one row per (loss, lr), one column per metric, mean (+- std over seeds).
    """
    head = f"{'loss':>13} {'lr':>7} " + " ".join(f"{m:>16}" for m in metric_names)
    rows = [head]
    for (loss, lr), ms in results.items():
        cells = " ".join(f"{mean_std(ms[m], digits):>16}" for m in metric_names)
        rows.append(f"{loss:>13} {lr:>7g} {cells}")
    return "\n".join(rows)


# ----------------------------------------------------------------------- 5. Theorem 3.1
def collapsed_configuration(
    n_pairs: int,
    dim: int,
    kind: str = "point",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Two views ``(z1, z2)`` of ``n_pairs`` unit embeddings in a collapsed state
    (Theorem 3.1):

    - ``"point"``: every embedding equals one random unit vector $v$;
    - ``"line"``: $z_i = s_i v$ with a random sign $s_i$ per *pair* (both views agree:
      what an encoder that is even in its input, $f(x) = f(-x)$, produces on a line);
    - ``"line_random"``: an independent random sign for every one of the $2N$
      embeddings.
    """
    if n_pairs < 2 or dim < 2:
        raise ValueError(f"need n_pairs >= 2 and dim >= 2, got {n_pairs}, {dim}")
    g = torch.Generator().manual_seed(seed)
    v = F.normalize(torch.randn(dim, generator=g, dtype=dtype), dim=0)

    def sign(n: int) -> torch.Tensor:
        return 1.0 - 2.0 * (torch.rand(n, 1, generator=g) < 0.5).to(dtype)

    if kind == "point":
        s1 = s2 = torch.ones(n_pairs, 1, dtype=dtype)
    elif kind == "line":
        s1 = s2 = sign(n_pairs)
    elif kind == "line_random":
        s1, s2 = sign(n_pairs), sign(n_pairs)
    else:
        raise ValueError(f"kind must be 'point', 'line' or 'line_random', got {kind!r}")
    return s1 * v, s2 * v


def infonce_unnormalised(
    u1: torch.Tensor, u2: torch.Tensor, tau: float = 0.5
) -> torch.Tensor:
    r"""Eq. (1) of Li & Pimentel-Alarcón (2024) in its SimCLR form, on the rows *as
    given* (no normalisation):

    $$\mathcal L = \frac{1}{2N}\sum_{i=1}^{2N} -\log
      \frac{e^{u_i^\top u_{j(i)}/\tau}}{\sum_{a\ne i} e^{u_i^\top u_a/\tau}} .$$

    On unit rows it equals :func:`cl_lib.losses.infonce_loss`; its Euclidean gradient is
    the $\partial\mathcal L/\partial z_i$ of the paper's Appendix A (before the
    normalisation)."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    n = u1.shape[0]
    u = torch.cat([u1, u2])
    logits = (u @ u.T / tau).masked_fill(
        torch.eye(2 * n, dtype=torch.bool), float("-inf")
    )
    pos = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return (torch.logsumexp(logits, dim=1) - logits[torch.arange(2 * n), pos]).mean()


def sphere_gradients(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.5) -> dict:
    r"""Gradients of InfoNCE at unit embeddings, stacked as $(2N, d)$:

    - ``euclidean``: $\partial\mathcal L/\partial z_i$ of :func:`infonce_unnormalised`;
    - ``through_normalisation``: gradient w.r.t. the raw $\tilde z_i$ of
      :func:`cl_lib.losses.infonce_loss` (which normalises), i.e. $\frac{1}{\lVert\tilde
      z_i\rVert}(I - z_i z_i^\top)\,\partial\mathcal L/\partial z_i$;
    - ``radial``: the component of ``euclidean`` along $z_i$, $(z_i^\top g_i)\,z_i$.
    """
    from cl_lib.losses import infonce_loss

    u = torch.cat([z1, z2]).detach().clone().requires_grad_(True)
    n = z1.shape[0]
    (g_euc,) = torch.autograd.grad(infonce_unnormalised(u[:n], u[n:], tau), u)
    u2 = torch.cat([z1, z2]).detach().clone().requires_grad_(True)
    (g_raw,) = torch.autograd.grad(infonce_loss(u2[:n], u2[n:], tau=tau), u2)
    radial = (g_euc * u).sum(1, keepdim=True) * u
    return {
        "euclidean": g_euc,
        "through_normalisation": g_raw,
        "radial": radial.detach(),
    }


def _tangent_basis(u: torch.Tensor) -> torch.Tensor:
    """Block-diagonal $(Md, M(d-1))$ matrix whose columns are orthonormal bases of the
    tangent spaces $\\{\\xi: u_i^\\top\\xi = 0\\}$ of the unit rows $u_i$."""
    _m, d = u.shape
    blocks = []
    for ui in u:
        q, _ = torch.linalg.qr(
            torch.cat([ui[:, None], torch.eye(d, dtype=u.dtype)], dim=1)
        )
        blocks.append(q[:, 1:d])  # first column spans u_i; the rest is its complement
    return torch.block_diag(*blocks)


def riemannian_hessian(f, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Riemannian Hessian of ``f`` on the product of spheres $(S^{d-1})^M$ at unit rows
    ``u`` $(M, d)$, in an orthonormal tangent basis $B$ (Absil, Mahony & Sepulchre 2008,
    eq. 5.21 and its sphere example):

    $$\operatorname{Hess} f(u) = B^\top\Big(\nabla^2 f(u) - \operatorname{diag}_i
      \big(u_i^\top \nabla_i f(u)\big) \otimes I_d\Big) B .$$

    The second term is the curvature (Weingarten) term: a radial gradient, harmless to
    the first-order condition, bends the loss along the sphere. Returns ``(eigenvalues
    ascending,
    matrix)``. Negative eigenvalues: directions along which the loss *decreases* to
    second order."""
    if u.ndim != 2 or not torch.allclose(
        u.norm(dim=1), torch.ones(len(u), dtype=u.dtype), atol=1e-9
    ):
        raise ValueError("u must be a (M, d) tensor of unit rows")
    m, d = u.shape
    flat = u.detach().reshape(-1).clone()
    fun = lambda w: f(w.reshape(m, d))
    grad = torch.autograd.functional.jacobian(fun, flat)
    hess = torch.autograd.functional.hessian(fun, flat)
    radial = (grad.reshape(m, d) * u).sum(1)
    ambient = hess - torch.diag(radial.repeat_interleave(d))
    basis = _tangent_basis(u.detach())
    h = basis.T @ ambient @ basis
    h = (h + h.T) / 2
    return torch.linalg.eigvalsh(h), h


def tangent_probe(
    f, u: torch.Tensor, n_dirs: int = 200, step: float = 1e-2, seed: int = 0
) -> torch.Tensor:
    r"""Change of ``f`` along random unit tangent directions $\xi$ on $(S^{d-1})^M$,
    moving by ``step`` and normalising back onto the spheres: returns the ``n_dirs``
    values $f(\operatorname{normalise}(u + t\xi)) - f(u)$. Negative values: moving off
    the collapsed configuration *lowers* the loss."""
    g = torch.Generator().manual_seed(seed)
    m, d = u.shape
    f0 = f(u)
    out = []
    for _ in range(n_dirs):
        xi = torch.randn(m, d, generator=g, dtype=u.dtype)
        xi = xi - (xi * u).sum(1, keepdim=True) * u
        xi = xi / xi.norm()
        out.append(float(f(F.normalize(u + step * xi, dim=1)) - f0))
    return torch.tensor(out, dtype=torch.float64)


def last_layer_hessian(
    h1: torch.Tensor,
    h2: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    tau: float = 0.5,
) -> dict:
    r"""Gradient and Hessian of InfoNCE with respect to the **parameters** of an
    encoder's last linear layer, $\tilde z = W h + b$, for fixed penultimate features
    ``h1``, ``h2`` $(N, k)$ of the two views, at ``weight`` $(d, k)$ and ``bias``
    $(d,)$.

    Why the last layer suffices for a second-order test: at a collapsed state the
    gradient of the normalising loss with respect to the raw embeddings is exactly zero
    (Theorem 3.1 after the normalisation), so by the chain rule the parameter Hessian is
    $J^\top \nabla^2_{\tilde z} \mathcal L\, J$ with $J = \partial\tilde
    z/\partial\theta$; the last layer's block is a principal sub-matrix of the full
    parameter Hessian, and by eigenvalue interlacing a negative eigenvalue there gives
    one of the full Hessian: the parameters sit at a **saddle**.

    Returns ``dict(grad_max=max |gradient|, eigenvalues=ascending eigenvalues)`` over
    the $d k + d$ parameters."""
    from cl_lib.losses import infonce_loss

    if (
        h1.shape != h2.shape
        or h1.ndim != 2
        or weight.ndim != 2
        or weight.shape[1] != h1.shape[1]
        or bias.shape != (weight.shape[0],)
    ):
        raise ValueError(
            f"need h1, h2 (N, k), weight (d, k), bias (d,); got {tuple(h1.shape)}, "
            f"{tuple(h2.shape)}, {tuple(weight.shape)}, {tuple(bias.shape)}"
        )
    d, k = weight.shape
    n = h1.shape[0]
    h = torch.cat([h1, h2])

    def loss(theta):
        z = h @ theta[: d * k].reshape(d, k).T + theta[d * k :]
        return infonce_loss(z[:n], z[n:], tau=tau)

    theta = torch.cat([weight.reshape(-1), bias]).detach().clone()
    grad = torch.autograd.functional.jacobian(loss, theta)
    hess = torch.autograd.functional.hessian(loss, theta)
    return {
        "grad_max": float(grad.abs().max()),
        "eigenvalues": torch.linalg.eigvalsh((hess + hess.T) / 2),
    }


def loss_slice(f, u: torch.Tensor, tangent_coords: torch.Tensor, ts) -> torch.Tensor:
    r"""The loss along one tangent direction of the product of spheres.

    For each $t$ in ``ts``: $f(\operatorname{normalise}(u + t\,\xi)) - f(u)$, with $\xi
    = B c/\lVert c\rVert$ the unit tangent vector whose coordinates ``tangent_coords``
    $c$ are in the basis $B$ of :func:`riemannian_hessian` (e.g. an eigenvector of its
    matrix). At a critical point the slice is $\tfrac{\lambda}{2}t^2 + O(t^3)$ along an
    eigenvector of eigenvalue $\lambda$: a parabola opening downwards along a negative
    eigenvalue is what a saddle looks like.

    Args:
        f: loss of ``(M, d)`` unit rows.
        u: ``(M, d)`` unit rows (the point).
        tangent_coords: ``(M(d-1),)``.
        ts: 1-D sequence of step sizes.

    Returns:
        float64 tensor of the loss changes, one per ``t``.
    """
    if u.ndim != 2 or tangent_coords.shape != (u.shape[0] * (u.shape[1] - 1),):
        raise ValueError(
            f"need u (M, d) and tangent_coords (M(d-1),), got "
            f"{tuple(u.shape)}, {tuple(tangent_coords.shape)}"
        )
    if float(tangent_coords.norm()) == 0:
        raise ValueError("tangent_coords must not be zero")
    basis = _tangent_basis(u.detach())
    coords = tangent_coords.to(u.dtype) / tangent_coords.norm()
    xi = (basis @ coords).reshape(u.shape)
    with torch.no_grad():
        f0 = f(u)
        vals = [float(f(F.normalize(u + float(t) * xi, dim=1)) - f0) for t in ts]
    return torch.tensor(vals, dtype=torch.float64)


# ------------------------------------------------------------------------- 6. plateaus
def angular_gradient_norm(
    loss_fn, z1: torch.Tensor, z2: torch.Tensor
) -> tuple[float, float]:
    r"""Loss and root-mean-square **angular gradient** of ``loss_fn(z1, z2)`` at raw
    embeddings $\tilde z_1,\dots,\tilde z_{2N}$ (the rows of ``z1`` then ``z2``):

    $$G = \Big(\frac{1}{2N}\sum_{i=1}^{2N}\big\lVert 2N\,\lVert\tilde z_i\rVert\,
      (I - z_i z_i^\top)\,\partial\mathcal L/\partial\tilde z_i\big\rVert^2\Big)^{1/2},
      \qquad z_i = \tilde z_i/\lVert\tilde z_i\rVert .$$

    For a loss that normalises its inputs (InfoNCE, DCL), $\lVert\tilde
    z_i\rVert\,\partial\mathcal L/\partial\tilde z_i$ is the Riemannian gradient on the
    sphere: $G$ does not depend on the raw norms and is exactly 0 at a critical point,
    e.g. every collapsed state of Theorem 3.1 (Li & Pimentel-Alarcón 2024). The factor
    $2N$ undoes the mean over the $2N$ terms of the loss: $G$ is the size of one
    embedding's share of the gradient.

    Args:
        loss_fn: ``loss_fn(z1, z2) -> scalar``.
        z1, z2: ``(N, d)`` raw embeddings of the two views.

    Returns:
        ``(loss, G)`` as floats.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"need z1, z2 of the same (N, d) shape, got "
            f"{tuple(z1.shape)}, {tuple(z2.shape)}"
        )
    z = torch.cat([z1, z2]).detach().clone().requires_grad_(True)
    n = z1.shape[0]
    with torch.enable_grad():
        loss = loss_fn(z[:n], z[n:])
        (grad,) = torch.autograd.grad(loss, z)
    unit = F.normalize(z.detach(), dim=1)
    tangent = grad - (grad * unit).sum(1, keepdim=True) * unit
    share = 2 * n * z.detach().norm(dim=1, keepdim=True) * tangent
    return float(loss.detach()), float(share.pow(2).sum(1).mean().sqrt())


@torch.no_grad()
def rescale_output_layer(
    model: ToyEncoder, x: torch.Tensor, target_norm: float = 1.0
) -> float:
    """Scale the last linear layer so that the mean raw embedding norm on ``x`` (eval
    mode) is ``target_norm``. The normalised embeddings, and so any loss that
    normalises, do not change; the gradient reaching that layer grows by the same factor
    (scale invariance).
    Returns the factor applied."""
    if target_norm <= 0:
        raise ValueError(f"target_norm must be > 0, got {target_norm}")
    mean_norm = float(_embed(model, x).norm(dim=1).mean())
    if not math.isfinite(mean_norm) or mean_norm == 0:
        raise ValueError(f"cannot rescale embeddings of mean norm {mean_norm}")
    factor = target_norm / mean_norm
    last = model.net[-1]
    last.weight.mul_(factor)
    last.bias.mul_(factor)
    return factor


def momentum_reset(intervention):
    """``intervention`` with the SGD momentum of every weight set to zero at the same
    moment (both trainers): a control for an intervention that changes the weights'
    scale, after which the old momentum is a kick of the old size.

    Args:
        intervention: ``intervention(model, x) -> value``.

    Returns:
        The same call, marked ``reset_momentum``.
    """

    def reset(model, x):
        return intervention(model, x)

    reset.reset_momentum = True
    name = getattr(intervention, "__name__", "intervention")
    reset.__name__ = f"{name}+momentum_reset"
    return reset


@torch.no_grad()
def revive_dead_units(model: ToyEncoder, x: torch.Tensor) -> int:
    """Bring back every hidden ReLU unit that is dead on ``x`` (zero output for every
    input, eval mode) *without changing the network's output*: its BatchNorm scale and
    shift go back to their initial values (1 and 0), so it fires again for about half
    the inputs, and its outgoing weights are set to 0, so the embeddings stay exactly as
    they were -- only the gradient can flow through the unit again. Returns the number
    of units revived."""
    was_training = model.training
    model.eval()
    acts = model.hidden_activations(x)
    model.train(was_training)
    layers = list(model.net)
    relus = [i for i, layer in enumerate(layers) if isinstance(layer, nn.ReLU)]
    revived = 0
    for act, i in zip(acts, relus):
        dead = (act <= 0).all(0)
        bn, nxt = layers[i - 1], layers[i + 1]
        bn.weight[dead] = 1.0
        bn.bias[dead] = 0.0
        nxt.weight[:, dead] = 0.0
        revived += int(dead.sum())
    return revived


# --------------------------------------------------------------------------- 7. figures
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _scatter3d(
    points,
    labels,
    name_prefix: str = "class",
    size: int = 3,
    opacity: float = 0.8,
    showlegend: bool = True,
):
    import plotly.graph_objects as go

    points, labels = np.asarray(points), np.asarray(labels)
    return [
        go.Scatter3d(
            x=points[labels == c, 0],
            y=points[labels == c, 1],
            z=points[labels == c, 2],
            mode="markers",
            name=f"{name_prefix} {c}",
            showlegend=showlegend,
            marker={
                "size": size,
                "opacity": opacity,
                "color": _COLOURS[c % len(_COLOURS)],
            },
        )
        for c in np.unique(labels)
    ]


def plot_toy_data(
    x: torch.Tensor,
    y: torch.Tensor,
    n_pairs: int = 8,
    aug_noise: float = 0.05,
    seed: int = 0,
    title: str = "Three rank-1 subspaces in R^3 and augmented pairs",
):
    """Plotly 3-D scatter of the toy points, plus ``n_pairs`` augmented positive pairs
    drawn as black segments (one view may be the negation of the other: the segment then
    crosses 0)."""
    import plotly.graph_objects as go

    if x.shape[1] != 3:
        raise ValueError(f"plot_toy_data needs 3-D points, got dimension {x.shape[1]}")
    fig = go.Figure(_scatter3d(x, y))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:n_pairs]
    v1, v2 = (
        augment(x[idx], aug_noise, generator=g),
        augment(x[idx], aug_noise, generator=g),
    )
    xs, ys, zs = [], [], []
    for a, b in zip(v1.numpy(), v2.numpy()):
        xs += [a[0], b[0], None]
        ys += [a[1], b[1], None]
        zs += [a[2], b[2], None]
    fig.add_trace(
        go.Scatter3d(
            x=xs,
            y=ys,
            z=zs,
            mode="lines+markers",
            name="augmented pairs",
            line={"color": "black", "width": 3},
            marker={"size": 4, "color": "black"},
        )
    )
    fig.update_layout(
        title=title,
        height=500,
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        scene={"aspectmode": "cube"},
    )
    return fig


def plot_embedding_trajectory(run: ToyRun, title: str | None = None):
    """Plotly 3-D view of the normalised embeddings through training, one frame per
    snapshot, with a slider (frames + slider steps: works in the static HTML, no kernel
    needed)."""
    import plotly.graph_objects as go

    if not run.snapshots:
        raise ValueError("the run has no snapshots: train with snapshot_every > 0")
    labels = run.snapshot_labels.numpy()
    frames = [
        go.Frame(data=_scatter3d(p, labels), name=str(epoch))
        for epoch, p in run.snapshots
    ]
    fig = go.Figure(data=frames[0].data, frames=frames)
    steps = [
        {
            "method": "animate",
            "label": str(epoch),
            "args": [
                [str(epoch)],
                {
                    "mode": "immediate",
                    "frame": {"duration": 0, "redraw": True},
                    "transition": {"duration": 0},
                },
            ],
        }
        for epoch, _ in run.snapshots
    ]
    c = run.config
    fig.update_layout(
        title=title
        or f"{c['loss_name']}, lr={c['lr']:g}, labels={c['label_fraction']:.0%}: "
        "normalised embeddings",
        height=520,
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        scene={
            "aspectmode": "cube",
            "xaxis": {"range": [-1.05, 1.05]},
            "yaxis": {"range": [-1.05, 1.05]},
            "zaxis": {"range": [-1.05, 1.05]},
        },
        sliders=[
            {
                "active": 0,
                "currentvalue": {"prefix": "epoch "},
                "steps": steps,
                "pad": {"t": 10},
            }
        ],
    )
    return fig
