"""Shared helpers for diagnosis rules: series from the history, robust statistics, recipe values."""

from __future__ import annotations

import math
import statistics
from typing import Any

from tunesmith.diagnosis.rundata import RunData, finite
from tunesmith.findings import Finding, Severity

STAGE = "training"


def finding(
    rule_id: str,
    severity: Severity,
    title: str,
    evidence: dict[str, Any],
    recommendation: str,
    config_patch: dict[str, Any] | None = None,
    rows: list[int] | None = None,
) -> Finding:
    return Finding(
        id=f"training.{rule_id}",
        stage=STAGE,
        severity=severity,
        title=title,
        evidence=evidence,
        rows=rows,
        recommendation=recommendation,
        config_patch=config_patch or None,
    )


def series(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of the records holding a finite `key`."""
    return [(int(r.get("step", i)), float(r[key])) for i, r in enumerate(records) if finite(r.get(key))]


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def sig(value: float, digits: int = 2) -> float:
    """Round to significant digits so a recommended learning rate reads like one a person would pick."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits - 1}e}")


def rnd(value: float, digits: int = 4) -> float:
    return round(float(value), digits) if math.isfinite(value) else value


def lr_of(data: RunData) -> float:
    lr = data.setting("train.lr")
    return float(lr) if finite(lr) else 5e-5


def chance_loss(data: RunData) -> float | None:
    """Cross-entropy of a uniform guess, ln(K): a loss stuck here means nothing was learned."""
    k = len(data.labels)
    return math.log(k) if k >= 2 else None


def stabilising_patch(data: RunData, lr_divisor: float) -> dict[str, Any]:
    """Lower the learning rate; add warmup and clipping where the recipe lacks them."""
    patch: dict[str, Any] = {"train.lr": sig(lr_of(data) / lr_divisor)}
    warmup = data.setting("train.warmup_ratio")
    if finite(warmup) and warmup < 0.06:
        patch["train.warmup_ratio"] = 0.1
    if "train" in data.recipe and data.setting("train.grad_clip") is None:
        patch["train.grad_clip"] = 1.0
    return patch


def epoch_values(data: RunData, key: str) -> list[float | None]:
    return [float(r[key]) if finite(r.get(key)) else None for r in data.epochs]


def regularising_patch(data: RunData) -> dict[str, Any]:
    """The patch against overfitting: weight decay up to 0.1 (when the recipe sets less) and more dropout."""
    patch: dict[str, Any] = {}
    weight_decay = data.setting("train.weight_decay")
    if finite(weight_decay) and weight_decay < 0.1:
        patch["train.weight_decay"] = 0.1
    return patch | dropout_patch(data)


def dropout_patch(data: RunData) -> dict[str, Any]:
    """More dropout against overfitting: model.dropout 0.2 when the recipe keeps the model's own (0.1 for
    BERT-style encoders, 0 for Llama), else 0.1 more, up to 0.3. Empty for a recipe without a model section
    (scripted histories) or one already at 0.3."""
    if "model" not in data.recipe:
        return {}
    current = data.setting("model.dropout")
    if current is None:
        return {"model.dropout": 0.2}
    return {"model.dropout": round(float(current) + 0.1, 2)} if finite(current) and current < 0.3 else {}
