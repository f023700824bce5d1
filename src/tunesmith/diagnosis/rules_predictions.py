"""Rules over the final predictions: collapsed predictions, classes never recognised."""

from __future__ import annotations

from typing import Any

from tunesmith.diagnosis.common import finding, lr_of, rnd, sig, stabilising_patch
from tunesmith.diagnosis.registry import rule
from tunesmith.diagnosis.rundata import RunData
from tunesmith.diagnosis.signals import flat_lr_factor, high_lr_divisor, is_flat, lr_too_high
from tunesmith.findings import Finding

COLLAPSE_SHARE = 0.9  # one class taking this share of all predictions ...
COLLAPSE_EXCESS = 0.05  # ... and this much more than its true share counts as collapsed
MAX_ROWS = 100


def confusion(data: RunData, split: str) -> list[list[int]] | None:
    """Confusion matrix (rows true, columns predicted) from metrics.json, else counted from predictions."""
    matrix = (data.metrics.get(split) or {}).get("confusion_matrix")
    if matrix:
        return [[int(v) for v in row] for row in matrix]
    labels, rows = data.labels, data.predictions.get(split)
    if not labels or not rows:
        return None
    index = {label: i for i, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for row in rows:
        if row.get("label") in index and row.get("pred") in index:
            counts[index[row["label"]]][index[row["pred"]]] += 1
    return counts


def _split(data: RunData) -> str | None:
    return next((s for s in ("validation", "test") if confusion(data, s)), None)


@rule("collapsed_predictions")
def collapsed_predictions(data: RunData) -> list[Finding]:
    split = _split(data)
    matrix = confusion(data, split) if split else None
    labels = data.labels
    if not split or not matrix or len(matrix) < 2 or len(labels) != len(matrix):
        return []
    total = sum(map(sum, matrix))
    predicted = [sum(row[j] for row in matrix) for j in range(len(matrix))]
    top = max(range(len(predicted)), key=predicted.__getitem__)
    share, true_share = predicted[top] / max(total, 1), sum(matrix[top]) / max(total, 1)
    if total < 10 or share < COLLAPSE_SHARE or share - true_share < COLLAPSE_EXCESS:
        return []
    metrics = data.metrics.get(split) or {}
    evidence: dict[str, Any] = {
        "split": split,
        "predicted_class": labels[top],
        "predicted_share": rnd(share),
        "true_share": rnd(true_share),
        "predicted_counts": dict(zip(labels, predicted, strict=True)),
        "true_counts": {label: sum(row) for label, row in zip(labels, matrix, strict=True)},
        "macro_f1": rnd(metrics["macro_f1"]) if "macro_f1" in metrics else None,
    }
    imbalance = [f.id for f in data.audit_findings if "imbalance" in f.id]
    if imbalance:
        evidence["audit"] = imbalance
    lr = lr_of(data)
    patch: dict[str, Any] = {}
    steps = []
    too_high = lr_too_high(data)
    if too_high:
        divisor = high_lr_divisor(data)
        evidence["lr_too_high"] = too_high
        patch = stabilising_patch(data, divisor)
        steps.append(f"the learning rate is too high ({too_high}): lower train.lr about {divisor}x first")
    elif is_flat(data):  # nothing learned at all: class weights would not help, a larger step size would
        factor = flat_lr_factor(data)
        patch["train.lr"] = sig(lr * factor)
        steps.append(
            f"the training loss barely moved, so the learning rate is too low: raise train.lr from {lr:g} "
            f"to {sig(lr * factor):g}"
        )
    else:
        if not data.setting("train.class_weights", False):
            patch["train.class_weights"] = True
            steps.append(
                "weight the loss by inverse class frequency (train.class_weights: true"
                + (", or data.balance: oversample to repeat minority rows)" if _has_balance() else ")")
            )
        if is_flat(data, threshold=0.25) or "train.class_weights" not in patch:
            patch["train.lr"] = sig(lr * 3)
            steps.append(
                f"raise train.lr from {lr:g} to {sig(lr * 3):g} so the model moves past the class prior"
            )
    return [
        finding(
            "collapsed_predictions",
            "error",
            f"Collapsed predictions: '{labels[top]}' predicted for {share:.0%} of {split} examples "
            f"({true_share:.0%} truly are)",
            evidence,
            "The model learned the majority class, not the task. " + "; ".join(steps).capitalize() + ".",
            patch,
        )
    ]


def _has_balance() -> bool:
    from tunesmith.config.schema import DataConfig

    return "balance" in DataConfig.model_fields


@rule("zero_recall")
def zero_recall(data: RunData) -> list[Finding]:
    split = _split(data)
    matrix = confusion(data, split) if split else None
    labels = data.labels
    if not split or not matrix or len(labels) != len(matrix):
        return []
    missed = [i for i, row in enumerate(matrix) if sum(row) > 0 and row[i] == 0]
    if not missed:
        return []
    names = [labels[i] for i in missed]
    missed_rows = [
        int(r["row"])
        for r in data.predictions.get(split, [])
        if r.get("label") in names and r.get("pred") != r.get("label") and isinstance(r.get("row"), int)
    ]
    untrained = is_flat(data) or lr_too_high(data) is not None
    patch = None if untrained or data.setting("train.class_weights", False) else {"train.class_weights": True}
    evidence = {
        "split": split,
        "classes": names,
        "support": {labels[i]: sum(matrix[i]) for i in missed},
        "predicted_instead": {labels[i]: dict(zip(labels, matrix[i], strict=True)) for i in missed},
        "rows_listed": min(len(missed_rows), MAX_ROWS),
        "rows_total": len(missed_rows),
    }
    listed = ", ".join(f"'{n}'" for n in names)
    return [
        finding(
            "zero_recall",
            "warning",
            f"Class{'es' if len(names) > 1 else ''} {listed} never recognised: recall 0 on {split}",
            evidence,
            "No example of "
            + listed
            + " was predicted correctly. "
            + (
                "The model has not learned the task at all: fix the learning rate first (see the other findings)."
                if untrained
                else ("Weight the loss by class frequency (train.class_weights: true); " if patch else "")
                + "check the data audit for too few or mislabelled examples of the class."
            ),
            patch,
            rows=missed_rows[:MAX_ROWS] or None,
        )
    ]
