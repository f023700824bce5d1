"""The embedded default: the packaged MiniLM on the packaged drug-review data.

Settings differ from the stock Hugging Face defaults on purpose: with lr 5e-5, 3 epochs and no class
weights the model predicts almost only the majority class (macro-F1 about 0.26). Class-weighted loss and a
higher learning rate are what the training doctor recommends for that failure.
"""

from __future__ import annotations

from typing import Any

DEMO_RECIPE: dict[str, Any] = {
    "model": "minilm",
    "data": {
        "train": "builtin:drugreview/train",
        "test": "builtin:drugreview/test",
        "text": "review",
        "label": "rating",
        "group": "condition",
    },
    "train": {"epochs": 5, "batch_size": 16, "lr": 1.0e-4, "class_weights": True},
    "output": {"dir": "runs", "name": "demo"},
}
