"""A tiny synthetic ImageFolder shared by the trainer, CLI and DDP tests."""
from pathlib import Path

import numpy as np
from PIL import Image


def make_image_folder(root: Path, n_train=16, n_test=8, size=16, classes=("a", "b", "c"), seed=0) -> Path:
    """<root>/{train,test}/<class>/<i>.png; class c has a bright colour channel c."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                img[..., c] += 150
                Image.fromarray(img).save(d / f"{i}.png")
    return root
