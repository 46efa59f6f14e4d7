"""``python -m cl_lib.data fetch NAME``, offline: the download step is replaced by a
small fake of the public source's layout, and the archive it builds is read back the way
the chapters read it (``cl_lib.data.load_dataset``)."""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cl_lib import data, fetch

TAB = chr(9)


def _jpeg(size: tuple[int, int], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def _add(tar: tarfile.TarFile, path: str, payload: bytes) -> None:
    info = tarfile.TarInfo(path)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def fake_tiny_imagenet(path: Path) -> None:
    """tiny-imagenet-200.zip's layout: 3 classes, 4 train and 2 val images each."""
    wnids = ["n01443537", "n01629819", "n01641577"]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tiny-imagenet-200/wnids.txt", "\n".join(wnids) + "\n")
        z.writestr(
            "tiny-imagenet-200/words.txt",
            "".join(f"{w}{TAB}thing {w}\n" for w in wnids),
        )
        notes = []
        for c, w in enumerate(wnids):
            for i in range(4):
                z.writestr(
                    f"tiny-imagenet-200/train/{w}/images/{w}_{i}.JPEG",
                    _jpeg((64, 64), 10 * c + i),
                )
            z.writestr(f"tiny-imagenet-200/train/{w}/{w}_boxes.txt", "")
            for i in range(2):
                name = f"val_{2 * c + i}.JPEG"
                z.writestr(
                    f"tiny-imagenet-200/val/images/{name}",
                    _jpeg((64, 64), 100 + 2 * c + i),
                )
                notes.append(TAB.join([name, w, "0", "0", "63", "63"]))
        z.writestr("tiny-imagenet-200/val/val_annotations.txt", "\n".join(notes) + "\n")
        z.writestr("tiny-imagenet-200/test/images/test_0.JPEG", _jpeg((64, 64), 999))


def fake_imagenette(path: Path) -> None:
    """imagenette2-160.tgz's layout: 2 classes, photos of different sizes."""
    with tarfile.open(path, "w:gz") as tar:
        for split, n in (("train", 3), ("val", 2)):
            for c, w in enumerate(["n01440764", "n02102040"]):
                for i in range(n):
                    _add(
                        tar,
                        f"imagenette2-160/{split}/{w}/ILSVRC_{c}{i}.JPEG",
                        _jpeg((160 + 40 * i, 160), c + i),
                    )
        _add(tar, "imagenette2-160/noisy_imagenette.csv", b"path,label\n")


def fake_cifar10(path: Path) -> None:
    """cifar-10-python.tar.gz's layout: two training batches and a test batch."""
    rng = np.random.default_rng(0)
    classes = ["airplane", "automobile", "bird"]
    with tarfile.open(path, "w:gz") as tar:
        meta = {"label_names": classes, "num_vis": 3072}
        _add(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta))
        for name, n in (("data_batch_1", 6), ("data_batch_2", 6), ("test_batch", 3)):
            batch = {
                "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                "labels": [i % 3 for i in range(n)],
            }
            _add(tar, f"cifar-10-batches-py/{name}", pickle.dumps(batch))


FAKES = {
    "tiny-imagenet-32": (
        fake_tiny_imagenet,
        {"train": 12, "val": 6},
        3,
        ("train", "val"),
        32,
    ),
    "imagenette-96": (fake_imagenette, {"train": 6, "val": 4}, 2, ("train", "val"), 96),
    "cifar10-jpeg": (fake_cifar10, {"train": 12, "test": 3}, 3, ("train", "test"), 32),
}


@pytest.fixture
def offline(monkeypatch):
    """Replace the download with the fake of each source; record what was asked."""
    asked = []

    def download(url, dest, md5=None):
        asked.append(url)
        name = next(n for n, s in fetch.SOURCES.items() if s.url == url)
        FAKES[name][0](dest)
        return dest

    monkeypatch.setattr(fetch, "_download", download)
    return asked


@pytest.mark.parametrize("name", sorted(FAKES))
def test_fetch_builds_an_archive_the_chapters_read(
    name, offline, tmp_path, monkeypatch
):
    _, counts, n_classes, splits, side = FAKES[name]
    dest = tmp_path / "data"
    monkeypatch.setenv("CL_LIB_DATA", str(dest))
    assert data.main(["fetch", name]) == 0
    archive = dest / f"{name}.tar.gz"
    assert offline == [fetch.SOURCES[name].url]
    assert sorted(p.name for p in dest.iterdir()) == [archive.name]  # nothing left over
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert all(n.startswith(f"{name}/") for n in names)
    if name == "tiny-imagenet-32":
        assert f"{name}/wnids.txt" in names and f"{name}/words.txt" in names
        assert not any("/test/" in n for n in names)
    # the chapters' loader, through CL_LIB_DATA, by the data set's name
    key = {"cifar10-jpeg": "cifar10"}.get(name, name)
    for split in splits:
        images, labels, classes = data.load_dataset(
            key, split, cache_dir=tmp_path / "c"
        )
        assert images.shape == (counts[split], 3, side, side)
        assert len(classes) == n_classes and labels.unique().numel() == n_classes


def test_fetch_val_images_go_to_their_annotated_class(offline, tmp_path):
    archive = fetch.fetch("tiny-imagenet-32", dest=tmp_path)
    with tarfile.open(archive) as tar:
        val = sorted(n for n in tar.getnames() if "/val/" in n)
    assert val[0] == "tiny-imagenet-32/val/n01443537/val_0.JPEG"
    assert "tiny-imagenet-32/val/n01641577/val_5.JPEG" in val


def test_fetch_keeps_an_existing_archive_unless_forced(offline, tmp_path):
    (tmp_path / "cifar10-jpeg.tar.gz").write_bytes(b"old")
    assert data.main(["fetch", "cifar10-jpeg", "--dest", str(tmp_path)]) == 1
    assert (tmp_path / "cifar10-jpeg.tar.gz").read_bytes() == b"old"
    assert data.main(["fetch", "cifar10-jpeg", "--dest", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "cifar10-jpeg.tar.gz").read_bytes() != b"old"


def test_a_failed_fetch_leaves_nothing(monkeypatch, tmp_path):
    def broken(url, dest, md5=None):
        dest.write_bytes(b"not a zip")
        return dest

    monkeypatch.setattr(fetch, "_download", broken)
    with pytest.raises(Exception):
        fetch.fetch("tiny-imagenet-32", dest=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_fetch_needs_a_destination(monkeypatch):
    monkeypatch.delenv("CL_LIB_DATA", raising=False)
    assert data.main(["fetch", "imagenette-96"]) == 1
