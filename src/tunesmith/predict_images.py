"""Images after training: load an image run's model, predict files, folders or a CSV of paths.

`tunesmith predict RUN_DIR` and `tunesmith evaluate RUN_DIR` come here for image-classification runs; the
evaluation suite's image checks see the model only through `image_predictor` (paths -> probabilities), as
the text checks see theirs through a text predictor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from tunesmith.data.image_ops import load_image, normalise
from tunesmith.data.images import IMAGE_SUFFIXES
from tunesmith.errors import UserError
from tunesmith.models.vision import ImageModelInfo, load_image_classifier, model_info

IMAGE_TASK = "image-classification"


@dataclass
class ImageModel:
    model: torch.nn.Module
    info: ImageModelInfo
    labels: list[str]
    model_dir: Path


def load_image_run(model_dir: Path) -> ImageModel:
    """The trained classifier in model/ in eval mode (lora runs are saved merged; bottleneck adapters are
    put back on the saved weights from model/adapter/)."""
    from tunesmith.export import _labels
    from tunesmith.strategies import adapter as bottleneck

    labels = _labels(model_dir)
    info = model_info(model_dir, None)
    model = load_image_classifier(model_dir, labels, seed=0, image_size=info.image_size)
    adapter_config = model_dir / "adapter" / "adapter_config.json"
    if (
        adapter_config.exists()
        and json.loads(adapter_config.read_text()).get("adapter_type") == bottleneck.ADAPTER_TYPE
    ):
        model = bottleneck.load_adapter(model, model_dir / "adapter")
    return ImageModel(model.eval(), info, labels, model_dir)


def read_pixels(path: str, size: int, where: str) -> torch.Tensor:
    """uint8 [3, size, size] of one image; UserError naming the file when it is missing or unreadable."""
    if not Path(path).is_file():
        raise UserError(f"{where}: {path} does not exist; check the path.")
    try:
        return load_image(path, size)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{where}: image {path} cannot be decoded ({type(exc).__name__}: {exc}); "
                        "replace or remove the file.") from None  # fmt: skip


def pixel_probs(loaded: ImageModel, pixels: torch.Tensor, batch_size: int = 32) -> np.ndarray:
    """Class probabilities [n, K] of uint8 [n, 3, S, S] images."""
    model, info = loaded.model, loaded.info
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(pixels), batch_size):
            x = normalise(pixels[start : start + batch_size], info.mean, info.std).to(device)
            out.append(torch.softmax(model(pixel_values=x).logits.float(), dim=-1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(loaded.labels)))


def image_predictor(loaded: ImageModel, batch_size: int = 32) -> Callable[[list[str]], np.ndarray]:
    """The suite's predict function for images: paths -> probabilities (decoded, resized, normalised)."""

    def predict(paths: list[str]) -> np.ndarray:
        size = loaded.info.image_size
        if not paths:
            return np.zeros((0, len(loaded.labels)))
        return pixel_probs(loaded, torch.stack([read_pixels(p, size, "predict") for p in paths]), batch_size)

    return predict


def expand_inputs(items: list[str], column: str = "path") -> list[str]:
    """Image paths from the arguments: image files, folders (every image below them, sorted) and CSV / TSV /
    JSONL / Parquet files with a path column (paths relative to that file)."""
    paths: list[str] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(str(p.resolve()) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UserError(f"predict: {item} holds no images ({', '.join(IMAGE_SUFFIXES)}); pass image "
                                "files, a folder of images or a CSV with a path column.")  # fmt: skip
            paths += found
        elif path.suffix.lower() in (".csv", ".tsv", ".jsonl", ".parquet"):
            paths += _listed(path, column)
        elif not path.is_file():
            raise UserError(f"predict: {item} does not exist; pass image files, a folder or a CSV of paths.")
        else:
            paths.append(str(path.resolve()))
    if not paths:
        raise UserError("predict: no images given; pass image files, a folder of images or a CSV of paths.")
    return paths


def _listed(path: Path, column: str) -> list[str]:
    from tunesmith.data.loaders import read_raw

    if not path.is_file():
        raise UserError(f"predict: {path} does not exist; check the path.")
    raw = read_raw(str(path), "predict")
    if column not in [str(c) for c in raw.columns]:
        raise UserError(f"predict: {path} has no '{column}' column (columns: "
                        f"{', '.join(map(str, raw.columns))}); name the image paths '{column}'.")  # fmt: skip
    out = []
    for row, value in enumerate(raw[column].tolist()):
        file = (path.resolve().parent / str(value).strip()).resolve()
        if not isinstance(value, str) or not value.strip() or not file.is_file():
            raise UserError(f"predict: {path}: row {row + 1}, column '{column}': {value} does not exist "
                            f"(looked for {file}); paths are relative to the file.")  # fmt: skip
        out.append(str(file))
    return out


def predict_images(model_dir: Path, items: list[str], *, calibrated: bool = True) -> list[dict[str, Any]]:
    """Per image: the predicted label and every label's probability (highest first), as text predict."""
    from tunesmith.evaluation.suite.calibration import read_temperature

    paths = expand_inputs(items)
    size = model_info(model_dir, None).image_size
    pixels = torch.stack(
        [read_pixels(p, size, "predict") for p in paths]
    )  # every file checked before loading
    loaded = load_image_run(model_dir)
    probs = pixel_probs(loaded, pixels)
    temperature = (read_temperature(model_dir) if calibrated else None) or 1.0
    if temperature != 1.0:  # softmax(log p / T) is softmax(logits / T): the label is unchanged
        logits = np.log(np.clip(probs, 1e-12, None)) / temperature
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
    results = []
    for path, row in zip(paths, probs.tolist(), strict=True):
        ranked = sorted(zip(loaded.labels, row, strict=True), key=lambda item: -item[1])
        results.append({"text": path, "label": ranked[0][0], "probs": dict(ranked)})
    return results


def is_image_run(model_dir: Path, run_dir: Path | None) -> bool:
    from tunesmith.export import run_task

    if run_task(model_dir, run_dir) == IMAGE_TASK:
        return True
    try:  # a bare model directory: ours says so in config.json, a HF one by its preprocessor
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(config.get("tunesmith_architecture"))
