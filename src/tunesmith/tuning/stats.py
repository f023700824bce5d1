"""Statistics for comparing fine-tuning variants: pure functions on plain arrays.

Bootstrap confidence intervals, McNemar's test on paired predictions, paired t / Wilcoxon tests on
per-run scores, and Holm's step-down correction. Inputs are validated at the boundary with one message
shape: "`x` must be Y; got Z."
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

Metric = Literal["accuracy", "macro_f1", "weighted_f1"]


@dataclass
class Significance:
    test: str  # "mcnemar-exact" | "mcnemar-chi2" | "paired-t" | "wilcoxon" | "sign" | "none"
    p_value: float
    statistic: float | None = None
    n: int = 0
    detail: str = ""
    ci: list[float] | None = None  # 95% interval of the difference, where the test gives one (bootstrap)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_1d(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional; got shape {array.shape}")
    return array


def classification_score(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, metric: Metric
) -> np.ndarray:
    """`metric` for each row of [B, n] label/prediction matrices at once (rows are bootstrap replicates).

    Confusion counts come from one bincount over all replicates, which makes 10,000 replicates cheap.
    Classes absent from both labels and predictions of a replicate are left out of the macro average,
    as in scikit-learn.
    """
    y_true, y_pred = np.atleast_2d(y_true), np.atleast_2d(y_pred)
    b, k = y_true.shape[0], num_classes
    offsets = (np.arange(b) * k * k)[:, None]
    counts = np.bincount((offsets + y_true * k + y_pred).ravel(), minlength=b * k * k).reshape(b, k, k)
    tp = np.diagonal(counts, axis1=1, axis2=2).astype(np.float64)
    support, predicted = counts.sum(axis=2), counts.sum(axis=1)
    if metric == "accuracy":
        return tp.sum(axis=1) / np.maximum(support.sum(axis=1), 1)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    if metric == "weighted_f1":
        return (f1 * support).sum(axis=1) / np.maximum(support.sum(axis=1), 1)
    present = denominator > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def bootstrap_ci(
    runs: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    metric: Metric,
    *,
    confidence: float = 0.95,
    replicates: int = 5000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of the mean `metric` over runs, by a two-level (hierarchical) bootstrap.

    Each replicate resamples the runs (seeds / folds) and, inside each run, its evaluated examples, so
    the interval covers both the training noise between runs and the sampling noise of a finite test set.
    `runs` holds one (y_true, y_pred) pair of integer arrays per run.
    """
    if not runs:
        raise ValueError("`runs` must hold at least one (y_true, y_pred) pair; got none")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be between 0 and 1; got {confidence}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(runs), size=(replicates, len(runs))) if len(runs) > 1 else None
    totals = np.zeros(replicates)
    for slot in range(len(runs)):
        chosen = picks[:, slot] if picks is not None else np.zeros(replicates, dtype=int)
        for run_index in np.unique(chosen):
            rows = np.flatnonzero(chosen == run_index)
            y_true, y_pred = (np.asarray(a, dtype=np.int64) for a in runs[run_index])
            chunk = max(1, 2_000_000 // max(len(y_true), 1))  # bounds memory on large test sets
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                sample = rng.integers(0, len(y_true), size=(len(part), len(y_true)))
                totals[part] += classification_score(y_true[sample], y_pred[sample], num_classes, metric)
    means = totals / len(runs)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def bootstrap_mean_ci(
    values: Sequence[float], *, confidence: float = 0.95, replicates: int = 5000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of a mean (for scores without per-example predictions, e.g. the loss)."""
    array = _as_1d("values", values)
    if array.size == 0:
        raise ValueError("`values` must not be empty; got 0 values")
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, array.size, size=(replicates, array.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def mcnemar(correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray) -> Significance:
    """McNemar's test: do two models err on different examples more often one way than the other?

    Only discordant pairs count: b (A right, B wrong) and c (A wrong, B right). With fewer than 25
    discordant pairs the exact binomial test is used, otherwise chi-square with continuity correction
    (Edwards), following Dietterich (1998).
    """
    a, b_ = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise ValueError(
            f"`correct_a` and `correct_b` must be 1-D and equally long; got {a.shape} and {b_.shape}"
        )
    b, c = int(np.sum(a & ~b_)), int(np.sum(~a & b_))
    detail = f"A right and B wrong on {b}, A wrong and B right on {c} of {a.size} examples"
    if b + c == 0:
        return Significance("mcnemar-exact", 1.0, 0.0, int(a.size), detail)
    if b + c < 25:
        p = float(sps.binomtest(b, b + c, 0.5).pvalue)
        return Significance("mcnemar-exact", min(p, 1.0), float(min(b, c)), int(a.size), detail)
    statistic = (abs(b - c) - 1.0) ** 2 / (b + c)
    return Significance("mcnemar-chi2", float(sps.chi2.sf(statistic, 1)), statistic, int(a.size), detail)


def paired_test(
    scores_a: Sequence[float], scores_b: Sequence[float], method: Literal["t", "wilcoxon"] = "t"
) -> Significance:
    """Paired test of per-run scores (same seeds and folds for A and B).

    Edge cases that break the textbook formulas are handled explicitly: identical scores give p = 1;
    differences that all have the same value (zero variance, where t is undefined) fall back to the exact
    sign test. With fewer than 6 pairs the Wilcoxon test can never reach p < 0.05, which `detail` says.
    """
    a, b = _as_1d("scores_a", scores_a), _as_1d("scores_b", scores_b)
    if a.shape != b.shape:
        raise ValueError(f"`scores_a` and `scores_b` must be equally long; got {a.size} and {b.size}")
    if a.size < 2:
        return Significance("none", 1.0, None, int(a.size), "a paired test needs at least 2 runs per variant")
    diff = a - b
    nonzero = diff[np.abs(diff) > 1e-12]
    if nonzero.size == 0:
        return Significance(
            method if method == "wilcoxon" else "paired-t", 1.0, 0.0, int(a.size), "identical scores"
        )
    if np.ptp(diff) <= 1e-12:
        p = float(sps.binomtest(int(np.sum(nonzero > 0)), int(nonzero.size), 0.5).pvalue)
        return Significance(
            "sign", p, None, int(a.size), "every run differs by the same amount; exact sign test"
        )
    if method == "wilcoxon":
        result = sps.wilcoxon(a, b, zero_method="wilcox")
        note = "fewer than 6 pairs: p cannot fall below 0.05" if nonzero.size < 6 else ""
        return Significance("wilcoxon", float(result.pvalue), float(result.statistic), int(a.size), note)
    result = sps.ttest_rel(a, b)
    return Significance("paired-t", float(result.pvalue), float(result.statistic), int(a.size))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: family-wise error control, uniformly more powerful than Bonferroni."""
    p = _as_1d("p_values", p_values)
    if np.any((p < 0) | (p > 1) | np.isnan(p)):
        raise ValueError(f"`p_values` must lie in [0, 1]; got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    array = _as_1d("values", values)
    if array.size == 0:
        return math.nan, math.nan
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def paired_bootstrap(
    runs_a: Sequence[tuple[np.ndarray, np.ndarray]],
    runs_b: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    metric: Metric,
    *,
    replicates: int = 2000,
    seed: int = 0,
) -> Significance:
    """Two-sided test of mean `metric`(A) - `metric`(B) by a paired two-level bootstrap.

    Run i of A and run i of B share a seed / fold and their evaluated examples (same y_true). Each
    replicate resamples the runs, and inside each run the examples, with the same draws for A and B, so
    the test covers both the luck of the seed or fold and the sampling of the test examples. p is twice
    the share of replicates on the far side of zero (at least 1 / replicates unless every one is zero).
    """
    if len(runs_a) != len(runs_b) or not runs_a:
        raise ValueError(
            f"`runs_a` and `runs_b` must be equally long and non-empty; got {len(runs_a)}, {len(runs_b)}"
        )
    rng = np.random.default_rng(seed)
    k = len(runs_a)
    picks = rng.integers(0, k, size=(replicates, k)) if k > 1 else np.zeros((replicates, 1), dtype=int)
    totals = np.zeros(replicates)
    for slot in range(k):
        for run_index in np.unique(picks[:, slot]):
            rows = np.flatnonzero(picks[:, slot] == run_index)
            y_true, pred_a = (np.asarray(x, dtype=np.int64) for x in runs_a[run_index])
            pred_b = np.asarray(runs_b[run_index][1], dtype=np.int64)
            chunk = max(1, 2_000_000 // max(len(y_true), 1))
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                sample = rng.integers(0, len(y_true), size=(len(part), len(y_true)))
                truth = y_true[sample]
                totals[part] += classification_score(truth, pred_a[sample], num_classes, metric)
                totals[part] -= classification_score(truth, pred_b[sample], num_classes, metric)
    diffs = totals / k
    observed = float(np.mean([
        classification_score(np.asarray(a[0]), np.asarray(a[1]), num_classes, metric)[0]
        - classification_score(np.asarray(b[0]), np.asarray(b[1]), num_classes, metric)[0]
        for a, b in zip(runs_a, runs_b, strict=True)
    ]))  # fmt: skip
    if np.all(np.abs(diffs) < 1e-12):
        return Significance("paired-bootstrap", 1.0, observed, k, "A and B score the same on every resample")
    p = 2.0 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0)))
    low, high = np.quantile(diffs, [0.025, 0.975])
    detail = f"mean difference {observed:+.4f}, 95% CI [{low:+.4f}, {high:+.4f}] over {k} run(s)"
    return Significance("paired-bootstrap", min(1.0, max(p, 1.0 / replicates)), observed, k, detail,
                        [float(low), float(high)])  # fmt: skip
