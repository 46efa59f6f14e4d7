"""Build the image archives the book reads, from their public sources.

``python -m cl_lib.data fetch NAME [--dest DIR]`` downloads the public source of
``NAME`` and writes ``NAME.tar.gz`` into ``DIR`` (default ``$CL_LIB_DATA``): a gzipped
tar of the ImageFolder tree ``NAME/<split>/<class>/<image>`` that
:func:`cl_lib.data.load_dataset` reads.

==================  ===========================================  ======================
name                source                                       archive
==================  ===========================================  ======================
``tiny-imagenet-32``  Tiny-ImageNet-200's official zip (Stanford   ``train``, ``val``
                    CS231n), 64 px                               (val sorted into class
                                                                 folders from the
                                                                 official annotations),
                                                                 32x32 JPEG, plus
                                                                 ``wnids.txt`` and
                                                                 ``words.txt``
``imagenette-96``   fast.ai's ``imagenette2-160.tgz`` (the       ``train``, ``val``,
                    archive ``torchvision.datasets.Imagenette``  96x96 JPEG (shorter
                    downloads, official split)                   side to 96, bicubic,
                                                                 centre crop)
``cifar10-jpeg``    CIFAR-10's python batches (the archive       ``train``, ``test``,
                    ``torchvision.datasets.CIFAR10`` downloads)  JPEG quality 75, one
                                                                 folder per class
==================  ===========================================  ======================

The archive is written to a temporary file next to its destination, read back with
:func:`cl_lib.data.read_archive_split` (every split decodes, the classes are those of
the source, the image counts are those written), and only then renamed into place
(``os.replace``), so an interrupted or failed fetch never leaves a partial archive.
Downloads are checked against their published MD5 where one is known.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

TAB = chr(9)  # the field separator of val_annotations.txt
# (class folder, file name, encoded image or an array to encode)
Item = tuple[str, str, "bytes | np.ndarray"]


@dataclass(frozen=True)
class Source:
    url: str
    md5: str | None
    splits: tuple[str, ...]
    # the published image counts per split (a fetch that finds others says so)
    counts: dict[str, int]
    classes: int


SOURCES: dict[str, Source] = {
    "tiny-imagenet-32": Source(
        "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
        None,
        ("train", "val"),
        {"train": 100_000, "val": 10_000},
        200,
    ),
    "imagenette-96": Source(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
        "e793b78cc4c9e9a4ccc0c1155377a412",
        ("train", "val"),
        {"train": 9_469, "val": 3_925},
        10,
    ),
    "cifar10-jpeg": Source(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        ("train", "test"),
        {"train": 50_000, "test": 10_000},
        10,
    ),
}


# --------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------
def _download(url: str, dest: Path, md5: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (through a temporary file) and check its MD5."""
    tmp = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    print(f"downloading {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
        total = int(r.headers.get("Content-Length") or 0)
        done = 0
        while chunk := r.read(1 << 20):
            f.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if total:
                print(
                    f"\r  {done / 1e6:.0f} / {total / 1e6:.0f} MB",
                    end="",
                    file=sys.stderr,
                )
    print(file=sys.stderr)
    if md5 is not None and digest.hexdigest() != md5:
        tmp.unlink()
        raise ValueError(
            f"{url}: MD5 {digest.hexdigest()} is not the published {md5} "
            "(a truncated or changed download); try again"
        )
    os.replace(tmp, dest)
    return dest


# --------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------
def _square(data: bytes | np.ndarray, size: int | None, quality: int) -> bytes:
    """Encode one image as RGB JPEG; with ``size``, shorter side to ``size`` (bicubic,
    antialiased) and a central square crop."""
    from PIL import Image

    im = (
        Image.fromarray(data)
        if isinstance(data, np.ndarray)
        else Image.open(io.BytesIO(data))
    )
    im = im.convert("RGB")
    if size is not None and im.size != (size, size):
        w, h = im.size
        s = size / min(w, h)
        nw, nh = max(size, round(w * s)), max(size, round(h * s))
        im = im.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _tiny_imagenet(download: Path) -> Iterator[tuple[str, Item]]:
    with zipfile.ZipFile(download) as z:
        names = z.namelist()
        top = names[0].split("/")[0]
        wnids = z.read(f"{top}/wnids.txt").decode().split()
        for extra in ("wnids.txt", "words.txt"):
            if f"{top}/{extra}" in names:
                yield "", ("", extra, z.read(f"{top}/{extra}"))
        for name in sorted(names):
            parts = name.split("/")
            # train/<wnid>/images/<file>
            if len(parts) == 5 and parts[1] == "train" and parts[3] == "images":
                if parts[2] in wnids and parts[4].lower().endswith(".jpeg"):
                    yield "train", (parts[2], parts[4], z.read(name))
        annotations = z.read(f"{top}/val/val_annotations.txt").decode().splitlines()
        for line in sorted(annotations):
            fields = line.split(TAB)
            if len(fields) >= 2:
                yield (
                    "val",
                    (fields[1], fields[0], z.read(f"{top}/val/images/{fields[0]}")),
                )


def _imagenette(download: Path) -> Iterator[tuple[str, Item]]:
    with tarfile.open(download, "r:gz") as tar:
        for m in tar:
            parts = Path(m.name).parts
            # imagenette2-160/<split>/<wnid>/<file>
            if m.isfile() and len(parts) == 4 and parts[1] in ("train", "val"):
                if parts[3].lower().endswith((".jpeg", ".jpg", ".png")):
                    f = tar.extractfile(m)
                    yield parts[1], (parts[2], parts[3], f.read())


def _cifar10(download: Path) -> Iterator[tuple[str, Item]]:
    batches, meta = {}, None
    with tarfile.open(download, "r:gz") as tar:
        for m in tar:
            name = Path(m.name).name
            if m.isfile() and (name.startswith(("data_batch_", "test_batch"))):
                batches[name] = pickle.load(tar.extractfile(m), encoding="latin1")
            elif m.isfile() and name == "batches.meta":
                meta = pickle.load(tar.extractfile(m), encoding="latin1")
    if meta is None or not batches:
        raise ValueError(f"{download} has no CIFAR-10 python batches")
    classes = meta["label_names"]
    for split, keys in (
        ("train", sorted(k for k in batches if k.startswith("data_batch_"))),
        ("test", ["test_batch"]),
    ):
        seen = [0] * len(classes)
        for key in keys:
            b = batches[key]
            images = np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            for x, y in zip(images.transpose(0, 2, 3, 1), b["labels"]):
                yield split, (classes[y], f"{seen[y]:04d}.jpg", x)
                seen[y] += 1


# name -> (read the download, image side, JPEG quality)
READERS: dict[str, tuple[Callable[[Path], Iterator], int | None, int]] = {
    "tiny-imagenet-32": (_tiny_imagenet, 32, 90),
    "imagenette-96": (_imagenette, 96, 85),
    "cifar10-jpeg": (_cifar10, None, 75),
}


# --------------------------------------------------------------------------------------
# the archive
# --------------------------------------------------------------------------------------
def _add(tar: tarfile.TarFile, path: str, data: bytes) -> None:
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def build_archive(name: str, download: Path, out: Path) -> dict[str, dict]:
    """Write ``out`` (a .tar.gz of ``name/<split>/<class>/<image>``) from the downloaded
    source; returns per split the number of images and the class folders written."""
    read, size, quality = READERS[name]
    written: dict[str, dict] = {}
    with tarfile.open(out, "w:gz") as tar:
        for split, (cls, fname, data) in read(download):
            if not split:  # a file at the top (wnids.txt, words.txt)
                _add(tar, f"{name}/{fname}", data)
                continue
            stem = fname.rsplit(".", 1)[0]
            ext = ".jpg" if name == "cifar10-jpeg" else ".JPEG"
            _add(tar, f"{name}/{split}/{cls}/{stem}{ext}", _square(data, size, quality))
            entry = written.setdefault(split, {"images": 0, "classes": set()})
            entry["images"] += 1
            entry["classes"].add(cls)
    return written


def verify(name: str, archive: Path, written: dict[str, dict]) -> list[str]:
    """Read every split back with :mod:`cl_lib.data`; raise if it differs from what was
    written. Returns notes (image counts other than the published ones)."""
    from cl_lib.data import read_archive_split

    source, notes = SOURCES[name], []
    for split in source.splits:
        if split not in written:
            raise ValueError(f"{name}: the source gave no {split!r} images")
        images, labels, classes = read_archive_split(archive, split, workers=1)
        side = READERS[name][1] or 32
        if tuple(images.shape[1:]) != (3, side, side):
            raise ValueError(f"{name}/{split}: images {tuple(images.shape)}")
        if len(images) != written[split]["images"]:
            raise ValueError(
                f"{name}/{split}: read {len(images)} images, wrote "
                f"{written[split]['images']}"
            )
        if sorted(classes) != sorted(written[split]["classes"]):
            raise ValueError(f"{name}/{split}: the classes read back differ")
        if labels.unique().numel() != len(classes):
            raise ValueError(f"{name}/{split}: some class has no image")
        if len(images) != source.counts[split] or len(classes) != source.classes:
            notes.append(
                f"{split}: {len(images)} images in {len(classes)} classes (the "
                f"published data set has {source.counts[split]} in {source.classes})"
            )
    return notes


def fetch(
    name: str,
    dest: str | Path | None = None,
    force: bool = False,
    download_dir: str | Path | None = None,
) -> Path:
    """Download, build, verify and place ``<dest>/<name>.tar.gz``; returns its path.

    Args:
        name: one of :data:`SOURCES`.
        dest: the folder (default ``$CL_LIB_DATA``).
        force: replace an existing archive.
        download_dir: keep the download there (default: a temporary folder, removed).

    Returns:
        The archive's path.
    """
    from cl_lib.data import data_dir

    if name not in SOURCES:
        raise ValueError(f"unknown archive {name!r}; choose from {sorted(SOURCES)}")
    folder = Path(dest).expanduser() if dest is not None else data_dir()
    if folder is None:
        raise ValueError("say where to write the archive: --dest DIR or CL_LIB_DATA")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.tar.gz"
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists (--force replaces it)")
    source = SOURCES[name]
    scratch = tempfile.mkdtemp(prefix=f".{name}-", dir=folder)
    try:
        where = Path(download_dir).expanduser() if download_dir else Path(scratch)
        where.mkdir(parents=True, exist_ok=True)
        download = where / source.url.rsplit("/", 1)[-1]
        if not download.exists():
            _download(source.url, download, source.md5)
        tmp = Path(scratch) / f"{name}.tar.gz"
        print(f"building {name} from {download.name}", file=sys.stderr)
        written = build_archive(name, download, tmp)
        print(f"verifying {tmp.name}", file=sys.stderr)
        for note in verify(name, tmp, written):
            print(f"note: {note}", file=sys.stderr)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m cl_lib.data fetch NAME [--dest DIR] [--force] [--download-dir D]``;
    exit status 0 once the archive is in place."""
    p = argparse.ArgumentParser(
        prog="python -m cl_lib.data",
        description="Build an image archive the book reads from its public source.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download, build and verify NAME.tar.gz")
    f.add_argument("name", choices=sorted(SOURCES))
    f.add_argument("--dest", help="folder for the archive (default: $CL_LIB_DATA)")
    f.add_argument("--force", action="store_true", help="replace an existing archive")
    f.add_argument("--download-dir", help="keep the download here (default: removed)")
    args = p.parse_args(argv)
    try:
        path = fetch(args.name, args.dest, args.force, args.download_dir)
    except (ValueError, FileExistsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0
