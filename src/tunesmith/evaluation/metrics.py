"""Classification metrics: pure functions of labels and predictions (scikit-learn underneath)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

# Metrics where smaller is better (every other eval.metric is maximised): early stopping, tune, compare.
LOWER_IS_BETTER = frozenset({"loss", "perplexity"})


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: list[str], loss: float | None = None
) -> dict[str, Any]:
    """Accuracy, macro/weighted precision-recall-F1, the per-class report and the confusion matrix.

    Classes absent from both `y_true` and `y_pred` still appear (with zero support) so reports line up.
    """
    ids = list(range(len(labels)))
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    result: dict[str, Any] = {"loss": loss, "accuracy": float(accuracy_score(true, pred))}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(true, pred, labels=ids, average=average, zero_division=0)
        result.update(
            {f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)}
        )
    p, r, f, s = precision_recall_fscore_support(true, pred, labels=ids, average=None, zero_division=0)
    result["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(labels)
    }
    result["confusion_matrix"] = confusion_matrix(true, pred, labels=ids).tolist()
    return result


def headline(metrics: dict[str, Any]) -> str:
    return f"accuracy {metrics['accuracy']:.3f}  macro-F1 {metrics['macro_f1']:.3f}"
