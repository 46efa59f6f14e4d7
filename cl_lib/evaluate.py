r"""How good is a representation? kNN, linear probe and geometry metrics on frozen
features.

The protocol of the contrastive-learning literature (and of Koromilas et al. 2024,
DHEL/KCL): freeze the trained backbone $f$, embed the training and test images once
*without augmentation*, then

- **kNN** (:func:`knn_predict`): the weighted k-nearest-neighbour classifier of InstDisc
  (Wu et al., 2018, Sec. 3.4 "weighted kNN"): with cosine similarities $s_i = \hat
  h^\top \hat h_i$ to the $k=200$ most similar training features, class $c$ gets the
  vote $$w_c = \sum_{i \in \mathcal{N}_k} e^{s_i / t} \, \mathbb{1}[y_i = c], \qquad t =
  0.1,$$ and the prediction is $\arg\max_c w_c$.
- **linear probe** (:func:`linear_probe`): multinomial logistic regression on
  standardised features, trained on the device (full-batch L-BFGS, or mini-batch Adam),
  with an L2 penalty.
- **per-image correctness** of both (``knn_correct``, ``linear_probe_correct`` of
  :func:`heldout_metrics`), stored in results files as short strings
  (:func:`cl_lib.stats.encode_correct`) so that two runs scored on the same test images
  can be compared image by image (:func:`cl_lib.stats.paired_proportions`).
- **metrics** (:func:`heldout_metrics`, the one held-out evaluation of the library):
  alignment/uniformity (Wang & Isola, 2020), effective rank (RankMe), embedding
  variance, Wasserstein uniformity (Koromilas et al. 2024) from ``cl_lib.metrics``,
  measured on held-out images, together with the kNN accuracy and the linear probe.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from cl_lib import checks, metrics
from cl_lib.augment import DATASET_STATS, normalize, to_float
from cl_lib.profile import mix_seed
from cl_lib.stats import encode_correct

PROBE_METHODS = ("lbfgs", "adam")  # linear_probe's methods


def check_knn(k: int, t: float) -> None:
    """Check the kNN classifier's settings (:func:`cl_lib.evaluate.knn_predict`).

    Args:
        k: neighbours, an integer >= 1.
        t: temperature, a finite number > 0.

    Returns:
        None.

    Raises:
        ValueError: one line naming the setting.
    """
    checks.integer(k, "knn_k", minimum=1)
    checks.positive(t, "knn_t")


def check_probe(method: str, steps: int) -> None:
    """Check the linear probe's settings (:func:`cl_lib.evaluate.linear_probe`).

    Args:
        method: one of :data:`PROBE_METHODS`.
        steps: L-BFGS iterations or Adam epochs, an integer >= 1.

    Returns:
        None.

    Raises:
        ValueError: one line naming the setting.
    """
    checks.one_of(method, PROBE_METHODS, "probe_method")
    checks.integer(steps, "probe_steps", minimum=1)


__all__ = [
    "default_preprocess",
    "extract_features",
    "knn_predict",
    "knn_accuracy",
    "knn_correct",
    "linear_probe",
    "heldout_metrics",
]


def default_preprocess(x: torch.Tensor, dataset: str = "cifar10") -> torch.Tensor:
    """The trainer's test-time normalisation: pixels to [0, 1], then the data set's
    per-channel mean/std (:data:`cl_lib.augment.DATASET_STATS`), exactly as the training
    views are normalised by :class:`~cl_lib.augment.SimCLRAugment`.

    Args:
        x: (N, C, H, W) uint8 images in [0, 255], or floats already in [0, 1].
        dataset: whose statistics to use; ``"imagefolder:..."`` gets ImageNet's.

    Returns:
        (N, C, H, W) float32 tensor.
    """
    name = dataset.lower()
    stats = DATASET_STATS["imagenet" if name.startswith("imagefolder:") else name]
    return normalize(to_float(x), *stats)


def _shape_or_type(x) -> str:
    """``x``'s shape if it is a tensor, else its type name (for error messages)."""
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _check_features(
    feats: torch.Tensor, labels: torch.Tensor | None, name: str
) -> None:
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2:
        raise ValueError(
            f"{name} features must be a 2-D (N, F) tensor, got {_shape_or_type(feats)}"
        )
    if feats.shape[0] == 0:
        raise ValueError(f"{name} features are empty")
    if labels is not None and (labels.ndim != 1 or labels.shape[0] != feats.shape[0]):
        raise ValueError(
            f"{name} labels must have shape ({feats.shape[0]},), "
            f"got {tuple(labels.shape)}"
        )


@torch.no_grad()
def extract_features(
    encoder: nn.Module | Callable,
    images: torch.Tensor,
    batch_size: int = 512,
    device: torch.device | str | None = None,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Embed ``images`` (N, C, H, W; uint8 or float, any device) with ``encoder`` in
    eval mode, batch by batch, without gradients. Returns float32 features (N, F) on
    ``device``.

    Pass a :class:`~cl_lib.models.ContrastiveModel`'s ``.backbone`` (or ``.features``)
    for the backbone features $h$, or the model itself for the projections $z$. The
    encoder's train/eval mode is restored afterwards.

    Args:
        encoder: a module or a bound method, (b, C, H, W) -> (b, F).
        images: (N, C, H, W) uint8 or float images.
        batch_size: images per forward pass.
        device: where to compute (default: the encoder's).
        preprocess: applied to each batch (default :func:`default_preprocess`, the
            CIFAR-10 normalisation; pass the run's ``augment.eval_transform`` for other
            data sets).
        channels_last: memory format of the batches.

    Returns:
        (N, F) float32 features on ``device``.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(
            f"images must be a 4-D (N, C, H, W) tensor, got {_shape_or_type(images)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    preprocess = preprocess or default_preprocess
    # bound method
    module = (
        encoder
        if isinstance(encoder, nn.Module)
        else getattr(encoder, "__self__", None)
    )
    if device is None:
        params = list(module.parameters()) if isinstance(module, nn.Module) else []
        device = params[0].device if params else images.device
    was_training = module.training if isinstance(module, nn.Module) else None
    if isinstance(module, nn.Module):
        module.eval()
    out = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = preprocess(
                images[start : start + batch_size].to(device, non_blocking=True)
            )
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(encoder(x).float())
    finally:
        if was_training is not None:
            module.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def embed_heldout(
    model: nn.Module,
    images: torch.Tensor,
    augment,
    seed: int,
    *,
    features: torch.Tensor | None = None,
    views: bool = True,
    device: torch.device | str | None = None,
    batch_size: int = 512,
    channels_last: bool = False,
):
    r"""Held-out embeddings of a contrastive model, as its metrics read them.

    The backbone features $h = f(x)$ of the clean images, their projections
    $z = g(h)$ and, with ``views``, the projections of two augmented views of the
    same images, drawn from a generator seeded with ``mix_seed(seed, 1)``: the same
    views at every call, so that alignment along training compares like with like.

    Args:
        model: a :class:`~cl_lib.models.ContrastiveModel` (``backbone``, ``projector``).
        images: (N, C, H, W) uint8 held-out images.
        augment: the run's augmentation: ``augment(x, generator)`` draws a view and
            ``augment.eval_transform`` preprocesses a clean image.
        seed: the run's seed.
        features: $h$ of ``images`` if already computed (N, F); computed otherwise.
        views: whether to embed two augmented views.
        device: where to compute (default: the model's).
        batch_size: images per forward pass.
        channels_last: memory format of the batches.

    Returns:
        ``(h, z, pair)``: (N, F) features, (N, D) projections and a pair of (N, D)
        projections of the two views, or None without ``views``.
    """
    kw = dict(device=device, batch_size=batch_size, channels_last=channels_last)
    if features is None:
        features = extract_features(
            model.backbone, images, preprocess=augment.eval_transform, **kw
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            z = model.projector(features)
        pair = None
        if views:
            gen = torch.Generator().manual_seed(mix_seed(seed, 1))
            target = device or next(model.parameters()).device
            x = images.to(target)
            pair = tuple(
                extract_features(model, augment(x, gen), preprocess=lambda v: v, **kw)
                for _ in range(2)
            )
    finally:
        model.train(was_training)
    return features, z, pair


def knn_predict(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    k: int = 200,
    t: float = 0.1,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> torch.Tensor:
    r"""Temperature-weighted cosine kNN (InstDisc, Wu et al. 2018): each of the $k$ most
    similar training points votes for its label with weight $\exp(s_i/t)$. Returns
    predicted labels (M,).

    ``k`` is clipped to the number of training points. Training labels must be $\ge 0$.

    Args:
        train_feats: (N, F) bank; train_labels: (N,) labels >= 0; test_feats: (M, F).
        k, t: neighbours and temperature; num_classes: C (default: from the labels);
        batch_size: queries per block.

    Returns:
        (M,) int64 predicted labels.
    """
    _check_features(train_feats, train_labels, "train")
    _check_features(test_feats, None, "test")
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(
            "train and test features differ in width: "
            f"{train_feats.shape[1]} vs {test_feats.shape[1]}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    if (train_labels < 0).any():
        raise ValueError(
            "train_labels must be >= 0 (kNN needs every bank point labelled)"
        )
    device = train_feats.device
    train_labels = train_labels.to(device).long()
    num_classes = num_classes or int(train_labels.max()) + 1
    k = min(k, train_feats.shape[0])
    bank = F.normalize(train_feats.float(), dim=1)
    preds = []
    for start in range(0, test_feats.shape[0], batch_size):
        q = F.normalize(
            test_feats[start : start + batch_size].to(device).float(), dim=1
        )
        sim, idx = (q @ bank.T).topk(k, dim=1)  # (b, k) cosine similarities
        votes = torch.zeros(q.shape[0], num_classes, device=device)
        # sum of exp(s/t) per class
        votes.scatter_add_(1, train_labels[idx], (sim / t).exp())
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_accuracy(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 200,
    t: float = 0.1,
    num_classes: int | None = None,
) -> float:
    """Top-1 accuracy (in [0, 1]) of :func:`knn_predict` on ``test_labels``.

    Args:
        train_feats: (N, F); train_labels: (N,); test_feats: (M, F); test_labels: (M,);
        k, t, num_classes: as :func:`knn_predict`.

    Returns:
        The accuracy in [0, 1].
    """
    correct = knn_correct(
        train_feats, train_labels, test_feats, test_labels, k, t, num_classes
    )
    return float(correct.float().mean())


def knn_correct(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 200,
    t: float = 0.1,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Per-image correctness of :func:`knn_predict`: whether each test image gets
    its label (the mean is :func:`knn_accuracy`).

    Args:
        train_feats: (N, F); train_labels: (N,); test_feats: (M, F); test_labels: (M,);
        k, t, num_classes: as :func:`knn_predict`.

    Returns:
        (M,) bool tensor on the CPU, in the order of ``test_feats``.
    """
    _check_features(test_feats, test_labels, "test")
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    pred = knn_predict(
        train_feats, train_labels, test_feats, k=k, t=t, num_classes=num_classes
    )
    return pred.cpu() == test_labels.cpu()


def _fit_linear(clf, x_tr, y_tr, method, weight_decay, steps, lr, batch_size, g):
    """Fit :func:`linear_probe`'s classifier ``clf`` in place: full-batch L-BFGS or
    mini-batch Adam (batches drawn from the generator ``g``)."""

    def objective(x, y):
        return F.cross_entropy(clf(x), y) + 0.5 * weight_decay * clf.weight.pow(2).sum()

    with torch.enable_grad():
        if method == "lbfgs":
            opt = torch.optim.LBFGS(
                clf.parameters(),
                lr=lr or 1.0,
                max_iter=steps,
                history_size=20,
                line_search_fn="strong_wolfe",
                tolerance_grad=1e-7,
                tolerance_change=1e-10,
            )

            def closure():
                opt.zero_grad()
                loss = objective(x_tr, y_tr)
                loss.backward()
                return loss

            opt.step(closure)
            return
        opt = torch.optim.Adam(clf.parameters(), lr=lr or 1e-3)
        n, device = x_tr.shape[0], x_tr.device
        for _ in range(steps):
            perm = torch.randperm(n, generator=g).to(device)
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                opt.zero_grad()
                objective(x_tr[idx], y_tr[idx]).backward()
                opt.step()


def linear_probe(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int | None = None,
    method: str = "lbfgs",
    weight_decay: float = 1e-4,
    steps: int = 200,
    lr: float | None = None,
    batch_size: int = 4096,
    standardize: bool = True,
    seed: int = 0,
) -> dict:
    r"""Multinomial logistic regression on frozen features, trained on their device:

    $$\min_{W, b} \; \frac1N \sum_i -\log \operatorname{softmax}(W x_i + b)_{y_i}
      + \frac{\lambda}{2} \lVert W \rVert_F^2, \qquad
      x_i = \frac{h_i - \mu}{\sigma} \text{ (train-set mean and std)}.$$

    ``method="lbfgs"``: full batch, ``steps`` L-BFGS iterations (strong-Wolfe line
    search) -- the convex problem is solved to near-optimum, so the result does not
    depend on a learning rate. ``method="adam"``: ``steps`` epochs of mini-batch Adam
    (``lr`` default 1e-3), for feature sets too large for one batch. Returns ``{"acc",
    "train_acc"}`` in [0, 1] and ``"correct"``, the per-image correctness on the test
    features.

    Args:
        train_feats: (N, F); train_labels: (N,); test_feats: (M, F); test_labels: (M,).
        num_classes: C; method: ``"lbfgs"`` or ``"adam"``; weight_decay: $\lambda$;
        steps: iterations (L-BFGS) or epochs (Adam); lr: Adam's step size;
        batch_size: Adam's batch; standardize: standardise with train statistics; seed:
            init.

    Returns:
        ``{"acc": test accuracy, "train_acc": training accuracy}``, both in [0, 1],
        and ``"correct"``: (M,) bool tensor on the CPU, whether each test image is
        classified right.
    """
    _check_features(train_feats, train_labels, "train")
    _check_features(test_feats, test_labels, "test")
    if method not in ("lbfgs", "adam"):
        raise ValueError(f"method must be 'lbfgs' or 'adam', got {method!r}")
    if steps < 1 or weight_decay < 0:
        raise ValueError(
            "need steps >= 1 and weight_decay >= 0, "
            f"got steps={steps}, weight_decay={weight_decay}"
        )
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
        clf.weight.copy_(
            torch.rand(clf.weight.shape, generator=g).mul_(2 * bound).sub_(bound)
        )
        clf.bias.zero_()

    _fit_linear(clf, x_tr, y_tr, method, weight_decay, steps, lr, batch_size, g)
    with torch.no_grad():
        train_acc = float((clf(x_tr).argmax(1) == y_tr).float().mean())
        correct = (clf(x_te).argmax(1) == y_te).cpu()
    return {
        "acc": float(correct.float().mean()),
        "train_acc": train_acc,
        "correct": correct,
    }


def _effective_rank(m: torch.Tensor) -> float:
    """RankMe, with the one guard of the library: an all-zero matrix has rank 0 (RankMe
    itself is undefined there), a non-finite one gives NaN."""
    if not bool(torch.isfinite(m).all()):
        return float("nan")
    return metrics.effective_rank(m) if bool(m.abs().sum() > 0) else 0.0


def _sphere(m: torch.Tensor) -> torch.Tensor | None:
    """Rows scaled to unit norm, or None when a row is zero or not finite."""
    norms = m.norm(dim=1)
    if not bool(torch.isfinite(norms).all() and (norms > 0).all()):
        return None
    return F.normalize(m, dim=1)


def _geometry(m: torch.Tensor, suffix: str, wasserstein: bool) -> dict:
    nan = float("nan")
    finite = bool(torch.isfinite(m).all())
    unit = _sphere(m) if finite else None
    out = {
        "effective_rank" + suffix: _effective_rank(m),
        "embedding_variance" + suffix: metrics.embedding_variance(m) if finite else nan,
        "embedding_variance_sphere" + suffix: metrics.embedding_variance(unit)
        if unit is not None
        else nan,
        "effective_rank_sphere" + suffix: _effective_rank(unit)
        if unit is not None
        else nan,
    }
    if suffix == "":  # the sphere metrics of the projections
        out["uniformity"] = metrics.uniformity(m) if unit is not None else nan
        if wasserstein:
            out["wasserstein_uniformity"] = (
                metrics.wasserstein_uniformity(m)
                if unit is not None and m.shape[0] > 1
                else nan
            )
    return out


def _spectra(**matrices) -> dict:
    """``singular_values_<name>``: the singular values of each centred matrix given,
    largest first."""
    return {
        f"singular_values_{name}": torch.linalg.svdvals(m - m.mean(0)).tolist()
        for name, m in matrices.items()
        if m is not None
    }


@torch.no_grad()
def heldout_metrics(
    z: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    views: tuple[torch.Tensor, torch.Tensor] | None = None,
    features: torch.Tensor | None = None,
    bank: torch.Tensor | None = None,
    bank_labels: torch.Tensor | None = None,
    query: torch.Tensor | None = None,
    knn_k: int = 200,
    knn_t: float = 0.1,
    probe: dict | None = None,
    num_classes: int | None = None,
    spectra: bool = False,
    wasserstein: bool = True,
    per_image: bool = True,
) -> dict:
    r"""Every held-out number of the library, in one place: the trainer's final and
    along-training evaluation, the results tracker (:mod:`cl_lib.experiments.results`)
    and the toy of chapter 1 all call this function.

    Geometry of the projections ``z`` of held-out images (``cl_lib.metrics``):
    ``uniformity`` (Wang & Isola 2020), ``wasserstein_uniformity`` (Koromilas et al.
    2024), ``effective_rank`` (RankMe, Garrido et al. 2023; 0 for an all-zero matrix),
    ``embedding_variance`` $\sum_k \operatorname{Var}(z_k)$ (Li & Pimentel-Alarcón
    2024,
    Fig. 2), and the same two of $z / \lVert z \rVert$ (``embedding_variance_sphere`` $=
    1 - \lVert \bar u \rVert^2$, ``effective_rank_sphere``; NaN when a row is zero). The
    backbone ``features`` get the same keys with the suffix ``_features`` (no
    uniformity). ``views``: ``alignment`` between two augmented views of the same
    images. ``bank``: kNN accuracy (:func:`knn_accuracy`) of ``query`` against a
    labelled bank, and with ``probe`` the linear probe (:func:`linear_probe`); with
    ``per_image`` also which query images each gets right, as
    :func:`cl_lib.stats.encode_correct` strings under ``knn_correct`` and
    ``linear_probe_correct`` (in the order of ``query``; decode with
    :func:`cl_lib.stats.decode_correct`).

    Args:
        z: (N, D) projections of N held-out (un-augmented) images, or None.
        labels: (Q,) labels of ``query`` (needed with ``bank``).
        views: two (M, D) tensors, projections of two augmented views of the same M
            images.
        features: (N, F) backbone features of the images of ``z``.
        bank: (B, F') labelled training features for kNN / probe; ``bank_labels``: (B,).
        query: (Q, F') test features scored against ``bank``.
        knn_k, knn_t: kNN neighbours and temperature.
        probe: keyword arguments of :func:`linear_probe` (e.g. ``{"steps": 100}``), or
            None for no probe.
        num_classes: classes of the kNN / probe (default: from the labels).
        spectra: add ``singular_values_z`` / ``singular_values_features``, the singular
            values of the centred matrices, largest first (dimensional collapse, Jing et
            al. 2022).
        wasserstein: compute ``wasserstein_uniformity`` (O(N^2) pairs).
        per_image: add ``knn_correct`` (and with ``probe`` ``linear_probe_correct``).

    Returns:
        A dict of floats (lists for the spectra, strings for the per-image
        correctness); keys only for the inputs given.
    """
    out: dict = {}
    mats = {"z": z, "features": features}
    for name, m in mats.items():
        if m is not None:
            _check_features(m, None, name)
            mats[name] = m.cpu()
            suffix = "" if name == "z" else "_features"
            out.update(_geometry(mats[name], suffix, wasserstein))
    if views is not None:
        z1, z2 = (v.cpu() for v in views)
        # NaN, like the sphere metrics, where a view cannot be put on the sphere
        # (a non-finite value, or an all-zero row: a network with no projector and
        # a ReLU before its output can map an image to 0)
        ok = _sphere(z1) is not None and _sphere(z2) is not None
        out["alignment"] = metrics.alignment(z1, z2) if ok else float("nan")
    if spectra:
        out.update(_spectra(**mats))
    if bank is not None:
        if query is None or labels is None or bank_labels is None:
            raise ValueError("kNN needs bank, bank_labels, query and labels together")
        reads = (knn_k, knn_t, probe, num_classes, per_image)
        out.update(_read_outs(bank, bank_labels, query, labels, *reads))
    return out


def _read_outs(
    bank, bank_labels, query, labels, knn_k, knn_t, probe, num_classes, per_image
):
    """kNN and (with ``probe``) linear-probe accuracy of ``query`` against ``bank``,
    with ``per_image`` the per-image correctness of each (see
    :func:`heldout_metrics`)."""
    correct = knn_correct(
        bank, bank_labels, query, labels, k=knn_k, t=knn_t, num_classes=num_classes
    )
    out = {"knn_acc": float(correct.float().mean())}
    if per_image:
        out["knn_correct"] = encode_correct(correct.numpy())
    if probe is not None:
        fit = linear_probe(
            bank, bank_labels, query, labels, num_classes=num_classes, **probe
        )
        out["linear_probe_acc"] = fit["acc"]
        out["linear_probe_train_acc"] = fit["train_acc"]
        if per_image:
            out["linear_probe_correct"] = encode_correct(fit["correct"].numpy())
    return out
