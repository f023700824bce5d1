"""The statistics of a comparison, on plain data: leaderboard, paired tests, Holm correction, recommendation.

Input: per variant, a list of runs (one per seed, and per fold with cross-validation), each with a key
shared across variants (same seed, same fold), its score on the scored split, and its predictions there.

Which test decides "significant": for accuracy and F1 scores, a paired two-level bootstrap of the mean
difference (runs resampled, and examples inside each run, with the same draws for both variants), which
covers both the luck of the seed or fold and the sampling of the evaluated examples. For the loss (no
per-example predictions to resample) it is the paired t-test (or Wilcoxon) across runs, given at least
`MIN_RUNS_FOR_PAIRED` runs, else McNemar. The paired t / Wilcoxon test across runs and McNemar's test on
each run's predictions (median p over runs) are reported beside it. Every family of p-values is
Holm-corrected over all pairs of variants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

import numpy as np

from tunesmith.evaluation.metrics import LOWER_IS_BETTER
from tunesmith.tuning.stats import (
    bootstrap_ci,
    bootstrap_mean_ci,
    holm,
    mcnemar,
    mean_std,
    paired_bootstrap,
    paired_test,
)  # fmt: skip

MIN_RUNS_FOR_PAIRED = 3
CLASSIFICATION = ("accuracy", "macro_f1", "weighted_f1")
COST_NOISE = 1.25  # training-time ratios below this are within timing noise: not called a cost difference


@dataclass
class UnitRun:
    key: str  # e.g. "seed 42" or "seed 42 fold 3": equal across variants for the same seed and fold
    score: float
    y_true: np.ndarray
    y_pred: np.ndarray
    train_time_s: float = 0.0
    peak_memory_mb: float | None = None


@dataclass
class VariantRuns:
    label: str
    runs: list[UnitRun]
    trainable_params: int | None = None
    total_params: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def leaderboard(
    variants: list[VariantRuns], metric: str, num_classes: int, *, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per variant, best first: mean, std, 95% bootstrap CI and cost."""
    rows = []
    for v in variants:
        scores = [r.score for r in v.runs]
        mean, std = mean_std(scores)
        if metric in ("accuracy", "macro_f1", "weighted_f1"):
            low, high = bootstrap_ci([(r.y_true, r.y_pred) for r in v.runs], num_classes, metric, seed=seed)  # type: ignore[arg-type]
        else:
            low, high = bootstrap_mean_ci(scores, seed=seed)
        memory = [r.peak_memory_mb for r in v.runs if r.peak_memory_mb is not None]
        rows.append({
            "variant": v.label, "runs": len(v.runs), "mean": mean, "std": std, "ci_low": low, "ci_high": high,
            "scores": scores, "train_time_s": float(np.mean([r.train_time_s for r in v.runs])),
            "peak_memory_mb": max(memory) if memory else None, "trainable_params": v.trainable_params,
            "total_params": v.total_params,
        })  # fmt: skip
    return sorted(rows, key=lambda r: r["mean"], reverse=metric not in LOWER_IS_BETTER)


def pairwise(
    variants: list[VariantRuns], metric: str, num_classes: int, *, method: Literal["t", "wilcoxon"] = "t",
    alpha: float = 0.05,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every pair of variants: paired test across runs and McNemar on predictions, both Holm-corrected."""
    pairs: list[dict[str, Any]] = []
    for a, b in combinations(variants, 2):
        by_key_b = {r.key: r for r in b.runs}
        shared = [(r, by_key_b[r.key]) for r in a.runs if r.key in by_key_b]
        scores_a, scores_b = [x.score for x, _ in shared], [y.score for _, y in shared]
        paired = paired_test(scores_a, scores_b, method)
        mc = [mcnemar(x.y_pred == x.y_true, y.y_pred == y.y_true) for x, y in shared
              if len(x.y_true) and len(x.y_true) == len(y.y_true) and np.array_equal(x.y_true, y.y_true)]  # fmt: skip
        diff = float(np.mean(scores_a) - np.mean(scores_b)) if shared else float("nan")
        aligned = [(x, y) for x, y in shared if np.array_equal(x.y_true, y.y_true)]
        boot = None
        if metric in CLASSIFICATION and aligned:
            boot = paired_bootstrap(
                [(x.y_true, x.y_pred) for x, _ in aligned],
                [(y.y_true, y.y_pred) for _, y in aligned],
                num_classes,
                metric,  # type: ignore[arg-type]
            ).to_dict()
        pairs.append({
            "a": a.label, "b": b.label, "runs": len(shared), "diff": diff,
            "paired": paired.to_dict(), "bootstrap": boot,
            "mcnemar": {"p_value": float(np.median([m.p_value for m in mc])) if mc else 1.0,
                        "significant_runs": sum(m.p_value < alpha for m in mc), "runs": len(mc),
                        "detail": mc[0].detail if len(mc) == 1 else f"median over {len(mc)} runs"},
        })  # fmt: skip
    if pairs:
        for family in ("paired", "mcnemar", "bootstrap"):
            if any(p[family] is None for p in pairs):
                continue
            adjusted = holm([p[family]["p_value"] for p in pairs])
            for p, value in zip(pairs, adjusted, strict=True):
                p[family]["p_holm"] = value
        for p in pairs:
            if p["bootstrap"] is not None:
                primary = "bootstrap"
            elif p["mcnemar"]["runs"] == 0:  # no per-example predictions (causal-lm): across runs only
                primary = "paired"
            else:
                primary = "paired" if p["runs"] >= MIN_RUNS_FOR_PAIRED else "mcnemar"
            p["decided_by"] = primary
            p["p_holm"] = p[primary]["p_holm"]
            p["significant"] = bool(p["p_holm"] < alpha)
            better = p["diff"] > 0 if metric not in LOWER_IS_BETTER else p["diff"] < 0
            p["better"] = p["a"] if better else p["b"]
    return pairs


def _pair(pairs: list[dict[str, Any]], x: str, y: str) -> dict[str, Any]:
    return next(p for p in pairs if {p["a"], p["b"]} == {x, y})


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _cheapest(leader: dict[str, Any], tied: list[dict[str, Any]]) -> dict[str, Any]:
    """Fewest trainable parameters first; then clearly less training time; the leader on a tie."""
    fewest = min(r["trainable_params"] or 0 for r in tied)
    options = [r for r in tied if (r["trainable_params"] or 0) == fewest]
    if leader in options:
        faster = [r for r in options if r["train_time_s"] * COST_NOISE < leader["train_time_s"]]
        return min(faster, key=lambda r: r["train_time_s"]) if faster else leader
    return min(options, key=lambda r: r["train_time_s"])


def recommend(board: list[dict[str, Any]], pairs: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The cheapest variant not significantly worse than the leader, with sentences that say why."""
    leader = board[0]
    tied = [leader] + [
        r for r in board[1:] if not _pair(pairs, leader["variant"], r["variant"])["significant"]
    ]
    pick = _cheapest(leader, tied)
    sentences = []
    for r in board[1:]:
        p = _pair(pairs, leader["variant"], r["variant"])
        cost = _ratio(leader["train_time_s"], r["train_time_s"])
        costs = f" and costs {cost:.1f}x the training time" if cost and cost >= COST_NOISE else ""
        if cost and cost <= 1 / COST_NOISE:
            costs = f" and trains {1 / cost:.1f}x faster"
        verdict = "significantly better than" if p["significant"] else "not significantly better than"
        sentences.append(
            f"{leader['variant']} is {verdict} {r['variant']} ({metric} {leader['mean']:.4f} vs {r['mean']:.4f}, "
            f"{p['decided_by']} p={p['p_holm']:.3g} Holm-adjusted){costs}."
        )
    if pick is leader:
        why = "highest score" + (
            ", and the cheapest of the variants within noise of it"
            if len(tied) > 1
            else ", significantly better than every other variant"
            if len(board) > 1
            else ""
        )
    else:
        time_ratio = _ratio(leader["train_time_s"], pick["train_time_s"])
        params = _ratio(leader["trainable_params"], pick["trainable_params"])
        extra = f" and {params:.1f}x the trainable parameters" if params and params >= 1.05 else ""
        why = (
            f"{leader['variant']} scores highest but is not significantly better and costs "
            f"{time_ratio or float('nan'):.1f}x the training time{extra}"
        )
    # fmt: skip
    return {"variant": pick["variant"], "reason": why, "sentences": sentences,
            "text": f"Recommended: {pick['variant']} ({why})."}  # fmt: skip


def analyse(
    variants: list[VariantRuns], metric: str, num_classes: int, *, method: Literal["t", "wilcoxon"] = "t",
    alpha: float = 0.05,
) -> dict[str, Any]:  # fmt: skip
    board = leaderboard(variants, metric, num_classes)
    pairs = pairwise(variants, metric, num_classes, method=method, alpha=alpha)
    return {"leaderboard": board, "pairs": pairs, "recommendation": recommend(board, pairs, metric),
            "alpha": alpha, "test": method}  # fmt: skip
