"""The embedded EfficientNet-Lite0 (converted once to safetensors) learns the embedded digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config.loader import recipe_from_dict
from tunesmith.data.image_demo import export_image_demo
from tunesmith.models.vision import convert_efficientnet
from tunesmith.run import run

pytestmark = pytest.mark.slow


def test_efficientnet_lite0_fine_tunes_on_digits(tmp_path: Path) -> None:
    cached = convert_efficientnet("efficientnet-lite0")
    assert (cached / "model.safetensors").is_file() and not list(cached.glob("*.pth"))
    data = export_image_demo(tmp_path / "digits", train_per_class=20)
    recipe = {
        "task": "image-classification",
        "model": {"name": "efficientnet-lite0", "image_size": 32},
        "data": {"train": str(data["train"]), "augment": {"ops": ["crop", "rotate"]}},
        "strategy": "discriminative",
        "train": {"epochs": 3, "batch_size": 16, "lr": 2e-3, "precision": "fp32"},
        "audit": {"label_errors": False},
        "output": {"dir": str(tmp_path / "runs"), "name": "digits"},
    }
    result = run(recipe_from_dict(recipe), quiet=True)
    assert result.metrics["validation"]["accuracy"] >= 0.3  # ten classes: chance is 0.1 (0.43 measured)
    assert (result.run_dir / "model" / "model.safetensors").is_file()


def test_lora_on_efficientnet_lite0_learns_digits_and_saves_a_merged_model(tmp_path: Path) -> None:
    """PEFT LoRA wraps the real network's 1x1 convolutions; model/ is merged and predicts what the run did."""
    import json

    from tunesmith.predict import predict

    data = export_image_demo(tmp_path / "digits", train_per_class=20)
    recipe = {
        "task": "image-classification",
        "model": {"name": "efficientnet-lite0", "image_size": 32},
        "data": {"train": str(data["train"])},
        "strategy": {"name": "lora", "r": 8},
        "train": {"epochs": 3, "batch_size": 16, "lr": 5e-3, "precision": "fp32"},
        "audit": {"gate": "off"},
        "eval": {"suite": []},
        "output": {"dir": str(tmp_path / "runs"), "name": "lora"},
    }
    result = run(recipe_from_dict(recipe), quiet=True)
    assert result.metrics["trainable_pct"] < 25
    assert result.metrics["validation"]["accuracy"] >= 0.2  # ten classes: chance is 0.1
    rows = [json.loads(line) for line in (result.run_dir / "predictions" / "validation.jsonl").open()]
    got = predict(result.run_dir, [r["text"] for r in rows], calibrated=False)
    assert [g["label"] for g in got] == [r["pred"] for r in rows]
