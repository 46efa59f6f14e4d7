"""Batched image augmentations as tensor ops (airbench style: everything stays on the
device).

Every transform here takes a whole batch ``x`` of shape ``(B, C, H, W)`` and draws its
random parameters *per sample* from a ``torch.Generator`` that the caller passes in, so
a seed fixes the augmentation of a whole epoch and resuming at batch ``k`` is exact. The
random numbers are drawn on the generator's device (a CPU generator gives the same crops
on CPU and GPU) and moved to the batch's device; the pixel work never leaves the batch's
device.

The transforms reproduce ``torchvision.transforms.v2`` (what a per-sample pipeline
does):

- :func:`sample_crop_params` draws ``RandomResizedCrop`` boxes exactly like
  ``RandomResizedCrop.make_params`` (10 tries, then a central fallback crop),
- :func:`resized_crop` is ``F.resized_crop(..., BILINEAR, antialias=False)`` as two
  batched two-tap gathers (rows, then columns) with per-sample taps,
- :func:`color_jitter` is ``RandomApply([ColorJitter(b, c, s, h)], p)`` with the four
  operations in a random order per sample, as ``ColorJitter`` does,
- :func:`random_grayscale`, :func:`random_hflip`, :func:`gaussian_blur` (``RandomApply([
  GaussianBlur(k, sigma)], p)``) and :func:`normalize`.

:class:`SimCLRAugment` chains them into the SimCLR recipe (Chen et al. 2020, appendix
A): crop, flip, colour distortion, grayscale, (blur), normalisation;
:func:`simclr_preset` picks the settings by data set name."""

from __future__ import annotations

import math
from typing import Sequence

import torch

# Per-channel mean/std of the training splits (RGB, pixel values in [0, 1]).
# CIFAR-10/100 values are the usual published ones (the JPEG copy of CIFAR-10's train
# split gives mean (0.4913, 0.4821, 0.4465), std (0.2452, 0.2428, 0.2606)); ImageNet's
# are torchvision's.
DATASET_STATS: dict[
    str, tuple[tuple[float, float, float], tuple[float, float, float]]
] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
# data sets of ImageNet photos (and STL-10, which is ImageNet-like) use ImageNet's
# statistics
for _name in ("stl10", "tiny-imagenet-32", "imagenette-96", "imagenet100"):
    DATASET_STATS[_name] = DATASET_STATS["imagenet"]

# Grayscale weights of ITU-R 601-2 luma, the ones torchvision (and PIL) use.
_LUMA = (0.2989, 0.587, 0.114)


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------
def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(
            f"expected an image batch of shape (B, C, H, W), got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )


def _rand(
    n: int, generator: torch.Generator | None, device: torch.device, *shape: int
) -> torch.Tensor:
    """
    Uniform [0, 1) numbers of shape (n, *shape): drawn on the generator's device, moved
    to ``device``.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand((n, *shape), generator=generator, device=gen_device)
    return u.to(device, non_blocking=True)


def _uniform(n: int, low: float, high: float, generator, device) -> torch.Tensor:
    return low + (high - low) * _rand(n, generator, device)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in [0, 1]; float input is returned as float32
    unchanged.

    Args:
        x: (..., H, W) uint8 or floating tensor.

    Returns:
        float32 tensor of the same shape.
    """
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point, got {x.dtype}")
    return x.float()


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    r"""Luma $Y = 0.2989R + 0.587G + 0.114B$ of a float batch, shape (B, 1, H, W).

    Args:
        x: (B, 3, H, W) float batch.

    Returns:
        (B, 1, H, W) luma.
    """
    return x[:, 0:1] * _LUMA[0] + x[:, 1:2] * _LUMA[1] + x[:, 2:3] * _LUMA[2]


# --------------------------------------------------------------------------------------
# random resized crop
# --------------------------------------------------------------------------------------
def sample_crop_params(
    batch_size: int,
    height: int,
    width: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    attempts: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Crop boxes ``(top, left, h, w)`` (int64 tensors of shape (B,)) as torchvision
    samples them.

    Each try draws an area fraction $s \sim U(\text{scale})$ and a log aspect ratio
    $\log r \sim U(\log \text{ratio})$, and sets $w = \mathrm{round}(\sqrt{sHW r})$, $h
    = \mathrm{round}(\sqrt{sHW / r})$; the first of ``attempts`` tries that fits in the
    image wins and its corner is uniform over the valid positions. When no try fits, the
    fallback is the central crop with the aspect ratio clamped to ``ratio`` -- as in
    ``torchvision.transforms.v2.RandomResizedCrop.make_params``. All tries are drawn at
    once.

    Args:
        batch_size, height, width: B and the image size.
        scale, ratio: ranges of the area fraction and aspect ratio.
        generator, device: where the random numbers come from and go.
        attempts: tries per sample.

    Returns:
        ``(top, left, h, w)``, four (B,) int64 tensors.
    """
    if not (0 < scale[0] <= scale[1]):
        raise ValueError(f"scale must satisfy 0 < min <= max, got {tuple(scale)}")
    if not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"ratio must satisfy 0 < min <= max, got {tuple(ratio)}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    area = float(height * width)
    u = _rand(batch_size, generator, device, attempts, 4).double()
    target_area = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_r0, log_r1 = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_r0 + (log_r1 - log_r0) * u[..., 1])
    # torch.round rounds half to even, like Python's round() used by torchvision
    w = torch.round(torch.sqrt(target_area * aspect)).long()
    h = torch.round(torch.sqrt(target_area / aspect)).long()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    # index of the first fitting try (0 if none fits)
    first = torch.argmax(ok.int(), dim=1)
    found = ok.any(dim=1)
    pick = lambda t: t.gather(1, first[:, None])[:, 0]  # noqa: E731
    h_try, w_try = pick(h), pick(w)
    # corner uniform over {0, ..., H - h}: floor(u * (H - h + 1)), clamped against u ->
    # 1 rounding
    top_try = torch.minimum(
        (pick(u[..., 2]) * (height - h_try + 1)).long(), height - h_try
    )
    left_try = torch.minimum(
        (pick(u[..., 3]) * (width - w_try + 1)).long(), width - w_try
    )
    # central fallback crop
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fh, fw = height, int(round(height * max(ratio)))
    else:
        fw, fh = width, height
    ftop, fleft = (height - fh) // 2, (width - fw) // 2
    top = torch.where(found, top_try, torch.full_like(top_try, ftop))
    left = torch.where(found, left_try, torch.full_like(left_try, fleft))
    h = torch.where(found, h_try, torch.full_like(h_try, fh))
    w = torch.where(found, w_try, torch.full_like(w_try, fw))
    return top, left, h, w


def _interp_taps(
    start: torch.Tensor, length: torch.Tensor, out_size: int, dtype: torch.dtype
):
    """1-D bilinear taps for resizing the window ``[start, start + length)`` of every
    sample to ``out_size`` samples (align_corners=False, no antialias): pixel indices
    ``i0, i1`` (int64) and weights ``w0, w1``, each of shape (B, out_size).

    Source coordinate of output pixel $o$: $x = \\max(0, (o + 1/2)\\,L/S - 1/2)$;
    weights $1 - (x - \\lfloor x\\rfloor)$ and $x - \\lfloor x\\rfloor$ on pixels
    $\\lfloor x\\rfloor$ and $\\min(\\lfloor x\\rfloor + 1, L - 1)$ -- PyTorch's
    ``upsample_bilinear2d`` rule, here inside the crop window, so a crop never reads
    pixels outside its box (as F.crop then F.resize)."""
    dev = start.device
    o = torch.arange(out_size, device=dev, dtype=torch.float64)
    # PyTorch computes the scale in float32 (in/out) -- match it so ties round the same
    # way
    scale = (length.to(torch.float32) / out_size).to(torch.float64)[:, None]
    src = ((o[None] + 0.5) * scale - 0.5).clamp_(min=0.0)
    i0 = src.floor()
    w1 = src - i0
    last = length[:, None] - 1
    i0 = torch.minimum(i0.long(), last)
    # at the last pixel both taps read it (weights still sum to 1)
    i1 = torch.minimum(i0 + 1, last)
    return start[:, None] + i0, start[:, None] + i1, (1.0 - w1).to(dtype), w1.to(dtype)


def resized_crop(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    height: torch.Tensor,
    width: torch.Tensor,
    size: int | Sequence[int],
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Crop box ``b`` of every sample and resize it to ``size`` with bilinear
    interpolation.

    Equals ``torchvision.transforms.v2.functional.resized_crop(x[b], top, left, h, w,
    size, BILINEAR, antialias=False)`` per sample. Separable: each output row is a
    two-tap blend of input rows, $y_o = w_0 x_{i_0} + w_1 x_{i_1}$ (one ``gather`` per
    tap), then the same along columns -- about $4 S^2$ multiply-adds per channel, with
    per-sample taps. ``flip`` (bool, shape (B,)) mirrors the chosen outputs left-right
    for free by reversing their column taps. Returns float32 (uint8 input is scaled to
    [0, 1] first).

    Args:
        x: (B, C, H, W) uint8 or float batch.
        top, left, height, width: (B,) int64 crop boxes.
        size: output side S (int) or (S_h, S_w).
        flip: optional (B,) bool, mirror these outputs.

    Returns:
        (B, C, S_h, S_w) float32.
    """
    _check_batch(x)
    x = to_float(x)
    B, C, H, W = x.shape
    out_h, out_w = (
        (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    )
    dev = x.device
    # (B, Sh)
    r0, r1, rw0, rw1 = _interp_taps(top.to(dev), height.to(dev), out_h, x.dtype)
    # (B, Sw)
    c0, c1, cw0, cw1 = _interp_taps(left.to(dev), width.to(dev), out_w, x.dtype)
    if flip is not None:
        f = flip.to(dev)[:, None]
        c0, c1, cw0, cw1 = (torch.where(f, t.flip(1), t) for t in (c0, c1, cw0, cw1))
    rows = lambda i: i[:, None, :, None].expand(B, C, out_h, W)  # noqa: E731
    y = (
        x.gather(2, rows(r0)) * rw0[:, None, :, None]
        + x.gather(2, rows(r1)) * rw1[:, None, :, None]
    )
    cols = lambda i: i[:, None, None, :].expand(B, C, out_h, out_w)  # noqa: E731
    return (
        y.gather(3, cols(c0)) * cw0[:, None, None, :]
        + y.gather(3, cols(c1)) * cw1[:, None, None, :]
    )


def random_resized_crop(
    x: torch.Tensor,
    size: int | Sequence[int],
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    flip_p: float = 0.0,
) -> torch.Tensor:
    """``RandomResizedCrop(size, scale, ratio, antialias=False)`` with one box per
    sample, followed by ``RandomHorizontalFlip(flip_p)`` (folded into the column taps).

    Args:
        x: (B, C, H, W) batch; size: output side(s); scale, ratio: as torchvision;
        generator: random source; flip_p: flip probability.

    Returns:
        (B, C, S, S) float32 views.
    """
    _check_batch(x)
    box = sample_crop_params(
        x.shape[0], x.shape[2], x.shape[3], scale, ratio, generator, x.device
    )
    flip = _rand(x.shape[0], generator, x.device) < flip_p if flip_p > 0 else None
    return resized_crop(x, *box, size, flip=flip)


# --------------------------------------------------------------------------------------
# flips, colour, grayscale, blur, normalisation
# --------------------------------------------------------------------------------------
def random_hflip(
    x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mirror each sample left-right with probability ``p``.

    Args:
        x: (B, C, H, W) batch; p: probability; generator: random source.

    Returns:
        (B, C, H, W) batch.
    """
    _check_batch(x)
    flip = _rand(x.shape[0], generator, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{clip}(f x)$ per sample (``factor`` shape (B,)); float input in [0, 1].

    Args:
        x: (B, C, H, W) float batch in [0, 1]; factor: (B,) factors.

    Returns:
        (B, C, H, W) batch in [0, 1].
    """
    return (x * factor[:, None, None, None]).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{clip}(f x + (1 - f)\,\bar{Y})$, $\bar Y$ = mean luma of the sample.

    Args:
        x: (B, 3, H, W) float batch in [0, 1]; factor: (B,) factors.

    Returns:
        (B, 3, H, W) batch in [0, 1].
    """
    f = factor[:, None, None, None]
    mean = rgb_to_grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return (x * f + (1.0 - f) * mean).clamp_(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{clip}(f x + (1 - f)\,Y)$, $Y$ = per-pixel luma.

    Args:
        x: (B, 3, H, W) float batch in [0, 1]; factor: (B,) factors.

    Returns:
        (B, 3, H, W) batch in [0, 1].
    """
    f = factor[:, None, None, None]
    return (x * f + (1.0 - f) * rgb_to_grayscale(x)).clamp_(0.0, 1.0)


# R, G, B sit at these offsets on the hue circle (in sixths of a turn), see adjust_hue
_HUE_CHANNEL_OFFSETS = (5.0, 3.0, 1.0)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    r"""Rotate the hue of each sample by ``factor`` (in turns, $[-1/2, 1/2]$): $h \to (h
    + f) \bmod 1$.

    Same map as ``torchvision``'s ``adjust_hue`` (RGB -> HSV, shift, HSV -> RGB; PIL's
    formulas) in fewer passes over the pixels. With $M = \max(R, G, B)$, $m = \min$, $c
    = M - m$: $6h = 0 + (G - B)/c$ if $M = R$, $2 + (B - R)/c$ if $M = G$, else $4 + (R
    - G)/c$; and the HSV -> RGB map in closed form: channel $n \in \{5, 3, 1\}$ (R, G,
    B) is $M - c\,\mathrm{clip}(\min(k, 4 - k), 0, 1)$ with $k = (n + 6h) \bmod 6$
    (value $v = M$ and $vs = c$ are unchanged by a hue rotation, so neither $s$ nor $v$
    is formed). Gray pixels ($c = 0$) stay unchanged. Agrees with torchvision to ~1e-6.

    Args:
        x: (B, 3, H, W) float batch in [0, 1]; factor: (B,) hue shifts in turns.

    Returns:
        (B, 3, H, W) batch in [0, 1].
    """
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(dim=1), x.amin(dim=1)
    crange = maxc - minc
    is_r = maxc == r
    is_g = (maxc == g).logical_and_(~is_r)
    is_b = is_r.logical_or(is_g).logical_not_()
    num = torch.where(is_r, g - b, torch.where(is_g, b - r, r - g))
    # 0 R, 2 G, 4 B
    sector = is_g.to(x.dtype).add_(is_b.to(x.dtype), alpha=2.0).mul_(2.0)
    # c == 0 -> num == 0: divide by 1 there
    h6 = (
        num.div_(crange + (crange == 0).to(x.dtype))
        .add_(sector)
        .add_(6.0 * factor[:, None, None])
    )
    n = torch.tensor(_HUE_CHANNEL_OFFSETS, device=x.device, dtype=x.dtype)[
        None, :, None, None
    ]
    k = torch.remainder(h6, 6.0)[:, None].add(n).remainder_(6.0)  # (B, 3, H, W)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return torch.addcmul(maxc[:, None], crange[:, None], ramp, value=-1.0).clamp_(
        0.0, 1.0
    )


def sample_jitter_params(
    batch_size: int,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
    generator: torch.Generator | None = None,
    device=None,
) -> dict[str, torch.Tensor]:
    r"""Per-sample ``ColorJitter`` parameters: factors $b \sim U(\max(0, 1 - \beta), 1 +
    \beta)$ (same for contrast $c$ and saturation $s$), hue shift $\eta \sim U(-\gamma,
    \gamma)$, an order (a random permutation of the 4 ops, ``order[:, k]`` = op in slot
    k: 0 brightness, 1 contrast, 2 saturation, 3 hue) and ``apply`` (Bernoulli(p), the
    ``RandomApply``).

    Args:
        batch_size: B; brightness, contrast, saturation, hue: ``ColorJitter`` strengths;
        p: probability of jittering a sample; generator, device: random source and
            target.

    Returns:
        dict of (B,) tensors ``brightness``, ``contrast``, ``saturation``, ``hue``,
        ``apply`` and the (B, 4) int64 ``order``.
    """
    if not 0.0 <= hue <= 0.5:
        raise ValueError(f"hue must be in [0, 0.5], got {hue}")
    for nm, val in (
        ("brightness", brightness),
        ("contrast", contrast),
        ("saturation", saturation),
    ):
        if val < 0:
            raise ValueError(f"{nm} must be >= 0, got {val}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    B = batch_size
    params = {
        "brightness": _uniform(
            B, max(0.0, 1 - brightness), 1 + brightness, generator, device
        ),
        "contrast": _uniform(
            B, max(0.0, 1 - contrast), 1 + contrast, generator, device
        ),
        "saturation": _uniform(
            B, max(0.0, 1 - saturation), 1 + saturation, generator, device
        ),
        "hue": _uniform(B, -hue, hue, generator, device),
        # argsort of iid uniforms = a uniformly random permutation per sample
        "order": torch.argsort(_rand(B, generator, device, 4), dim=1),
        "apply": _rand(B, generator, device) < p,
    }
    return params


_JITTER_OPS = (
    ("brightness", adjust_brightness),
    ("contrast", adjust_contrast),
    ("saturation", adjust_saturation),
    ("hue", adjust_hue),
)


def apply_jitter(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply sampled ``ColorJitter`` parameters to a float batch in [0, 1], in each
    sample's order.

    Each of the four slots applies, per sample, one op; samples with ``apply == False``
    are left unchanged. On the CPU, :func:`_jitter_by_subsets` (each op only on the
    samples that draw it); on other devices :func:`_jitter_masked` (no host
    synchronisation). Both give the same result (tested).

    Args:
        x: (B, C, H, W) float batch in [0, 1].
        params: the output of :func:`sample_jitter_params` for B samples.

    Returns:
        The jittered (B, C, H, W) batch (a new tensor).
    """
    if x.device.type == "cpu":
        return _jitter_by_subsets(x, params)
    return _jitter_masked(x, params)


def _slot_ops(params: dict) -> torch.Tensor:
    """(B, 4) op index per slot; -1 for the samples that are not jittered."""
    return torch.where(
        params["apply"][:, None], params["order"], torch.full_like(params["order"], -1)
    )


def _jitter_by_subsets(x: torch.Tensor, params: dict) -> torch.Tensor:
    """CPU: in slot $k$, op $o$ runs only on the samples whose $k$-th op is $o$
    (``index_select`` -> op -> ``index_copy_``), so each sample's four ops are computed
    once -- the hue shift, by far the dearest op, on 80% of the samples instead of 4x
    the batch."""
    # x is written in place: not the caller's batch
    x, order = (
        x.clone(),
        _slot_ops(params),
    )
    for k in range(4):
        slot = order[:, k]
        for o, (name, op) in enumerate(_JITTER_OPS):
            idx = (slot == o).nonzero()[:, 0]
            if idx.numel():
                x.index_copy_(
                    0,
                    idx,
                    op(x.index_select(0, idx), params[name].index_select(0, idx)),
                )
    return x


def _jitter_masked(x: torch.Tensor, params: dict) -> torch.Tensor:
    """GPU (``index_select`` would need the subset sizes on the host, a
    synchronisation): brightness, contrast and saturation are all blends $f x + (1 - f)
    y$ (with $y$ = 0, mean luma, luma), done in one fused blend per slot over the batch;
    hue is computed for the whole batch and selected with ``torch.where``."""
    b, c, s, hue = (
        params["brightness"],
        params["contrast"],
        params["saturation"],
        params["hue"],
    )
    one, order = torch.ones_like(b), _slot_ops(params)
    for k in range(4):
        op = order[:, k]
        f = torch.where(
            op == 0, b, torch.where(op == 1, c, torch.where(op == 2, s, one))
        )[:, None, None, None]
        # blend partner: 0 (brightness), mean luma (contrast), luma (saturation); with f
        # = 1 for the samples doing hue or nothing this slot, f x + (1 - f) y = x
        # exactly (no torch.where needed)
        gray = rgb_to_grayscale(x)
        is_con = (op == 1).to(x.dtype)[:, None, None, None]
        is_sat = (op == 2).to(x.dtype)[:, None, None, None]
        other = gray * is_sat + gray.mean(dim=(1, 2, 3), keepdim=True) * is_con
        x = torch.addcmul(other * (1.0 - f), x, f).clamp_(0.0, 1.0)
        x = torch.where((op == 3)[:, None, None, None], adjust_hue(x, hue), x)
    return x


def color_jitter(
    x: torch.Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p)`` per
    sample.

    Args:
        x: (B, 3, H, W) float batch in [0, 1]; brightness, contrast, saturation, hue, p:
        as ``ColorJitter`` / ``RandomApply``; generator: random source.

    Returns:
        (B, 3, H, W) batch in [0, 1].
    """
    _check_batch(x)
    x = to_float(x)
    params = sample_jitter_params(
        x.shape[0], brightness, contrast, saturation, hue, p, generator, x.device
    )
    return apply_jitter(x, params)


def random_grayscale(
    x: torch.Tensor, p: float = 0.2, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each sample by its luma (repeated over the 3 channels) with probability
    ``p``.

    Args:
        x: (B, 3, H, W) float batch; p: probability; generator: random source.

    Returns:
        (B, 3, H, W) batch.
    """
    _check_batch(x)
    x = to_float(x)
    gray = _rand(x.shape[0], generator, x.device) < p
    return torch.where(gray[:, None, None, None], rgb_to_grayscale(x).expand_as(x), x)


def gaussian_kernel1d(kernel_size: int, sigma: torch.Tensor) -> torch.Tensor:
    r"""(B, k) normalised kernels $\propto \exp(-i^2 / 2\sigma_b^2)$, $i = -(k-1)/2,
    \dots, (k-1)/2$.

    Args:
        kernel_size: k (odd); sigma: (B,) standard deviations.

    Returns:
        (B, k) kernels, rows summing to 1.
    """
    i = (
        torch.arange(kernel_size, device=sigma.device, dtype=torch.float32)
        - (kernel_size - 1) / 2
    )
    return torch.softmax(-((i[None] / sigma[:, None].float()) ** 2) / 2.0, dim=1)


def gaussian_blur(
    x: torch.Tensor, kernel_size: int, sigma: torch.Tensor
) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample (shape (B,)) and reflect
    padding, as ``torchvision.transforms.v2.functional.gaussian_blur(x[b], [k, k],
    [sigma_b, sigma_b])``.

    Args:
        x: (B, C, H, W) float batch; kernel_size: k; sigma: (B,) standard deviations.

    Returns:
        (B, C, H, W) blurred batch.
    """
    _check_batch(x)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be a positive odd integer, got {kernel_size}"
        )
    x = to_float(x)
    B, C, H, W = x.shape
    pad = kernel_size // 2
    if pad >= min(H, W):
        raise ValueError(
            f"kernel_size {kernel_size} too large for {H}x{W} images (reflect padding)"
        )
    # (B*C, k)
    k = gaussian_kernel1d(kernel_size, sigma.to(x.device)).repeat_interleave(C, dim=0)
    y = torch.nn.functional.pad(
        x.reshape(1, B * C, H, W), (pad, pad, pad, pad), mode="reflect"
    )
    y = torch.nn.functional.conv2d(y, k[:, None, :, None], groups=B * C)  # along H
    y = torch.nn.functional.conv2d(y, k[:, None, None, :], groups=B * C)  # along W
    return y.reshape(B, C, H, W)


def random_gaussian_blur(
    x: torch.Tensor,
    kernel_size: int,
    sigma=(0.1, 2.0),
    p: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``RandomApply([GaussianBlur(kernel_size, sigma)], p)``: sigma ~ U(sigma) per
    sample; samples not blurred get sigma -> 0 (a delta kernel), i.e. stay exactly
    unchanged.

    Args:
        x: (B, C, H, W) float batch; kernel_size: k; sigma: (low, high); p: probability;
        generator: random source.

    Returns:
        (B, C, H, W) batch.
    """
    _check_batch(x)
    B = x.shape[0]
    sig = _uniform(B, sigma[0], sigma[1], generator, x.device)
    on = _rand(B, generator, x.device) < p
    # exp(-1/(2e-6)) underflows to 0
    sig = torch.where(on, sig, torch.full_like(sig, 1e-3))
    return gaussian_blur(x, kernel_size, sig)


def normalize(
    x: torch.Tensor,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
) -> torch.Tensor:
    r"""$(x - \mu_c) / \sigma_c$ per channel.

    Args:
        x: (B, C, H, W) float batch; mean, std: C values each.

    Returns:
        (B, C, H, W) normalised batch.
    """
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return (x - m) / s


# --------------------------------------------------------------------------------------
# the SimCLR recipe
# --------------------------------------------------------------------------------------
class SimCLRAugment:
    r"""The SimCLR view generator (Chen et al. 2020, App. A) as one batched callable.

    ``aug(x, generator)`` maps a uint8 or float batch (B, C, H, W) to float32 views (B,
    C, S, S): random resized crop (``scale``, ``ratio``; bilinear) -> horizontal flip
    (``flip_p``) -> ``ColorJitter(*jitter)`` applied with probability ``jitter_p`` ->
    grayscale (``gray_p``) -> Gaussian blur with probability ``blur_p`` (kernel
    ``blur_kernel``, sigma ~ U(``blur_sigma``)) -> normalisation with ``mean``/``std``
    (skipped when ``mean`` is None).

    Defaults are the 32x32 recipe of the DHEL/KCL experiments (their code base,
    AndrewAtanov/simclr-pytorch, CIFAR config: crop scale (0.08, 1), colour strength s =
    0.5, i.e. jitter (0.8s, 0.8s, 0.8s, 0.2s) = (0.4, 0.4, 0.4, 0.1) with p = 0.8,
    grayscale p = 0.2,
    no blur). Differences from that code: bilinear instead of bicubic crop resizing, and
    mean/std normalisation (theirs feeds [0, 1] pixels; pass ``mean=None`` to do the
    same)."""

    def __init__(
        self,
        size: int = 32,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.8,
        gray_p: float = 0.2,
        blur_p: float = 0.0,
        blur_kernel: int | None = None,
        blur_sigma: Sequence[float] = (0.1, 2.0),
        mean: Sequence[float] | None = DATASET_STATS["cifar10"][0],
        std: Sequence[float] | None = DATASET_STATS["cifar10"][1],
    ):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if len(jitter) != 4:
            raise ValueError(
                f"jitter must be (brightness, contrast, saturation, hue), got {jitter}"
            )
        for nm, pr in (
            ("flip_p", flip_p),
            ("jitter_p", jitter_p),
            ("gray_p", gray_p),
            ("blur_p", blur_p),
        ):
            if not 0.0 <= pr <= 1.0:
                raise ValueError(f"{nm} must be a probability in [0, 1], got {pr}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.size = int(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.flip_p, self.jitter, self.jitter_p, self.gray_p = (
            flip_p,
            tuple(jitter),
            jitter_p,
            gray_p,
        )
        self.blur_p, self.blur_sigma = blur_p, tuple(blur_sigma)
        # SimCLR: kernel 10% of the image side, made odd (96 -> 9, 224 -> 23)
        self.blur_kernel = (
            blur_kernel if blur_kernel is not None else int(0.1 * size) // 2 * 2 + 1
        )
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None
        # per-device copies
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        _check_batch(x)
        x = random_resized_crop(
            x, self.size, self.scale, self.ratio, generator, flip_p=self.flip_p
        )
        if self.jitter_p > 0:
            x = color_jitter(x, *self.jitter, p=self.jitter_p, generator=generator)
        if self.gray_p > 0:
            x = random_grayscale(x, self.gray_p, generator)
        if self.blur_p > 0:
            x = random_gaussian_blur(
                x, self.blur_kernel, self.blur_sigma, self.blur_p, generator
            )
        return self.eval_transform(x)

    def eval_transform(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic test-time transform: float in [0, 1] (bilinear resize to
        ``size`` if the images have another size), then the same normalisation as the
        training views."""
        _check_batch(x)
        x = to_float(x)
        if x.shape[-2:] != (self.size, self.size):
            B, _, H, W = x.shape
            z = torch.zeros(B, dtype=torch.long, device=x.device)
            x = resized_crop(
                x, z, z, torch.full_like(z, H), torch.full_like(z, W), self.size
            )
        if self.mean is None:
            return x
        # copy mean/std to the device once, not every batch
        if x.device not in self._stats:
            self._stats[x.device] = (
                torch.tensor(self.mean, device=x.device),
                torch.tensor(self.std, device=x.device),
            )
        return normalize(x, *self._stats[x.device])

    def __repr__(self) -> str:
        return (
            f"SimCLRAugment(size={self.size}, scale={self.scale}, "
            f"flip_p={self.flip_p}, "
            f"jitter={self.jitter}, jitter_p={self.jitter_p}, gray_p={self.gray_p}, "
            f"blur_p={self.blur_p}, blur_kernel={self.blur_kernel}, "
            f"mean={self.mean}, std={self.std})"
        )


def simclr_preset(dataset: str, **overrides) -> SimCLRAugment:
    """The SimCLR augmentation for a data set name of :func:`cl_lib.data.load_dataset`.

    - 32x32 (``cifar10``, ``cifar100``, ``tiny-imagenet-32``): DHEL/KCL's CIFAR recipe
      (strength 0.5 -> jitter (0.4, 0.4, 0.4, 0.1), p = 0.8; gray 0.2; no blur).
    - 96x96 (``stl10``, ``imagenette-96``): strength 1 -> jitter (0.8, 0.8, 0.8, 0.2),
      blur with p = 0.5, kernel 9 (10% of 96), sigma in [0.1, 2].
    - ``imagenet100`` (224x224): strength 1, blur p = 0.5 with kernel 23.
    Keyword ``overrides`` replace any :class:`SimCLRAugment` argument (e.g.
    ``size=64``).

    Args:
        dataset: a data set name (not ``imagefolder:``).
        **overrides: :class:`SimCLRAugment` arguments.

    Returns:
        The :class:`SimCLRAugment`.
    """
    name = dataset.lower()
    if name.startswith("imagefolder:"):
        raise ValueError(
            "no preset for an arbitrary image folder; build SimCLRAugment(size=...) "
            "with your image size and DATASET_STATS['imagenet'] statistics"
        )
    if name not in DATASET_STATS or name == "imagenet":
        raise ValueError(
            f"unknown data set {dataset!r}; presets exist for "
            f"{sorted(k for k in DATASET_STATS if k != 'imagenet')}"
        )
    mean, std = DATASET_STATS[name]
    if name in ("cifar10", "cifar100", "tiny-imagenet-32"):
        kw = dict(size=32, jitter=(0.4, 0.4, 0.4, 0.1), blur_p=0.0)
    elif name in ("stl10", "imagenette-96"):
        kw = dict(size=96, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)
    else:  # imagenet100
        kw = dict(size=224, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)
    kw.update(mean=mean, std=std)
    kw.update(overrides)
    return SimCLRAugment(**kw)


def check_augment(preset: str, overrides: dict | None = None) -> None:
    """Check an augmentation recipe before any image is loaded: ``preset`` names a
    preset of :func:`simclr_preset` (or is an ``imagefolder:`` data set, which gets
    the ImageNet-statistics recipe), and ``overrides`` holds only
    :class:`SimCLRAugment` arguments (not ``size``: the trainer sets the view size).

    Args:
        preset: a data set name with a preset, or ``"imagefolder:<path>"``.
        overrides: :class:`SimCLRAugment` keyword arguments that replace the preset's.

    Returns:
        None.

    Raises:
        ValueError: one line naming the unknown preset or arguments.
    """
    import inspect

    if not isinstance(preset, str):
        raise ValueError(f"augment must be a preset name, got {preset!r}")
    name = preset.strip().lower()
    presets = sorted(k for k in DATASET_STATS if k != "imagenet")
    if not name.startswith("imagefolder:") and name not in presets:
        raise ValueError(
            f"unknown augment preset {preset!r}; choose one of {presets} "
            f"(or leave it unset: the data set's own)"
        )
    if not isinstance(overrides, dict):
        raise ValueError(
            f"augment_kwargs must be a JSON object of SimCLRAugment arguments, "
            f"got {overrides!r}"
        )
    if "size" in overrides:
        raise ValueError(
            "set the view size with image_size, not augment_kwargs['size']"
        )
    allowed = set(inspect.signature(SimCLRAugment).parameters) - {"size"}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(
            f"augment_kwargs has unknown SimCLRAugment arguments {sorted(unknown)}; "
            f"choose from {sorted(allowed)} (the view size is image_size)"
        )
