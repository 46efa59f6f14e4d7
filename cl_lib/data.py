"""Data sets as whole uint8 tensors, and loaders that keep them on the device (airbench
style).

One call gives a split, decoded once and cached::

    images, labels, classes = load_dataset("cifar10", split="train")   # (N, 3, 32, 32)
    uint8

Sources (``name``):

- ``"cifar10"``: ``cifar10-jpeg.tar.gz`` in ``$CL_LIB_DATA`` (the JPEG copy of
  CIFAR-10), else torchvision's ``CIFAR10`` (on disk, or downloaded when online);
- ``"cifar100"``, ``"stl10"``: torchvision's data sets (on disk or downloaded);
- ``"tiny-imagenet-32"``, ``"imagenette-96"``: the archives of the same names in
  ``$CL_LIB_DATA``;
- ``"imagenet100"``: an ImageNet ImageFolder tree (``root`` or ``$CL_LIB_IMAGENET``)
  restricted to the 100 classes of CMC (Tian et al. 2019) listed in
  ``cl_lib/imagenet100_classes.txt``;
- ``"imagefolder:<path>"``: any ``<path>/<split>/<class>/<image>`` tree, or a
  ``.tar.gz`` of one.

Archives are read as streams (nothing is unpacked to disk); decoded splits are cached as
``.pt`` files in ``cache_dir`` (default ``$CL_LIB_CACHE`` or ``~/.cache/cl_lib``),
written to a temporary file and moved into place with ``os.replace``, so an interrupted
run never leaves a half-written cache.

:class:`GPULoader` (``gpu_loader(...)``) keeps a split on the device as uint8 and yields
augmented float views per batch; shuffling and augmentation draw from generators seeded
by ``(seed, epoch)`` and ``(seed, epoch, batch)``, so a run is deterministic and resumes
exactly at any epoch."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import tarfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from cl_lib.augment import to_float
from cl_lib.io import save_atomic
from cl_lib.profile import mix_seed

# name -> (archive file in $CL_LIB_DATA, {split asked for: split folder in the archive})
ARCHIVES: dict[str, tuple[str, dict[str, str]]] = {
    "cifar10": ("cifar10-jpeg.tar.gz", {"train": "train", "test": "test"}),
    "tiny-imagenet-32": (
        "tiny-imagenet-32.tar.gz",
        {"train": "train", "val": "val", "test": "val"},
    ),
    "imagenette-96": (
        "imagenette-96.tar.gz",
        {"train": "train", "val": "val", "test": "val"},
    ),
}
TORCHVISION_SPLITS = {
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "stl10": ("train", "test", "unlabeled", "train+unlabeled"),
}
# the ImageNet tree: split asked for -> folder
IMAGENET100_SPLITS = {"train": "train", "val": "val", "test": "val"}
DATASETS = (
    "cifar10",
    "cifar100",
    "stl10",
    "tiny-imagenet-32",
    "imagenette-96",
    "imagenet100",
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
IMAGENET100_CLASSES_FILE = Path(__file__).with_name("imagenet100_classes.txt")
_CACHE_VERSION = 1


# --------------------------------------------------------------------------------------
# locations
# --------------------------------------------------------------------------------------
def data_dir() -> Path | None:
    """The archive directory named by env ``CL_LIB_DATA`` (None when unset).

    Returns:
        The directory, or None.
    """
    d = os.environ.get("CL_LIB_DATA", "").strip()
    return Path(d).expanduser() if d else None


def default_cache_dir() -> Path:
    """``$CL_LIB_CACHE`` or ``~/.cache/cl_lib``.

    Returns:
        The cache directory (not created here).
    """
    d = os.environ.get("CL_LIB_CACHE", "").strip()
    return Path(d).expanduser() if d else Path.home() / ".cache" / "cl_lib"


def imagenet100_classes(path: str | Path | None = None) -> list[str]:
    """The 100 ImageNet wnids of the ImageNet-100 subset (CMC, Tian et al. 2019), file
    order.

    Args:
        path: the class list (default: ``cl_lib/imagenet100_classes.txt``).

    Returns:
        100 wnid strings.
    """
    p = Path(path) if path is not None else IMAGENET100_CLASSES_FILE
    wnids = [w.strip() for w in p.read_text().split() if w.strip()]
    if len(wnids) != len(set(wnids)):
        raise ValueError(f"duplicate wnids in class list {p}")
    return wnids


# --------------------------------------------------------------------------------------
# decoding (PIL, in a process pool)
# --------------------------------------------------------------------------------------
def _decode_one(src: bytes | str, image_size: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(
        io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else src
    ) as im:
        im = im.convert("RGB")
        if image_size is not None and im.size != (image_size, image_size):
            # shorter side -> image_size (bicubic, antialiased by PIL), then a central
            # square crop
            w, h = im.size
            s = image_size / min(w, h)
            nw, nh = max(image_size, round(w * s)), max(image_size, round(h * s))
            im = im.resize((nw, nh), Image.BICUBIC)
            left, top = (nw - image_size) // 2, (nh - image_size) // 2
            im = im.crop((left, top, left + image_size, top + image_size))
        return np.array(im, dtype=np.uint8)  # a writable copy


def _decode_chunk(args: tuple[list, int | None]) -> list[np.ndarray]:
    sources, image_size = args
    return [_decode_one(s, image_size) for s in sources]


def default_workers() -> int:
    """Decoder processes: ``$CL_LIB_WORKERS`` or the number of CPU cores (at most 16).

    Returns:
        The number of decoder processes.
    """
    env = os.environ.get("CL_LIB_WORKERS", "").strip()
    return max(1, int(env)) if env else max(1, min(16, os.cpu_count() or 1))


def decode_images(
    sources: Sequence[bytes | str],
    image_size: int | None = None,
    workers: int | None = None,
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Decode encoded images (bytes) or image files (paths) into one uint8 tensor (N, 3,
    H, W).

    Uses ``workers`` processes (default :func:`default_workers`) for more than 1000
    images. All images must have the same size unless ``image_size`` is given (then each
    is resized, shorter side first, and centre-cropped to ``image_size`` x
    ``image_size``).

    Args:
        sources: N encoded images (bytes) or file paths.
        image_size: side S of the square output (None: keep the images' common size).
        workers: decoder processes.
        names: N names for error messages.

    Returns:
        (N, 3, H, W) uint8 tensor.
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    n = len(sources)
    if n == 0:
        raise ValueError("no images to decode")
    if image_size is None and all(isinstance(s, (bytes, bytearray)) for s in sources):
        fast = _decode_jpeg_batch(sources)
        if fast is not None:
            return _stack_same_size(fast, names)
    try:
        if workers == 1 or n < 1000:
            arrays = _decode_chunk((list(sources), image_size))
        else:
            n_chunks = min(n, workers * 8)
            bounds = np.linspace(0, n, n_chunks + 1).astype(int)
            chunks = [
                (list(sources[a:b]), image_size)
                for a, b in zip(bounds[:-1], bounds[1:])
            ]
            with ProcessPoolExecutor(max_workers=workers) as pool:
                arrays = [a for part in pool.map(_decode_chunk, chunks) for a in part]
    except (OSError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(
            f"could not decode an image ({e}); the source is corrupt or not an image"
        ) from e
    return _stack_same_size(
        [torch.from_numpy(a).permute(2, 0, 1) for a in arrays], names
    )


def _decode_jpeg_batch(sources: Sequence[bytes]) -> list[torch.Tensor] | None:
    """torchvision's batched libjpeg-turbo decoder (about 3x faster than PIL per image
    on one core, bit-identical output); None when some source is not a plain JPEG (then
    PIL decodes)."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg

        out = []
        for a in range(0, len(sources), 4096):
            data = [
                torch.frombuffer(bytearray(b), dtype=torch.uint8)
                for b in sources[a : a + 4096]
            ]
            out.extend(decode_jpeg(data, mode=ImageReadMode.RGB))
        return out
    except Exception:  # PNG/CMYK/corrupt data, or an old torchvision: use the PIL path
        return None


def _stack_same_size(
    images: list[torch.Tensor], names: Sequence[str] | None
) -> torch.Tensor:
    shapes = {tuple(a.shape) for a in images}
    if len(shapes) > 1:
        odd = next(i for i, a in enumerate(images) if a.shape != images[0].shape)
        where = f" (e.g. {names[odd]!s})" if names is not None else ""
        raise ValueError(
            f"images have different sizes {sorted(shapes)[:4]}{where}; "
            f"pass image_size=... to resize them to one square size"
        )
    return torch.stack(images).contiguous()


# --------------------------------------------------------------------------------------
# ImageFolder trees, on disk or inside a .tar.gz
# --------------------------------------------------------------------------------------
def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _index_by_class(
    items: list[tuple[str, str, object]], class_list: Sequence[str] | None, where: str
):
    """items: (class, file name, source). Returns sources, labels, classes in
    ImageFolder order (classes sorted, files sorted within a class)."""
    found = sorted({c for c, _, _ in items})
    if class_list is not None:
        missing = sorted(set(class_list) - set(found))
        if missing:
            raise ValueError(
                f"{len(missing)} of the {len(class_list)} listed classes are missing "
                f"in {where}, e.g. {missing[:3]}"
            )
        classes = sorted(class_list)
    else:
        classes = found
    if not classes:
        raise ValueError(f"no images found in {where} (expected <class>/<image> files)")
    index = {c: i for i, c in enumerate(classes)}
    kept = sorted((index[c], f, src) for c, f, src in items if c in index)
    sources = [src for _, _, src in kept]
    labels = torch.tensor([lab for lab, _, _ in kept], dtype=torch.int64)
    names = [f"{classes[lab]}/{f}" for lab, f, _ in kept]
    return sources, labels, classes, names


def read_image_folder(
    split_dir: str | Path,
    class_list: Sequence[str] | None = None,
    image_size: int | None = None,
    workers: int | None = None,
):
    """Decode an ImageFolder split ``split_dir/<class>/<image>`` -> (images, labels,
    classes).

    Args:
        split_dir: the split folder; class_list: class folder names in label order
        (default: sorted); image_size, workers: as :func:`decode_images`.

    Returns:
        ``(images (N, 3, H, W) uint8, labels (N,) int64, class names)``.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"image folder {split_dir} does not exist "
            f"(expected the layout <root>/<split>/<class>/<image>)"
        )
    items = [
        (cdir.name, f.name, str(f))
        for cdir in sorted(split_dir.iterdir())
        if cdir.is_dir()
        for f in sorted(cdir.iterdir())
        if f.is_file() and _is_image(f.name)
    ]
    sources, labels, classes, names = _index_by_class(items, class_list, str(split_dir))
    return decode_images(sources, image_size, workers, names), labels, classes


def read_archive_split(
    archive: str | Path,
    split: str,
    class_list: Sequence[str] | None = None,
    image_size: int | None = None,
    workers: int | None = None,
):
    """Decode split ``split`` of a gzipped tar of an ImageFolder tree
    (``[<top>/]<split>/<class>/<image>``), streaming through the archive (no unpacking
    to disk) -> (images, labels, classes).

    Args:
        archive: the ``.tar.gz``; split: the split folder name; class_list, image_size,
        workers: as :func:`read_image_folder`.

    Returns:
        ``(images (N, 3, H, W) uint8, labels (N,) int64, class names)``.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist")
    items, splits_seen = [], set()
    try:
        with open(archive, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            # tarfile's own stream mode stops silently at a truncated gzip stream;
            # GzipFile raises EOFError there and checks the CRC at the end, so read
            # through it and drain it.
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for m in tar:
                    if not m.isfile() or not _is_image(m.name):
                        continue
                    parts = Path(m.name).parts
                    if len(parts) < 3:
                        continue
                    sp, cls, fname = parts[-3], parts[-2], parts[-1]
                    splits_seen.add(sp)
                    if sp == split:
                        f = tar.extractfile(m)
                        items.append((cls, fname, f.read() if f is not None else b""))
            while gzipped and stream.read(1 << 20):
                pass
    # gzip.BadGzipFile is an OSError
    except (
        tarfile.TarError,
        EOFError,
        zlib.error,
        OSError,
    ) as e:
        raise ValueError(
            f"archive {archive} is corrupt or truncated ({type(e).__name__}: {e}); "
            f"replace it with a complete copy (checksums: SHA256SUMS next to it)"
        ) from e
    if not items:
        raise ValueError(
            f"archive {archive} has no images for split {split!r} "
            f"(splits found: {sorted(splits_seen)}; "
            "layout [<top>/]<split>/<class>/<image>)"
        )
    sources, labels, classes, names = _index_by_class(
        items, class_list, f"{archive}:{split}"
    )
    return decode_images(sources, image_size, workers, names), labels, classes


# --------------------------------------------------------------------------------------
# torchvision data sets
# --------------------------------------------------------------------------------------
def _torchvision_dataset(name: str, split: str, root: Path):
    import torchvision.datasets as tvd

    if split not in TORCHVISION_SPLITS[name]:
        raise ValueError(f"{name} has splits {TORCHVISION_SPLITS[name]}, got {split!r}")
    make = {
        "cifar10": lambda dl: tvd.CIFAR10(
            str(root), train=split == "train", download=dl
        ),
        "cifar100": lambda dl: tvd.CIFAR100(
            str(root), train=split == "train", download=dl
        ),
        "stl10": lambda dl: tvd.STL10(str(root), split=split, download=dl),
    }[name]
    try:
        ds = make(False)
    except Exception:  # not on disk: try downloading (fails offline)
        try:
            ds = make(True)
        except Exception as e:
            folder = {
                "cifar10": "cifar-10-batches-py",
                "cifar100": "cifar-100-python",
                "stl10": "stl10_binary",
            }[name]
            hint = (
                " -- or put cifar10-jpeg.tar.gz into the directory named by CL_LIB_DATA"
                if name == "cifar10"
                else ""
            )
            raise FileNotFoundError(
                f"{name} is not on disk under {root} and could not be downloaded "
                f"({type(e).__name__}: {e}). Put torchvision's extracted "
                f"'{folder}' folder "
                f"(or its archive) into {root}, or pass root=<folder holding it>{hint}."
            ) from e
    if name == "stl10":
        images = torch.from_numpy(np.ascontiguousarray(ds.data))  # (N, 3, 96, 96)
        # -1 = unlabelled
        labels = torch.as_tensor(np.asarray(ds.labels), dtype=torch.int64)
    else:
        images = (
            torch.from_numpy(np.ascontiguousarray(ds.data))
            .permute(0, 3, 1, 2)
            .contiguous()
        )
        labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return images, labels, list(ds.classes)


# --------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------
def _source_stamp(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _load_cache(path: Path, stamp: dict | None):
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        ok = obj.get("version") == _CACHE_VERSION and (
            stamp is None or obj.get("source") == stamp
        )
    except Exception:  # unreadable cache (e.g. a disk problem): rebuild it
        return None
    return (obj["images"], obj["labels"], list(obj["classes"])) if ok else None


# --------------------------------------------------------------------------------------
# the one call
# --------------------------------------------------------------------------------------
def balanced_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices (sorted) of a class-balanced random subset of size ``n``.

    Every sample gets its rank in a random permutation of its class; the subset is the
    ``n`` samples of lowest rank (ties between classes broken at random), so class
    counts differ by at most one unless a class runs out of samples.

    Args:
        labels: (N,) int labels.
        n: subset size, 1 <= n <= N.
        seed: fixes the subset.

    Returns:
        (n,) int64 indices, sorted.
    """
    N = labels.numel()
    if not 0 < n <= N:
        raise ValueError(f"subset must be in 1..{N} (the split size), got {n}")
    g = torch.Generator().manual_seed(int(seed))
    labels = labels.cpu()
    perm = torch.randperm(N, generator=g)
    lab = labels[perm]
    order = torch.argsort(lab, stable=True)  # group by class, random order inside
    sorted_lab = lab[order]
    starts = torch.searchsorted(sorted_lab, sorted_lab, right=False)
    rank = torch.empty(N, dtype=torch.float64)
    rank[order] = (torch.arange(N) - starts).double()
    # random tie-break
    key = rank + torch.rand(N, generator=g, dtype=torch.float64) * 0.5
    chosen = perm[torch.argsort(key)[:n]]
    return torch.sort(chosen).values


def _source(key, name, split, root, cache, image_size, workers):
    """Where a split comes from: ``(cache tag, source stamp, split tag, build)``, with
    ``build()`` decoding the split from its source (see :func:`load_dataset`)."""
    split_tag = split.replace("+", "-")
    if key.startswith("imagefolder:"):
        path = Path(key[len("imagefolder:") :]).expanduser()
        tag = (
            "imagefolder-" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        )
        if path.is_file():
            build = functools.partial(
                read_archive_split, path, split, None, image_size, workers
            )
            return tag, _source_stamp(path), split_tag, build
        stamp = _source_stamp(path / split) if (path / split).is_dir() else None
        build = functools.partial(
            read_image_folder, path / split, None, image_size, workers
        )
        return tag, stamp, split_tag, build
    if key == "imagenet100":
        return _imagenet100_source(split, root, image_size, workers)
    if key in ARCHIVES:
        return _archive_source(key, split, root, cache, image_size, workers)
    if key in TORCHVISION_SPLITS:
        tv_root = Path(root).expanduser() if root is not None else cache / "torchvision"
        build = functools.partial(_torchvision_dataset, key, split, tv_root)
        return key, None, split_tag, build
    raise ValueError(
        f"unknown data set {name!r}; choose from {DATASETS} or 'imagefolder:<path>'"
    )


def _imagenet100_source(split, root, image_size, workers):
    """:func:`_source` for ImageNet-100 (an ImageFolder tree of ILSVRC-2012)."""
    if root is None and not os.environ.get("CL_LIB_IMAGENET"):
        raise FileNotFoundError(
            "imagenet100 needs the ImageNet (ILSVRC-2012) ImageFolder tree: pass "
            "root=<dir with train/ and val/ of wnid folders> or set CL_LIB_IMAGENET"
        )
    base = (
        Path(root)
        if root is not None
        else Path(os.environ.get("CL_LIB_IMAGENET", "")).expanduser()
    )
    if split not in IMAGENET100_SPLITS:
        raise ValueError(
            f"imagenet100 has splits {sorted(IMAGENET100_SPLITS)}, got {split!r}"
        )
    # ImageNet has no public test labels: "test" is the val/ folder, as for the
    # archives
    split_tag = IMAGENET100_SPLITS[split]
    build = functools.partial(
        read_image_folder, base / split_tag, imagenet100_classes(), image_size, workers
    )
    return "imagenet100", None, split_tag, build


def _archive_source(key, split, root, cache, image_size, workers):
    """:func:`_source` for the offline archives (CIFAR-10 falls back to
    torchvision's copy when its archive is absent)."""
    fname, splits = ARCHIVES[key]
    base = Path(root).expanduser() if root is not None else data_dir()
    archive = base / fname if base is not None else None
    if split not in splits:
        raise ValueError(f"{key} has splits {sorted(splits)}, got {split!r}")
    if archive is not None and archive.is_file():  # "test" = the "val" folder
        build = functools.partial(
            read_archive_split, archive, splits[split], None, image_size, workers
        )
        return key, _source_stamp(archive), splits[split], build
    if key == "cifar10":  # fall back to torchvision's CIFAR-10
        tv_root = Path(root).expanduser() if root is not None else cache / "torchvision"
        build = functools.partial(_torchvision_dataset, "cifar10", split, tv_root)
        return "cifar10-torchvision", None, split.replace("+", "-"), build
    where = f"{base}" if base is not None else "$CL_LIB_DATA (unset)"
    raise FileNotFoundError(
        f"{key}: expected the archive {fname} in {where}; set the env var "
        f"CL_LIB_DATA to the directory holding {fname} (or pass root=...)"
    )


def load_dataset(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    subset: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
    workers: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load a split as ``(images uint8 (N, C, H, W), labels int64 (N,), class names)``.

    ``name``: one of :data:`DATASETS` or ``"imagefolder:<path>"`` (module docstring).
    ``root``: where the source is -- the archive directory (default ``$CL_LIB_DATA``),
    torchvision's root (default ``<cache_dir>/torchvision``), the ImageNet root with
    ``train/`` and ``val/`` (default ``$CL_LIB_IMAGENET``). ``subset=n``: a
    class-balanced random subset of ``n`` images, fixed by ``seed``
    (:func:`balanced_subset`). ``image_size``: resize + centre-crop every image to this
    square size (needed for folders of differently sized photos; ``imagenet100``
    defaults to 224). The decoded split is cached once in ``cache_dir``; later calls
    load the cache (it is rebuilt when the source archive's size or mtime changes).

    Args:
        name, split, root, cache_dir, subset, seed, image_size: as above.
        workers: decoder processes (:func:`default_workers`).

    Returns:
        ``(images (N, C, H, W) uint8, labels (N,) int64, class names)``.
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a string, got {type(name).__name__}")
    key = name.strip().lower() if not name.startswith("imagefolder:") else name
    cache = (
        Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    )
    if subset is not None and (not isinstance(subset, int) or subset <= 0):
        raise ValueError(f"subset must be a positive int or None, got {subset!r}")
    if key == "imagenet100" and image_size is None:
        image_size = 224
    size_tag = f"_{image_size}px" if image_size is not None else ""
    tag, stamp, split_tag, build = _source(
        key, name, split, root, cache, image_size, workers
    )
    cache_file = cache / f"{tag}_{split_tag}{size_tag}.pt"
    loaded = _load_cache(cache_file, stamp)
    if loaded is None:
        images, labels, classes = build()
        if image_size is not None and tuple(images.shape[-2:]) != (
            image_size,
            image_size,
        ):
            raise ValueError(
                f"{name}: images are {tuple(images.shape[-2:])}, not {image_size}px; "
                f"image_size resizes only image folders and archives"
            )
        save_atomic(
            {
                "version": _CACHE_VERSION,
                "source": stamp,
                "images": images,
                "labels": labels,
                "classes": classes,
            },
            cache_file,
        )
    else:
        images, labels, classes = loaded
    if subset is not None:
        idx = balanced_subset(labels, subset, seed)
        images, labels = images[idx], labels[idx]
    return images, labels, classes


def load_splits(
    name: str,
    subset: int | None = None,
    test_subset: int | None = None,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """A run's two splits, as the trainer uses them: class-balanced subsets drawn with
    ``seed``, where ``subset`` / ``test_subset`` are upper bounds (a split smaller than
    its subset is used whole).

    Args:
        name, root, cache_dir, seed: as :func:`load_dataset`.
        subset, test_subset: at most this many training / test images (None: all).

    Returns:
        ``(train_x (N, C, H, W) uint8, train_y (N,), test_x (M, C, H, W) uint8,
        test_y (M,), class names)``.
    """
    kw = dict(root=root, cache_dir=cache_dir, seed=seed)
    out = []
    for split, size in (("train", subset), ("test", test_subset)):
        x, y, classes = load_dataset(name, split, **kw)
        if size and size < y.numel():
            keep = balanced_subset(y, size, seed=seed)
            x, y = x[keep], y[keep]
        out += [x, y]
    return (*out, classes)


# --------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------
class GPULoader:
    """Batches of augmented views from a split held on ``device`` as uint8 (see
    :func:`gpu_loader`).

    Epoch ``e`` uses the permutation ``randperm(N)`` of a generator seeded with
    ``mix_seed(seed, e)``; batch ``k`` of epoch ``e`` is augmented with a generator
    seeded with ``mix_seed(seed, e, k, 1)`` (:func:`cl_lib.profile.mix_seed`). So the
    output depends only on ``(seed, epoch, batch)``: ``set_epoch(e)`` replays epoch
    ``e`` exactly, which is how the trainer resumes a run at an epoch boundary. Nothing
    here reads the device back to the host, so iterating never synchronises a GPU."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        augment: Callable | None,
        n_views: int = 2,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        device: torch.device | str | None = None,
        epoch: int = 0,
    ):
        if images.ndim != 4:
            raise ValueError(
                f"images must be (N, C, H, W), got shape {tuple(images.shape)}"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"labels must be (N,) with N = {images.shape[0]}, "
                f"got {tuple(labels.shape)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if drop_last and batch_size > images.shape[0]:
            raise ValueError(
                f"batch_size {batch_size} > {images.shape[0]} images with "
                f"drop_last=True gives no batches"
            )
        if n_views < 1:
            raise ValueError(f"n_views must be >= 1, got {n_views}")
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size, self.augment, self.n_views = (
            int(batch_size),
            augment,
            int(n_views),
        )
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, int(seed)
        self.set_epoch(epoch)

    def __len__(self) -> int:
        """Batches in one full epoch."""
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch``."""
        self.epoch = int(epoch)

    def permutation(self, epoch: int) -> torch.Tensor:
        """The sample order of ``epoch`` (CPU generator: the same on every device)."""
        n = self.images.shape[0]
        if not self.shuffle:
            return torch.arange(n)
        gen = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        return torch.randperm(n, generator=gen)

    def batch_generator(self, epoch: int, batch: int) -> torch.Generator:
        """
        The augmentation generator of batch ``batch`` of ``epoch`` (on the loader's
        device).
        """
        gen = torch.Generator(device=self.device)
        return gen.manual_seed(mix_seed(self.seed, epoch, batch, 1))

    def __iter__(self) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
        # non_blocking: no stream synchronisation (the CPU permutation is not reused)
        epoch = self.epoch
        perm = self.permutation(epoch).to(self.device, non_blocking=True)
        for k in range(len(self)):
            idx = perm[k * self.batch_size : (k + 1) * self.batch_size]
            x, y = self.images[idx], self.labels[idx]
            if self.augment is None:
                views = [to_float(x) for _ in range(self.n_views)]
            else:
                g = self.batch_generator(epoch, k)
                views = [self.augment(x, g) for _ in range(self.n_views)]
            yield views, y
        self.set_epoch(epoch + 1)


def gpu_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    augment: Callable | None,
    n_views: int = 2,
    shuffle: bool = True,
    drop_last: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
    epoch: int = 0,
) -> GPULoader:
    """Iterate ``(views, labels)`` batches of a split kept on the device.

    Args:
        images: (N, C, H, W) uint8 split; moved once to ``device`` and kept there.
        labels: (N,) int64 labels.
        batch_size: images per batch.
        augment: ``augment(x_uint8 (B, C, H, W), generator) -> float (B, C, H', W')``;
            ``None`` yields the images as float in [0, 1].
        n_views: augmented views per image.
        shuffle, drop_last: as for a ``DataLoader``.
        seed: seeds the data order and augmentations (see :class:`GPULoader`).
        device: default: where ``images`` are.
        epoch: the first epoch to iterate.

    Returns:
        A :class:`GPULoader`; each item is ``(views, labels)``: a list of ``n_views``
        float tensors (B, C, H', W') of the same images, and their (B,) labels.
    """
    return GPULoader(
        images,
        labels,
        batch_size,
        augment,
        n_views,
        shuffle,
        drop_last,
        seed,
        device,
        epoch,
    )


# --------------------------------------------------------------------------------------
# checks before loading
# --------------------------------------------------------------------------------------
# training-split sizes of the named data sets (imagenet100 copies differ: not listed)
TRAIN_SIZES = {
    "cifar10": 50_000,
    "cifar100": 50_000,
    "stl10": 5_000,
    "tiny-imagenet-32": 100_000,
    "imagenette-96": 9_469,
}


def train_size(name: str) -> int | None:
    """The number of training images of a data set, known without loading it: from
    :data:`TRAIN_SIZES`, or by listing an ``imagefolder:`` directory's ``train/``.

    Args:
        name: a :data:`DATASETS` name or ``"imagefolder:<path>"``.

    Returns:
        The size, or None where it is not known before loading (an archive, a missing
        folder, ``imagenet100``).
    """
    if not name.startswith("imagefolder:"):
        return TRAIN_SIZES.get(name.strip().lower())
    split = Path(name[len("imagefolder:") :]).expanduser() / "train"
    if not split.is_dir():
        return None
    return sum(
        1
        for cdir in split.iterdir()
        if cdir.is_dir()
        for f in cdir.iterdir()
        if f.is_file() and _is_image(f.name)
    )


def check_dataset(
    name: str, batch_size: int | None = None, subset: int | None = None
) -> None:
    """Check a data set name, and that a batch fits its training split (or the
    ``subset`` of it), before anything is loaded.

    Args:
        name: a :data:`DATASETS` name or ``"imagefolder:<path>"``.
        batch_size: the global batch (None: not checked).
        subset: at most this many training images (None: all).

    Returns:
        None.

    Raises:
        ValueError: one line naming the data set, or the batch and the size.
    """
    if not isinstance(name, str) or not (
        name.startswith("imagefolder:") or name.strip().lower() in DATASETS
    ):
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {list(DATASETS)} "
            f"or 'imagefolder:<path>'"
        )
    if batch_size is None:
        return
    if subset is not None and batch_size > subset:
        raise ValueError(
            f"batch_size {batch_size} exceeds the training subset of {subset} images"
        )
    n = train_size(name)
    if n is not None and batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} training images")


# --------------------------------------------------------------------------------------
# command line: python -m cl_lib.data fetch NAME
# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m cl_lib.data fetch NAME [--dest DIR]``: build ``NAME.tar.gz``
    (``tiny-imagenet-32``, ``imagenette-96``, ``cifar10-jpeg``) from its public source
    into ``$CL_LIB_DATA`` or ``DIR`` and verify it (:mod:`cl_lib.fetch`).

    Args:
        argv: the arguments (default: the command line's).

    Returns:
        The exit status, 0 once the archive is in place.
    """
    from cl_lib.fetch import main as fetch_main

    return fetch_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
