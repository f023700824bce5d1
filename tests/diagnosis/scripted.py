"""Build RunData from scripted histories (no files): the shapes the training loop writes."""

from __future__ import annotations

import math
from typing import Any

from tunesmith.diagnosis import RunData

LABELS = ["negative", "neutral", "positive"]
RECIPE: dict[str, Any] = {
    "data": {"train": "train.csv"},
    "train": {
        "epochs": 5,
        "lr": 5e-5,
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
        "grad_clip": 1.0,
        "class_weights": False,
        "log_every": 10,
        "nan_policy": "rollback",
    },
    "eval": {"metric": "macro_f1"},
}
HEALTHY_CONFUSION = [[40, 6, 4], [5, 30, 5], [3, 4, 53]]


def decaying(n: int, start: float = 1.1, end: float = 0.3, wobble: float = 0.02) -> list[float]:
    """A healthy step-loss curve: exponential decay with a deterministic wobble."""
    return [end + (start - end) * math.exp(-4 * i / n) + wobble * math.sin(i * 1.7) for i in range(n)]


def make_run(
    losses: list[float] | None = None,
    epochs: list[dict[str, float]] | None = None,
    confusion: list[list[int]] | None = None,
    events: list[dict[str, Any]] | None = None,
    monitor: dict[str, list[float]] | None = None,
    recipe: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    predictions: list[dict[str, Any]] | None = None,
) -> RunData:
    losses = decaying(30) if losses is None else losses
    history: list[dict[str, Any]] = []
    for i, loss in enumerate(losses):
        step = 10 * (i + 1)
        record: dict[str, Any] = {
            "kind": "step",
            "step": step,
            "epoch": step / 100,
            "loss": loss,
            "lr": 5e-5,
            "grad_norm": 2.0,
        }
        for key, values in (monitor or {}).items():
            if i < len(values):
                record[key] = values[i]
        history.append(record)
    for i, epoch in enumerate(epochs or []):
        history.append({"kind": "epoch", "step": 100 * (i + 1), "epoch": i + 1, **epoch})
    for event in events or []:
        history.append({"kind": "event", **event})
    history.sort(key=lambda r: r["step"])
    confusion = HEALTHY_CONFUSION if confusion is None else confusion
    per_class = {}
    for i, label in enumerate(LABELS):
        support, predicted = sum(confusion[i]), sum(row[i] for row in confusion)
        recall = confusion[i][i] / support if support else 0.0
        precision = confusion[i][i] / predicted if predicted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    macro_f1 = sum(c["f1"] for c in per_class.values()) / len(LABELS)
    base = {
        "labels": LABELS,
        "best_epoch": _kept_epoch(epochs or []),
        "epochs_run": len(epochs or []),
        "stop_reason": None,
        "precision": "bf16",
        "validation": {
            "loss": 0.6,
            "accuracy": 0.8,
            "macro_f1": macro_f1,
            "per_class": per_class,
            "confusion_matrix": confusion,
        },
        "test": None,
    }
    base.update(metrics or {})
    merged = {**RECIPE, "train": {**RECIPE["train"], **((recipe or {}).get("train", {}))}}
    return RunData(
        history=history, metrics=base, predictions={"validation": predictions or []}, recipe=merged
    )


def _kept_epoch(epochs: list[dict[str, float]]) -> int | None:
    """The epoch a real run would keep: the best validation macro-F1, else the lowest validation loss."""
    for key, sign in (("val_macro_f1", 1), ("val_loss", -1)):
        if epochs and all(key in e for e in epochs):
            return 1 + max(range(len(epochs)), key=lambda i: sign * epochs[i][key])
    return len(epochs) or None


def healthy_epochs(n: int = 3) -> list[dict[str, float]]:
    return [
        {
            "train_loss": 0.9 - 0.2 * i,
            "val_loss": 0.8 - 0.1 * i,
            "val_loss_se": 0.04,
            "train_macro_f1": 0.5 + 0.1 * i,
            "val_macro_f1": 0.5 + 0.08 * i,
            "train_accuracy": 0.6 + 0.1 * i,
            "val_accuracy": 0.6 + 0.08 * i,
        }
        for i in range(n)
    ]
