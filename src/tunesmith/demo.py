"""The embedded default: the packaged MiniLM on the packaged drug-review data.

Settings differ from the stock Hugging Face defaults on purpose: with lr 5e-5, 3 epochs and no class
weights the model predicts almost only the majority class (macro-F1 about 0.26). Class-weighted loss and a
higher learning rate are what the training doctor recommends for that failure.
"""

from __future__ import annotations

import copy
from pathlib import Path
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


# The language-model demo: SmolLM2 adapted with LoRA to the drug reviews as domain text, sized to finish in
# about ten minutes on two CPU cores (160 training reviews cut at 128 tokens, one epoch). Perplexity before
# (epoch 0) and after on held-out reviews and on general dialogue text (the retain set), and generations.
LM_DEMO_SIZES = {"train": 160, "validation": 48, "test": 64, "retain": 64}
LM_DEMO_RECIPE: dict[str, Any] = {
    "task": "causal-lm",
    "model": {"name": "smollm2", "max_length": 128},
    "strategy": {
        "name": "lora",
        "r": 8,
        "alpha": 16,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    },
    "train": {"epochs": 1, "batch_size": 8, "lr": 5.0e-4, "log_every": 2},
    "eval": {"samples": 4, "batch_size": 8},
    "output": {"dir": "runs", "name": "demo-lm"},
}


def lm_demo_recipe(data_dir: Path) -> dict[str, Any]:
    """LM_DEMO_RECIPE with its data files written (atomically, once) under `data_dir`."""
    from tunesmith.data.lm_demo import demo_corpus, demo_retain_text
    from tunesmith.fileio import write_text_atomic

    n = LM_DEMO_SIZES
    train = demo_corpus("train")
    frames = {
        "train": train.iloc[: n["train"]],
        "validation": train.iloc[n["train"] : n["train"] + n["validation"]],
        "test": demo_corpus("test").iloc[: n["test"]],
        "retain": demo_retain_text().iloc[: n["retain"]],
    }
    paths = {}
    for name, frame in frames.items():
        paths[name] = data_dir / f"{name}.jsonl"
        write_text_atomic(paths[name], frame.to_json(orient="records", lines=True, force_ascii=False))
    recipe = copy.deepcopy(LM_DEMO_RECIPE)
    recipe["data"] = {k: str(paths[k]) for k in ("train", "validation", "test")}
    recipe["forgetting"] = {"retain": str(paths["retain"])}
    return recipe
