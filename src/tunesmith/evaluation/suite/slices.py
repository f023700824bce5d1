"""Slices and fairness: metrics per value of each slice column and per text-length quartile, the slices
significantly worse than the rest (Fisher's exact test per slice, Holm-corrected), and Fairlearn's
demographic-parity and equalized-odds differences (one-vs-rest per class)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps

from tunesmith.evaluation.suite.context import Context, Result, ci
from tunesmith.findings import Finding
from tunesmith.tuning.stats import classification_score, holm

REPLICATES = 1000
LENGTH = "text length"


def length_quartiles(texts: list[str]) -> list[str]:
    """Each text's word-count quartile, named by its range (e.g. 'Q2: 12-20 words')."""
    words = np.asarray([len(t.split()) for t in texts])
    edges = np.quantile(words, [0.25, 0.5, 0.75]) if len(words) else np.zeros(3)
    quart = np.searchsorted(edges, words, side="left")
    names = []
    for q in range(4):
        members = words[quart == q]
        names.append(f"Q{q + 1}: {members.min()}-{members.max()} words" if members.size else f"Q{q + 1}")
    return [names[q] for q in quart]


def _boot(y: np.ndarray, p: np.ndarray, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    sample = rng.integers(0, len(y), size=(REPLICATES, len(y)))
    yt, yp = y[sample], p[sample]
    return {"accuracy": classification_score(yt, yp, k, "accuracy"),
            "macro_f1": classification_score(yt, yp, k, "macro_f1")}  # fmt: skip


def slice_metrics(
    y: np.ndarray, pred: np.ndarray, labels: list[str], rng: np.random.Generator
) -> dict[str, Any]:
    k = len(labels)
    boot = _boot(y, pred, k, rng)
    recall = {}
    for i, name in enumerate(labels):
        mask = y == i
        if mask.any():
            recall[name] = float(np.mean(pred[mask] == i))
    return {
        "n": int(len(y)),
        "accuracy": float(classification_score(y, pred, k, "accuracy")[0]),
        "accuracy_ci": ci(boot["accuracy"]),
        "macro_f1": float(classification_score(y, pred, k, "macro_f1")[0]),
        "macro_f1_ci": ci(boot["macro_f1"]),
        "recall": recall,
    }


def fairness(y: np.ndarray, pred: np.ndarray, groups: list[str], labels: list[str]) -> dict[str, Any]:
    """Fairlearn MetricFrame per group, and parity differences of each class against the rest."""
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        selection_rate,
    )
    from sklearn.metrics import accuracy_score

    sensitive = np.asarray(groups, dtype=object)
    per_class = {}
    for i, name in enumerate(labels):
        yt, yp = (y == i).astype(int), (pred == i).astype(int)
        frame = MetricFrame(metrics={"selection_rate": selection_rate}, y_true=yt, y_pred=yp,
                            sensitive_features=sensitive)  # fmt: skip
        per_class[name] = {
            "demographic_parity_difference": float(
                demographic_parity_difference(yt, yp, sensitive_features=sensitive)
            ),
            "equalized_odds_difference": float(
                equalized_odds_difference(yt, yp, sensitive_features=sensitive)
            ),
            "selection_rate_by_group": {
                str(g): float(v) for g, v in frame.by_group["selection_rate"].items()
            },
        }
    frame = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=pred, sensitive_features=sensitive)
    return {"per_class": per_class, "accuracy_difference": float(frame.difference()),
            "accuracy_by_group": {str(g): float(v) for g, v in frame.by_group.items()}}  # fmt: skip


def check_slices(ctx: Context) -> tuple[Result, list[Finding]]:
    data, labels = ctx.eval_set, ctx.labels
    pred = ctx.probs().argmax(-1)
    y = data.labels
    rng = np.random.default_rng(ctx.seed)
    columns = {**data.slices, LENGTH: length_quartiles(data.texts)}
    result: Result = {"split": data.name, "n": len(data), "min_slice_rows": ctx.cfg.min_slice_rows,
                      "overall": slice_metrics(y, pred, labels, rng), "columns": {}}  # fmt: skip
    tested: list[dict[str, Any]] = []
    for column, values in columns.items():
        values_arr = np.asarray(values, dtype=object)
        rows, too_small = [], []
        for value in sorted(set(values)):
            mask = values_arr == value
            n = int(mask.sum())
            if n < ctx.cfg.min_slice_rows:
                too_small.append({"value": value, "n": n})
                continue
            entry = {"value": value, **slice_metrics(y[mask], pred[mask], labels, rng)}
            rest = ~mask
            if rest.any():
                correct = pred == y
                table = [[int(correct[mask].sum()), int((~correct[mask]).sum())],
                         [int(correct[rest].sum()), int((~correct[rest]).sum())]]  # fmt: skip
                entry["p_value"] = float(sps.fisher_exact(table, alternative="less")[1])
                a = correct[mask][rng.integers(0, n, size=(REPLICATES, n))].mean(axis=1)
                b = correct[rest][rng.integers(0, int(rest.sum()), size=(REPLICATES, int(rest.sum())))].mean(
                    axis=1
                )
                entry["rest_accuracy"] = float(correct[rest].mean())
                entry["gap"] = float(correct[mask].mean() - correct[rest].mean())
                entry["gap_ci"] = ci(a - b)
                tested.append({"column": column, "entry": entry})
            rows.append(entry)
        col: Result = {"slices": rows, "too_small": too_small}
        if column != LENGTH and len({v for v in values if v}) > 1:
            col["fairness"] = fairness(y, pred, list(values), labels)
        result["columns"][column] = col
    adjusted = holm([t["entry"]["p_value"] for t in tested]) if tested else []
    findings: list[Finding] = []
    for t, p_adj in zip(tested, adjusted, strict=True):
        t["entry"]["p_holm"] = p_adj
        t["entry"]["significant"] = bool(p_adj < 0.05)
        if p_adj < 0.05:
            findings.append(_finding(t["column"], t["entry"], ctx))
    result["flagged"] = [{"column": t["column"], "value": t["entry"]["value"], "gap": t["entry"]["gap"]}
                         for t in tested if t["entry"]["significant"]]  # fmt: skip
    return result, findings


def _finding(column: str, e: dict[str, Any], ctx: Context) -> Finding:
    is_group = column != LENGTH
    weights = column == ctx.group_column
    fix = (f"collect more labelled examples where {column} is '{e['value']}', or weight the loss by inverse "
           "group frequency (train.group_weights: true)") if weights else (
        f"collect more labelled examples where {column} is '{e['value']}'") if is_group else (
        "texts of this length are handled worse: check model.max_length (truncation) and add training "
        "examples of this length")  # fmt: skip
    return Finding(
        id="evaluation.slice_gap", stage="evaluation", severity="warning",
        title=f"{column} = {e['value']}: accuracy {e['accuracy']:.2f} vs {e['rest_accuracy']:.2f} on the rest "
              f"(gap {e['gap']:+.2f}, 95% CI [{e['gap_ci'][0]:+.2f}, {e['gap_ci'][1]:+.2f}])",
        evidence={"column": column, "value": e["value"], "n": e["n"], "accuracy": e["accuracy"],
                  "rest_accuracy": e["rest_accuracy"], "gap": e["gap"], "gap_ci": e["gap_ci"],
                  "p_value": e["p_value"], "p_holm": e["p_holm"], "split": ctx.eval_set.name},
        recommendation=fix[0].upper() + fix[1:] + ".",
        config_patch={"train.group_weights": True} if weights else None,
    )  # fmt: skip
