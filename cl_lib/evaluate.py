r"""How good is a representation? kNN, linear probe and geometry metrics on frozen features.

The protocol of the contrastive-learning literature (and of the DHEL/KCL paper, seed 000):
freeze the trained backbone $f$, embed the training and test images once *without augmentation*,
then

- **kNN** (:func:`knn_predict`): the weighted k-nearest-neighbour classifier of InstDisc
  (Wu et al., 2018, Sec. 3.4 "weighted kNN"): with cosine similarities $s_i = \hat h^\top \hat h_i$
  to the $k=200$ most similar training features, class $c$ gets the vote
  $$w_c = \sum_{i \in \mathcal{N}_k} e^{s_i / t} \, \mathbb{1}[y_i = c], \qquad t = 0.1,$$
  and the prediction is $\arg\max_c w_c$.
- **linear probe** (:func:`linear_probe`): multinomial logistic regression on standardised
  features, trained on the device (full-batch L-BFGS, or mini-batch Adam), with an L2 penalty.
- **metrics** (:func:`embedding_metrics`): alignment/uniformity (Wang & Isola, 2020),
  effective rank (RankMe), Wasserstein uniformity (seed 000) from ``cl_lib.metrics``, measured
  on held-out images.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from cl_lib import metrics

__all__ = ["default_preprocess", "extract_features", "knn_predict", "knn_accuracy",
           "linear_probe", "embedding_metrics"]


def default_preprocess(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float in [-1, 1] (floats are passed through unchanged)."""
    if x.dtype == torch.uint8:
        return x.float().div_(127.5).sub_(1.0)
    return x.float()


def _check_features(feats: torch.Tensor, labels: torch.Tensor | None, name: str) -> None:
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2:
        raise ValueError(f"{name} features must be a 2-D (N, F) tensor, got "
                         f"{tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__}")
    if feats.shape[0] == 0:
        raise ValueError(f"{name} features are empty")
    if labels is not None and (labels.ndim != 1 or labels.shape[0] != feats.shape[0]):
        raise ValueError(f"{name} labels must have shape ({feats.shape[0]},), got {tuple(labels.shape)}")


@torch.no_grad()
def extract_features(encoder: nn.Module | Callable, images: torch.Tensor, batch_size: int = 512,
                     device: torch.device | str | None = None,
                     preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     channels_last: bool = False) -> torch.Tensor:
    """Embed ``images`` (N, C, H, W; uint8 or float, any device) with ``encoder`` in eval mode,
    batch by batch, without gradients. Returns float32 features (N, F) on ``device``.

    Pass a :class:`~cl_lib.models.ContrastiveModel`'s ``.backbone`` (or ``.features``) for the
    backbone features $h$, or the model itself for the projections $z$. The encoder's train/eval
    mode is restored afterwards.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a 4-D (N, C, H, W) tensor, got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    preprocess = preprocess or default_preprocess
    module = encoder if isinstance(encoder, nn.Module) else getattr(encoder, "__self__", None)  # bound method
    if device is None:
        params = list(module.parameters()) if isinstance(module, nn.Module) else []
        device = params[0].device if params else images.device
    was_training = module.training if isinstance(module, nn.Module) else None
    if isinstance(module, nn.Module):
        module.eval()
    out = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = preprocess(images[start:start + batch_size].to(device, non_blocking=True))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(encoder(x).float())
    finally:
        if was_training is not None:
            module.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                k: int = 200, t: float = 0.1, num_classes: int | None = None,
                batch_size: int = 1024) -> torch.Tensor:
    r"""Temperature-weighted cosine kNN (InstDisc, Wu et al. 2018): each of the $k$ most similar
    training points votes for its label with weight $\exp(s_i/t)$. Returns predicted labels (M,).

    ``k`` is clipped to the number of training points. Training labels must be $\ge 0$.
    """
    _check_features(train_feats, train_labels, "train")
    _check_features(test_feats, None, "test")
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"train and test features differ in width: {train_feats.shape[1]} vs {test_feats.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    if (train_labels < 0).any():
        raise ValueError("train_labels must be >= 0 (kNN needs every bank point labelled)")
    device = train_feats.device
    train_labels = train_labels.to(device).long()
    num_classes = num_classes or int(train_labels.max()) + 1
    k = min(k, train_feats.shape[0])
    bank = F.normalize(train_feats.float(), dim=1)
    preds = []
    for start in range(0, test_feats.shape[0], batch_size):
        q = F.normalize(test_feats[start:start + batch_size].to(device).float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)                       # (b, k) cosine similarities
        votes = torch.zeros(q.shape[0], num_classes, device=device)
        votes.scatter_add_(1, train_labels[idx], (sim / t).exp())   # sum of exp(s/t) per class
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 200, t: float = 0.1,
                 num_classes: int | None = None) -> float:
    """Top-1 accuracy (in [0, 1]) of :func:`knn_predict` on ``test_labels``."""
    _check_features(test_feats, test_labels, "test")
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    pred = knn_predict(train_feats, train_labels, test_feats, k=k, t=t, num_classes=num_classes)
    return float((pred.cpu() == test_labels.cpu()).float().mean())


def linear_probe(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, num_classes: int | None = None, method: str = "lbfgs",
                 weight_decay: float = 1e-4, steps: int = 200, lr: float | None = None,
                 batch_size: int = 4096, standardize: bool = True, seed: int = 0) -> dict:
    r"""Multinomial logistic regression on frozen features, trained on their device:

    $$\min_{W, b} \; \frac1N \sum_i -\log \operatorname{softmax}(W x_i + b)_{y_i}
      + \frac{\lambda}{2} \lVert W \rVert_F^2, \qquad
      x_i = \frac{h_i - \mu}{\sigma} \text{ (train-set mean and std)}.$$

    ``method="lbfgs"``: full batch, ``steps`` L-BFGS iterations (strong-Wolfe line search) --
    the convex problem is solved to near-optimum, so the result does not depend on a learning
    rate. ``method="adam"``: ``steps`` epochs of mini-batch Adam (``lr`` default 1e-3), for
    feature sets too large for one batch. Returns ``{"acc", "train_acc"}`` in [0, 1].
    """
    _check_features(train_feats, train_labels, "train")
    _check_features(test_feats, test_labels, "test")
    if method not in ("lbfgs", "adam"):
        raise ValueError(f"method must be 'lbfgs' or 'adam', got {method!r}")
    if steps < 1 or weight_decay < 0:
        raise ValueError(f"need steps >= 1 and weight_decay >= 0, got steps={steps}, weight_decay={weight_decay}")
    if (train_labels < 0).any():
        raise ValueError("train_labels must be >= 0")
    device = train_feats.device
    x_tr, x_te = train_feats.float(), test_feats.to(device).float()
    y_tr, y_te = train_labels.to(device).long(), test_labels.to(device).long()
    if standardize:
        mu, sd = x_tr.mean(0), x_tr.std(0).clamp_min(1e-6)
        x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
    num_classes = num_classes or int(max(y_tr.max(), y_te.max())) + 1
    g = torch.Generator(device="cpu").manual_seed(seed)
    clf = nn.Linear(x_tr.shape[1], num_classes).to(device)
    with torch.no_grad():  # seeded init, independent of the global RNG
        bound = 1 / math.sqrt(x_tr.shape[1])
        clf.weight.copy_(torch.rand(clf.weight.shape, generator=g).mul_(2 * bound).sub_(bound))
        clf.bias.zero_()

    def objective(x, y):
        return F.cross_entropy(clf(x), y) + 0.5 * weight_decay * clf.weight.pow(2).sum()

    with torch.enable_grad():
        if method == "lbfgs":
            opt = torch.optim.LBFGS(clf.parameters(), lr=lr or 1.0, max_iter=steps,
                                    history_size=20, line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-7, tolerance_change=1e-10)

            def closure():
                opt.zero_grad()
                loss = objective(x_tr, y_tr)
                loss.backward()
                return loss

            opt.step(closure)
        else:
            opt = torch.optim.Adam(clf.parameters(), lr=lr or 1e-3)
            n = x_tr.shape[0]
            for _ in range(steps):
                perm = torch.randperm(n, generator=g).to(device)
                for start in range(0, n, batch_size):
                    idx = perm[start:start + batch_size]
                    opt.zero_grad()
                    objective(x_tr[idx], y_tr[idx]).backward()
                    opt.step()
    with torch.no_grad():
        train_acc = float((clf(x_tr).argmax(1) == y_tr).float().mean())
        acc = float((clf(x_te).argmax(1) == y_te).float().mean())
    return {"acc": acc, "train_acc": train_acc}


@torch.no_grad()
def embedding_metrics(z1: torch.Tensor, z2: torch.Tensor | None = None,
                      features: torch.Tensor | None = None, max_points: int = 2048) -> dict:
    r"""Geometry of held-out embeddings, via ``cl_lib.metrics`` (first ``max_points`` rows):

    - ``uniformity``, ``wasserstein_uniformity``, ``effective_rank``: of the projections ``z1``;
    - ``embedding_variance``: $\sum_k \operatorname{Var}(z_k)$ of the raw ``z1``, the collapse
      measure of Li & Pimentel-Alarcon (2024, seed 001, Fig. 2), and
      ``embedding_variance_sphere``: the same of $z / \lVert z \rVert$, which equals
      $1 - \lVert \bar u \rVert^2 \in [0, 1]$ and does not depend on the scale of $z$;
    - ``alignment``: between ``z1`` and ``z2`` (two augmented views of the same images), if given;
    - ``effective_rank_features``, ``embedding_variance_features``: of the backbone
      ``features``, if given.
    """
    _check_features(z1, None, "z1")
    z1 = z1[:max_points].float().cpu()
    out = {"uniformity": metrics.uniformity(z1),
           "wasserstein_uniformity": metrics.wasserstein_uniformity(z1),
           "effective_rank": metrics.effective_rank(z1),
           "embedding_variance": metrics.embedding_variance(z1),
           "embedding_variance_sphere": metrics.embedding_variance(F.normalize(z1, dim=1))}
    if z2 is not None:
        out["alignment"] = metrics.alignment(z1, z2[:max_points].float().cpu())
    if features is not None:
        h = features[:max_points].float().cpu()
        out["effective_rank_features"] = metrics.effective_rank(h)
        out["embedding_variance_features"] = metrics.embedding_variance(h)
    return out
