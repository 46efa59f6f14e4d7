"""cl_lib.data: archives / folders -> cached uint8 tensors, subsets, and the device loaders.

Most tests build tiny synthetic ImageFolder trees and .tar.gz archives of PIL images in tmp
dirs; one test reads the real CIFAR-10 JPEG archive when CL_LIB_DATA points at it."""
import io
import os
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cl_lib import data as D
from cl_lib.augment import SimCLRAugment, to_float

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------------------------------------
# synthetic data
# ---------------------------------------------------------------------------------------------
def image_bytes(value: int, size=(8, 8), fmt="JPEG") -> bytes:
    """A flat-colour image whose red channel encodes ``value`` (survives JPEG to within ~2)."""
    im = Image.new("RGB", size, (value, 255 - value, 128))
    buf = io.BytesIO()
    im.save(buf, format=fmt, quality=95) if fmt == "JPEG" else im.save(buf, format=fmt)
    return buf.getvalue()


def make_tree(root: Path, splits=("train", "test"), classes=("b_cls", "a_cls", "c_cls"), per_class=4,
              size=(8, 8), fmt="JPEG", ext=".jpg") -> Path:
    for sp in splits:
        for ci, c in enumerate(classes):
            d = root / sp / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                (d / f"{i:03d}{ext}").write_bytes(image_bytes(20 * ci + 5 * i, size, fmt))
    return root


def make_archive(path: Path, top="ds", **kw) -> Path:
    tree = make_tree(path.parent / (path.name + ".src") / top, **kw)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname=top)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("CL_LIB_CACHE", str(d))
    return d


# ---------------------------------------------------------------------------------------------
# loading, caching, errors
# ---------------------------------------------------------------------------------------------
def test_imagefolder_archive_layout_labels_and_cache(tmp_path, cache, monkeypatch):
    arc = make_archive(tmp_path / "toy.tar.gz")
    x, y, classes = D.load_dataset(f"imagefolder:{arc}", split="train")
    assert classes == ["a_cls", "b_cls", "c_cls"]               # sorted, as ImageFolder
    assert x.shape == (12, 3, 8, 8) and x.dtype == torch.uint8
    assert y.dtype == torch.int64 and y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # a_cls was written with class index 1 -> red = 20 + 5 i
    assert abs(int(x[1, 0, 4, 4]) - 25) <= 3
    files = list(cache.glob("*.pt"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))
    # second call: from the cache, no decoding
    monkeypatch.setattr(D, "decode_images", lambda *a, **k: pytest.fail("decoded again"))
    x2, y2, c2 = D.load_dataset(f"imagefolder:{arc}", split="train")
    assert torch.equal(x, x2) and torch.equal(y, y2) and c2 == classes


def test_imagefolder_directory_and_png(tmp_path, cache):
    root = make_tree(tmp_path / "tree", fmt="PNG", ext=".png", size=(6, 10))
    x, y, classes = D.load_dataset(f"imagefolder:{root}", split="test")
    assert x.shape == (12, 3, 10, 6)                            # (H, W) = (10, 6)
    assert int(x[0, 0, 0, 0]) == 20 and int(x[0, 1, 0, 0]) == 235  # PNG is lossless
    with pytest.raises(FileNotFoundError, match="layout"):
        D.load_dataset(f"imagefolder:{root}", split="val")


def test_named_archive_from_cl_lib_data(tmp_path, cache, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    make_archive(data / "imagenette-96.tar.gz", top="imagenette-96", splits=("train", "val"), size=(12, 12))
    monkeypatch.setenv("CL_LIB_DATA", str(data))
    x, y, classes = D.load_dataset("imagenette-96", split="test")  # "test" = the val folder
    assert x.shape == (12, 3, 12, 12) and len(classes) == 3
    with pytest.raises(ValueError, match="splits"):
        D.load_dataset("imagenette-96", split="unlabeled")


def test_missing_archive_names_env_var_and_file(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("CL_LIB_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        D.load_dataset("tiny-imagenet-32")
    assert "CL_LIB_DATA" in str(err.value) and "tiny-imagenet-32.tar.gz" in str(err.value)
    monkeypatch.delenv("CL_LIB_DATA")
    with pytest.raises(FileNotFoundError, match="CL_LIB_DATA"):
        D.load_dataset("imagenette-96")


def test_truncated_archive_gives_clear_error_and_no_cache(tmp_path, cache):
    arc = make_archive(tmp_path / "toy.tar.gz", per_class=30)
    blob = arc.read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        D.load_dataset(f"imagefolder:{bad}", split="train")
    assert not cache.exists() or not list(cache.iterdir())
    notgz = tmp_path / "junk.tar.gz"
    notgz.write_bytes(b"definitely not a tar file" * 10)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        D.load_dataset(f"imagefolder:{notgz}", split="train")


def test_corrupt_image_gives_clear_error(tmp_path, cache):
    root = make_tree(tmp_path / "tree")
    (root / "train" / "a_cls" / "000.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    with pytest.raises(ValueError, match="could not decode"):
        D.load_dataset(f"imagefolder:{root}", split="train")


def test_cache_write_is_atomic(tmp_path, cache, monkeypatch):
    arc = make_archive(tmp_path / "toy.tar.gz")

    def exploding_save(obj, path):
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt  # an interrupted run

    monkeypatch.setattr(D.torch, "save", exploding_save)
    with pytest.raises(KeyboardInterrupt):
        D.load_dataset(f"imagefolder:{arc}", split="train")
    assert list(cache.iterdir()) == []                           # no partial or temp file left
    monkeypatch.undo()
    os.environ["CL_LIB_CACHE"] = str(cache)
    x, _, _ = D.load_dataset(f"imagefolder:{arc}", split="train")
    assert x.shape[0] == 12


def test_cache_rebuilt_when_archive_changes(tmp_path, cache):
    arc = make_archive(tmp_path / "toy.tar.gz", per_class=2)
    assert D.load_dataset(f"imagefolder:{arc}")[0].shape[0] == 6
    make_archive(tmp_path / "toy.tar.gz", per_class=3)
    os.utime(arc, ns=(arc.stat().st_atime_ns, arc.stat().st_mtime_ns + 10**9))
    assert D.load_dataset(f"imagefolder:{arc}")[0].shape[0] == 9


def test_mixed_sizes_need_image_size(tmp_path, cache):
    root = make_tree(tmp_path / "tree", splits=("train",))
    Image.new("RGB", (20, 12), (200, 10, 10)).save(root / "train" / "a_cls" / "big.jpg")
    with pytest.raises(ValueError, match="image_size"):
        D.load_dataset(f"imagefolder:{root}")
    x, _, _ = D.load_dataset(f"imagefolder:{root}", image_size=8)
    assert x.shape == (13, 3, 8, 8)


def test_imagenet100_class_list_and_folder(tmp_path, cache, monkeypatch):
    wnids = D.imagenet100_classes()
    assert len(wnids) == 100 == len(set(wnids))
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert wnids[:3] == ["n02869837", "n01749939", "n02488291"]  # CMC's imagenet100.txt order
    root = tmp_path / "imagenet"
    for w in wnids + ["n99999999"]:                               # one extra class to ignore
        d = root / "val" / w
        d.mkdir(parents=True)
        Image.new("RGB", (10, 7), (1, 2, 3)).save(d / "x.JPEG")
    monkeypatch.setenv("CL_LIB_WORKERS", "1")
    x, y, classes = D.load_dataset("imagenet100", split="val", root=root, image_size=6)
    assert classes == sorted(wnids) and x.shape == (100, 3, 6, 6) and y.tolist() == list(range(100))
    # split "test" (what train() evaluates on) is the val/ folder: ImageNet has no labelled test set
    xt, yt, _ = D.load_dataset("imagenet100", split="test", root=root, image_size=4)
    assert xt.shape == (100, 3, 4, 4) and torch.equal(yt, y)
    with pytest.raises(ValueError, match="splits"):
        D.load_dataset("imagenet100", split="unlabeled", root=root, image_size=4)
    (root / "val" / wnids[5] / "x.JPEG").unlink()
    (root / "val" / wnids[5]).rmdir()
    with pytest.raises(ValueError, match="missing"):
        D.load_dataset("imagenet100", split="val", root=root, image_size=5)
    monkeypatch.delenv("CL_LIB_IMAGENET", raising=False)
    with pytest.raises(FileNotFoundError, match="CL_LIB_IMAGENET"):
        D.load_dataset("imagenet100")


def test_torchvision_offline_error_and_conversion(tmp_path, cache, monkeypatch):
    import torchvision.datasets as tvd

    class Offline:
        def __init__(self, root, train=True, download=False, **kw):
            raise RuntimeError("Dataset not found" if not download else "<urlopen error no network>")

    monkeypatch.setattr(tvd, "CIFAR100", Offline)
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        D.load_dataset("cifar100", root=tmp_path / "tv")

    class FakeCIFAR:
        def __init__(self, root, train=True, download=False, **kw):
            self.data = np.arange(2 * 32 * 32 * 3, dtype=np.uint8).reshape(2, 32, 32, 3)
            self.targets = [3, 1]
            self.classes = [f"c{i}" for i in range(10)]

    monkeypatch.setattr(tvd, "CIFAR100", FakeCIFAR)
    x, y, classes = D.load_dataset("cifar100", split="test", root=tmp_path / "tv")
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 1]
    assert int(x[0, 1, 0, 0]) == 1 and int(x[0, 0, 0, 1]) == 3     # HWC -> CHW
    with pytest.raises(ValueError, match="splits"):
        D.load_dataset("stl10", split="validation", root=tmp_path / "tv")


def test_unknown_name_and_bad_subset(cache):
    with pytest.raises(ValueError, match="unknown data set"):
        D.load_dataset("mnist")
    with pytest.raises(ValueError, match="subset"):
        D.load_dataset("cifar10", subset=0)


# ---------------------------------------------------------------------------------------------
# class-balanced subsets
# ---------------------------------------------------------------------------------------------
def test_balanced_subset():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 5 + [3] * 15)
    idx = D.balanced_subset(labels, 41, seed=3)
    counts = torch.bincount(labels[idx], minlength=4).tolist()
    assert sum(counts) == 41 and counts[2] == 5                  # small class exhausted
    assert max(counts) - min(c for c in counts if c != 5) <= 1  # the others balanced
    assert torch.equal(idx, D.balanced_subset(labels, 41, seed=3))
    assert not torch.equal(idx, D.balanced_subset(labels, 41, seed=4))
    assert torch.equal(idx, idx.sort().values) and idx.unique().numel() == 41
    with pytest.raises(ValueError, match="subset"):
        D.balanced_subset(labels, 101)


def test_subset_through_load_dataset(tmp_path, cache):
    arc = make_archive(tmp_path / "toy.tar.gz", per_class=10)
    x, y, _ = D.load_dataset(f"imagefolder:{arc}", subset=7, seed=1)
    assert x.shape[0] == 7 and sorted(torch.bincount(y).tolist()) == [2, 2, 3]


# ---------------------------------------------------------------------------------------------
# the real archive (only when CL_LIB_DATA has it)
# ---------------------------------------------------------------------------------------------
def test_real_cifar10_test_split(tmp_path, monkeypatch):
    d = D.data_dir()
    if d is None or not (d / "cifar10-jpeg.tar.gz").is_file():
        pytest.skip("set CL_LIB_DATA to the folder with cifar10-jpeg.tar.gz to run this test")
    monkeypatch.setenv("CL_LIB_CACHE", str(tmp_path / "cache"))
    x, y, classes = D.load_dataset("cifar10", split="test", subset=1000, seed=0)
    assert classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert x.shape == (1000, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [100] * 10
    m = x.float().mean(dim=(0, 2, 3)) / 255                        # CIFAR-10 channel means ~ (.49, .48, .45)
    assert torch.allclose(m, torch.tensor([0.49, 0.48, 0.45]), atol=0.03)
    full = D.load_dataset("cifar10", split="test")[1]             # the cache has the whole split
    assert torch.bincount(full).tolist() == [1000] * 10


# ---------------------------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------------------------
def toy_split(n=50, size=8):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8), torch.arange(n) % 5


def collect(loader):
    return [(torch.stack(v), y) for v, y in loader]


@pytest.mark.parametrize("device", DEVICES)
def test_gpu_loader_epoch_covers_split_and_is_deterministic(device):
    x, y = toy_split()
    aug = SimCLRAugment(size=8, mean=None, std=None)
    a = D.gpu_loader(x, torch.arange(50), 16, aug, n_views=3, seed=1, device=device)
    assert len(a) == 3
    batches = collect(a)
    assert len(batches) == 3 and batches[0][0].shape == (3, 16, 3, 8, 8)
    assert batches[0][0].device.type == device and batches[0][1].dtype == torch.int64
    seen = torch.cat([b[1] for b in batches]).cpu()
    assert seen.unique().numel() == 48                            # no repeats; 2 dropped
    assert not torch.allclose(batches[0][0][0], batches[0][0][1])  # views differ
    assert a.epoch == 1                           # advanced after the pass
    again = collect(D.gpu_loader(x, torch.arange(50), 16, aug, n_views=3, seed=1, device=device))
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(batches, again))
    epoch1 = collect(a)
    assert not torch.equal(epoch1[0][1], batches[0][1])           # a new order next epoch


def test_gpu_loader_replays_any_epoch():
    """The trainer resumes at epoch boundaries: epoch e is a function of (seed, e) alone."""
    x, y = toy_split(64)
    aug = SimCLRAugment(size=6, mean=None, std=None)
    ref = D.gpu_loader(x, y, 8, aug, seed=7)
    for _ in range(2):
        collect(ref)
    third = collect(ref)                                      # epochs 0, 1, then 2
    replay = collect(D.gpu_loader(x, y, 8, aug, seed=7, epoch=2))
    for p, q in zip(third, replay):
        assert torch.equal(p[0], q[0]) and torch.equal(p[1], q[1])
    other = collect(D.gpu_loader(x, y, 8, aug, seed=8, epoch=2))
    assert not torch.equal(other[0][1], third[0][1])


def test_gpu_loader_options_and_errors():
    x, y = toy_split(10)
    plain = collect(D.gpu_loader(x, y, 4, None, n_views=1, shuffle=False, drop_last=False))
    assert [b[1].tolist() for b in plain] == [[0, 1, 2, 3], [4, 0, 1, 2], [3, 4]]
    assert torch.equal(plain[0][0][0], to_float(x[:4]))
    with pytest.raises(ValueError, match="batch_size"):
        D.gpu_loader(x, y, 11, None)
    with pytest.raises(ValueError, match="labels"):
        D.gpu_loader(x, y[:5], 2, None)
