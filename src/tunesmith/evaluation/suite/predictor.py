"""The evaluation suite sees a model only through a predict function: texts -> class probabilities [n, K].

Text classification builds it from a model and tokenizer in memory (at the end of a run) or from a finished
run directory; another task plugs in by providing its own `Predictor` (and, optionally, the model and
tokenizer for the checks that need the network itself: latency and explanations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

Predictor = Callable[[list[str]], np.ndarray]


@dataclass
class ModelHandle:
    """What the suite knows of the model: the predict function and its label names (+ the network, if any)."""

    predict: Predictor
    labels: list[str]
    model: torch.nn.Module | None = None  # latency / explanations need it; other checks never touch it
    tokenizer: Any = None
    max_length: int = 512
    model_dir: Path | None = None  # a saved model on disk (export, size on disk)


def length_batches(texts: list[str], batch_size: int) -> Iterator[list[int]]:
    """Positions of `texts` in batches of similar length (shortest first), so each pads little."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def text_predictor(
    model: torch.nn.Module, tokenizer: Any, max_length: int, batch_size: int = 32
) -> Predictor:
    """Probabilities of a sequence classifier, batched by length so padding stays small; input order kept."""

    @torch.inference_mode()
    def predict(texts: list[str]) -> np.ndarray:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        for ids in length_batches(texts, batch_size):
            batch = tokenizer([texts[i] for i in ids], truncation=True, max_length=max_length, padding=True,
                              return_tensors="pt")  # fmt: skip
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
            for i, row in zip(ids, torch.softmax(logits, dim=-1).cpu().numpy(), strict=True):
                out[i] = row
        model.train(was_training)
        if not texts:
            return np.zeros((0, int(getattr(model.config, "num_labels", 0) or 0)))
        return np.stack(out).astype(np.float64)

    return predict


def handle_for_model(
    model: torch.nn.Module, tokenizer: Any, labels: list[str], max_length: int, model_dir: Path | None = None
) -> ModelHandle:
    return ModelHandle(text_predictor(model, tokenizer, max_length), labels, model, tokenizer, max_length,
                       model_dir)  # fmt: skip


def handle_for_run(run_dir: Path) -> ModelHandle:
    """The trained model of a finished run (any strategy), uncalibrated: the suite measures calibration."""
    from tunesmith.export import load_trained
    from tunesmith.models.loader import load_tokenizer
    from tunesmith.predict import find_model_dir, max_length_of

    model_dir = find_model_dir(run_dir)
    tokenizer = load_tokenizer(model_dir)
    model = load_trained(model_dir, run_dir if run_dir != model_dir else None)
    id2label: dict[int, str] = model.config.id2label  # type: ignore[union-attr,assignment]
    labels = [id2label[i] for i in range(len(id2label))]
    return handle_for_model(model, tokenizer, labels, max_length_of(run_dir), model_dir)
