"""Batched augmentations vs torchvision.transforms.v2: parameter distributions (statistically)
and per-sample outputs given the same parameters (within float rounding)."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from scipy import stats

from cl_lib import augment as A

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def smooth_batch(b=6, h=32, w=32, seed=0):
    """Float images in [0, 1] with structure (random low-res noise upsampled) and saturated
    pixels (0 and 1) so that clamping paths are exercised."""
    g = gen(seed)
    low = torch.rand(b, 3, 5, 7, generator=g) * 1.4 - 0.2
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear").clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# random resized crop: parameters
# ---------------------------------------------------------------------------------------------
def torchvision_boxes(n, h, w, scale, ratio, seed=0):
    torch.manual_seed(seed)
    t = T.RandomResizedCrop(8, scale=scale, ratio=ratio)
    img = torch.zeros(3, h, w)
    ps = [t.make_params([img]) for _ in range(n)]
    return np.array([[p["top"], p["left"], p["height"], p["width"]] for p in ps], dtype=float)


@pytest.mark.parametrize("h,w,scale", [(32, 32, (0.08, 1.0)), (24, 40, (0.2, 1.0))])
def test_crop_params_match_torchvision_distribution(h, w, scale):
    ratio = (3 / 4, 4 / 3)
    n = 3000
    ours = torch.stack(A.sample_crop_params(n, h, w, scale, ratio, gen(1)), 1).double().numpy()
    ref = torchvision_boxes(n, h, w, scale, ratio, seed=2)
    area_o, area_r = ours[:, 2] * ours[:, 3] / (h * w), ref[:, 2] * ref[:, 3] / (h * w)
    asp_o, asp_r = ours[:, 3] / ours[:, 2], ref[:, 3] / ref[:, 2]
    # KS on the area fraction and aspect ratio; positions via their means relative to the slack
    assert stats.ks_2samp(area_o, area_r).pvalue > 1e-3
    assert stats.ks_2samp(asp_o, asp_r).pvalue > 1e-3
    assert abs(area_o.mean() - area_r.mean()) < 0.03
    rel_top_o = ours[:, 0] / np.maximum(h - ours[:, 2], 1)
    rel_top_r = ref[:, 0] / np.maximum(h - ref[:, 2], 1)
    assert stats.ks_2samp(rel_top_o, rel_top_r).pvalue > 1e-3
    # all boxes inside the image
    assert (ours[:, 0] >= 0).all() and (ours[:, 0] + ours[:, 2] <= h).all()
    assert (ours[:, 1] >= 0).all() and (ours[:, 1] + ours[:, 3] <= w).all()


@pytest.mark.parametrize("h,w", [(20, 50), (50, 20), (30, 31)])
def test_crop_fallback_matches_torchvision(h, w):
    # scale > 1 never fits: every sample takes the central fallback crop
    scale, ratio = (1.5, 2.0), (3 / 4, 4 / 3)
    ours = torch.stack(A.sample_crop_params(5, h, w, scale, ratio, gen(0)), 1)
    ref = torchvision_boxes(5, h, w, scale, ratio)
    assert np.array_equal(ours.numpy(), ref.astype(np.int64))


def test_crop_params_reject_bad_ranges():
    with pytest.raises(ValueError, match="scale"):
        A.sample_crop_params(2, 8, 8, scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="ratio"):
        A.sample_crop_params(2, 8, 8, ratio=(0.0, 1.0))


# ---------------------------------------------------------------------------------------------
# random resized crop: pixels
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("h,w,size", [(32, 32, 32), (24, 40, 32), (40, 24, (16, 20)), (9, 13, 48)])
def test_resized_crop_matches_torchvision(device, h, w, size):
    x = smooth_batch(16, h, w, seed=3)
    top, left, bh, bw = A.sample_crop_params(16, h, w, (0.05, 1.0), (0.5, 2.0), gen(4))
    ours = A.resized_crop(x.to(device), top, left, bh, bw, size).cpu()
    out_size = [size, size] if isinstance(size, int) else list(size)
    for b in range(16):
        ref = TF.resized_crop(x[b], int(top[b]), int(left[b]), int(bh[b]), int(bw[b]), out_size,
                              interpolation=T.InterpolationMode.BILINEAR, antialias=False)
        torch.testing.assert_close(ours[b], ref, atol=2e-5, rtol=0)


def test_resized_crop_uint8_input_within_rounding():
    x = (smooth_batch(4, 32, 32, seed=5) * 255).round().to(torch.uint8)
    top, left, bh, bw = A.sample_crop_params(4, 32, 32, generator=gen(6))
    ours = A.resized_crop(x, top, left, bh, bw, 32)
    assert ours.dtype == torch.float32
    for b in range(4):
        ref = TF.resized_crop(x[b], int(top[b]), int(left[b]), int(bh[b]), int(bw[b]), [32, 32],
                              interpolation=T.InterpolationMode.BILINEAR, antialias=False)
        assert (ours[b] * 255 - ref.float()).abs().max() <= 1.0 + 1e-3  # torchvision rounds to uint8


# ---------------------------------------------------------------------------------------------
# colour ops, per sample, vs torchvision functional
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ["brightness", "contrast", "saturation", "hue"])
def test_colour_ops_match_torchvision(device, op):
    x = smooth_batch(12, 16, 20, seed=7)
    if op == "hue":
        f = torch.linspace(-0.5, 0.5, 12)
    else:
        f = torch.linspace(0.0, 2.0, 12)
    ours = getattr(A, f"adjust_{op}")(x.to(device), f.to(device)).cpu()
    for b in range(12):
        ref = getattr(TF, f"adjust_{op}")(x[b], float(f[b]))
        torch.testing.assert_close(ours[b], ref, atol=3e-5, rtol=0)


def test_hue_on_gray_and_saturated_pixels():
    # gray pixels (max == min) and pure primaries: the branch cases of the HSV conversion
    x = torch.tensor([[0.3, 0.3, 0.3], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 1, 1],
                      [0.2, 0.5, 0.5]]).T.reshape(1, 3, 2, 4)
    for f in (-0.5, -0.13, 0.0, 0.25, 0.5):
        ours = A.adjust_hue(x, torch.tensor([f]))
        torch.testing.assert_close(ours[0], TF.adjust_hue(x[0], f), atol=3e-5, rtol=0)


def test_grayscale_matches_torchvision():
    x = smooth_batch(3, 8, 8)
    ours = A.random_grayscale(x, p=1.0, generator=gen())
    torch.testing.assert_close(ours, TF.rgb_to_grayscale(x, num_output_channels=3), atol=1e-6, rtol=0)
    assert torch.equal(A.random_grayscale(x, p=0.0, generator=gen()), x)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", ["apply_jitter", "_jitter_by_subsets", "_jitter_masked"])
def test_jitter_in_sample_order_matches_torchvision_sequence(device, path):
    # _jitter_masked is the GPU code path; here it also runs on the CPU
    x = smooth_batch(24, 12, 12, seed=8)
    params = A.sample_jitter_params(24, 0.4, 0.4, 0.4, 0.1, p=0.8, generator=gen(9))
    jitter = getattr(A, path)
    ours = jitter(x.to(device), {k: v.to(device) for k, v in params.items()}).cpu()
    fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    keys = ["brightness", "contrast", "saturation", "hue"]
    for b in range(24):
        ref = x[b]
        if params["apply"][b]:
            for op in params["order"][b].tolist():
                ref = fns[op](ref, float(params[keys[op]][b]))
        torch.testing.assert_close(ours[b], ref, atol=5e-5, rtol=0)
    assert not params["apply"].all() and params["apply"].any()


def test_hue_matches_torchvision_on_uint8_levels():
    # quantised pixels make ties (max shared by two channels) common: the branch order must match
    x = torch.randint(0, 256, (16, 3, 6, 6), generator=gen(21)).float() / 255
    f = torch.linspace(-0.5, 0.5, 16)
    ours = A.adjust_hue(x, f)
    for b in range(16):
        torch.testing.assert_close(ours[b], TF.adjust_hue(x[b], float(f[b])), atol=3e-5, rtol=0)


def test_cpu_jitter_runs_each_op_once_per_applied_sample(monkeypatch):
    # the CPU path must not compute an op for samples that do not draw it in a slot
    calls = {}

    def counting(name, fn):
        def wrapped(x, factor):
            calls[name] = calls.get(name, 0) + x.shape[0]
            return fn(x, factor)
        return name, wrapped

    monkeypatch.setattr(A, "_JITTER_OPS", tuple(counting(n, f) for n, f in A._JITTER_OPS))
    x = smooth_batch(40, 8, 8, seed=3)
    params = A.sample_jitter_params(40, 0.4, 0.4, 0.4, 0.1, p=0.8, generator=gen(4))
    x_before = x.clone()
    y = A.apply_jitter(x, params)
    n_applied = int(params["apply"].sum())
    assert calls == {k: n_applied for k in ("brightness", "contrast", "saturation", "hue")}
    assert torch.equal(x, x_before)  # the caller's batch is not modified
    assert torch.equal(y[~params["apply"]], x[~params["apply"]])


def test_cpu_subset_and_masked_jitter_paths_agree():
    x = smooth_batch(32, 10, 10, seed=5)
    params = A.sample_jitter_params(32, 0.8, 0.8, 0.8, 0.2, p=0.8, generator=gen(6))
    a = A._jitter_by_subsets(x, params)
    b = A._jitter_masked(x, params)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_jitter_parameter_distributions():
    n = 24000
    p = A.sample_jitter_params(n, 0.4, 0.3, 0.9, 0.1, p=0.8, generator=gen(10))
    assert abs(p["apply"].float().mean().item() - 0.8) < 0.015  # 5 sigma for n = 24000
    for key, lo, hi in [("brightness", 0.6, 1.4), ("contrast", 0.7, 1.3), ("saturation", 0.1, 1.9),
                        ("hue", -0.1, 0.1)]:
        assert stats.kstest(p[key].numpy(), "uniform", args=(lo, hi - lo)).pvalue > 1e-3
    # all 24 orders equally likely (chi-square), as torch.randperm(4) in ColorJitter
    codes = (p["order"] * torch.tensor([64, 16, 4, 1])).sum(1)
    counts = torch.bincount(codes).numpy()
    counts = counts[counts > 0]
    assert len(counts) == 24
    assert stats.chisquare(counts).pvalue > 1e-3
    assert (p["order"].sort(1).values == torch.arange(4)).all()


def test_jitter_application_rate_on_images():
    x = smooth_batch(2000, 4, 4, seed=11)
    y = A.color_jitter(x, 0.4, 0.4, 0.4, 0.1, p=0.8, generator=gen(12))
    changed = (y - x).abs().amax(dim=(1, 2, 3)) > 1e-6
    assert abs(changed.float().mean().item() - 0.8) < 0.045  # 5 sigma for n = 2000


def test_jitter_rejects_bad_hue():
    with pytest.raises(ValueError, match="hue"):
        A.sample_jitter_params(2, hue=0.7)


# ---------------------------------------------------------------------------------------------
# flips, blur, normalisation
# ---------------------------------------------------------------------------------------------
def test_flip_rate_and_pixels():
    x = smooth_batch(4000, 2, 3, seed=13)
    y = A.random_hflip(x, 0.5, gen(14))
    flipped = torch.isclose(y, x.flip(-1)).flatten(1).all(1)
    same = torch.isclose(y, x).flatten(1).all(1)
    assert (flipped | same).all()
    assert stats.binomtest(int(flipped.sum()), 4000, 0.5).pvalue > 1e-3


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [3, 9])
def test_gaussian_blur_matches_torchvision(device, k):
    x = smooth_batch(6, 20, 24, seed=15)
    sigma = torch.tensor([0.1, 0.5, 1.0, 1.3, 2.0, 3.0])
    ours = A.gaussian_blur(x.to(device), k, sigma.to(device)).cpu()
    for b in range(6):
        ref = TF.gaussian_blur(x[b], [k, k], [float(sigma[b])] * 2)
        torch.testing.assert_close(ours[b], ref, atol=2e-5, rtol=0)


def test_random_blur_leaves_unselected_samples_unchanged():
    x = smooth_batch(64, 16, 16, seed=16)
    y = A.random_gaussian_blur(x, 5, (0.1, 2.0), p=0.5, generator=gen(17))
    same = (y == x).flatten(1).all(1)
    assert 10 < int(same.sum()) < 54


def test_blur_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        A.gaussian_blur(smooth_batch(1, 8, 8), 4, torch.tensor([1.0]))


def test_normalize_matches_torchvision():
    x = smooth_batch(2, 5, 5)
    mean, std = A.DATASET_STATS["cifar10"]
    torch.testing.assert_close(A.normalize(x, mean, std), TF.normalize(x, list(mean), list(std)))


# ---------------------------------------------------------------------------------------------
# the SimCLR pipeline: presets and edge cases
# ---------------------------------------------------------------------------------------------
def test_presets():
    a = A.simclr_preset("cifar10")
    assert (a.size, a.scale, a.jitter, a.jitter_p, a.gray_p, a.blur_p) == \
        (32, (0.08, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, 0.0)
    b = A.simclr_preset("imagenette-96")
    assert (b.size, b.blur_p, b.blur_kernel, b.jitter) == (96, 0.5, 9, (0.8, 0.8, 0.8, 0.2))
    assert A.simclr_preset("imagenet100").blur_kernel == 23
    assert A.simclr_preset("stl10", size=64).size == 64
    with pytest.raises(ValueError, match="unknown"):
        A.simclr_preset("mnist")


@pytest.mark.parametrize("device", DEVICES)
def test_pipeline_deterministic_and_dtype_independent(device):
    aug = A.simclr_preset("imagenette-96", size=24, blur_kernel=3)
    xu8 = (smooth_batch(8, 30, 30, seed=18) * 255).round().to(torch.uint8).to(device)
    v1 = aug(xu8, gen(5, device))
    v2 = aug(xu8, gen(5, device))
    v3 = aug(xu8.float() / 255, gen(5, device))
    v4 = aug(xu8, gen(6, device))
    assert v1.shape == (8, 3, 24, 24) and v1.dtype == torch.float32 and v1.device.type == device
    assert torch.equal(v1, v2)
    torch.testing.assert_close(v1, v3, atol=1e-6, rtol=0)
    assert not torch.allclose(v1, v4)
    assert torch.isfinite(v1).all()


def test_pipeline_batch_of_one_and_non_square_input():
    aug = A.SimCLRAugment(size=16, mean=None, std=None)
    x = smooth_batch(1, 20, 33)
    y = aug(x, gen())
    assert y.shape == (1, 3, 16, 16)
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert aug.eval_transform(x).shape == (1, 3, 16, 16)


def test_eval_transform_is_normalised_float():
    aug = A.simclr_preset("cifar10")
    x = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    y = aug.eval_transform(x)
    mean, std = A.DATASET_STATS["cifar10"]
    torch.testing.assert_close(y[0, :, 0, 0], (128 / 255 - torch.tensor(mean)) / torch.tensor(std))


def test_bad_input_raises_value_error():
    aug = A.SimCLRAugment()
    with pytest.raises(ValueError, match="B, C, H, W"):
        aug(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="uint8 or floating"):
        aug(torch.zeros(1, 3, 32, 32, dtype=torch.int32))
    with pytest.raises(ValueError, match="probability"):
        A.SimCLRAugment(gray_p=1.5)


def test_flip_folded_into_crop_equals_flipping_after():
    x = smooth_batch(8, 20, 28, seed=19)
    plain = A.random_resized_crop(x, 16, generator=gen(20), flip_p=0.0)
    flipped = A.random_resized_crop(x, 16, generator=gen(20), flip_p=1.0)
    torch.testing.assert_close(flipped, plain.flip(-1), atol=1e-6, rtol=0)
