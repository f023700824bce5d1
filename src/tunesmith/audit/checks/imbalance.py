"""Class imbalance in train: the largest / smallest class ratio and classes below a minimum count.

Warning from audit.imbalance_ratio or when a class has fewer than audit.min_class_count rows, info for a
milder skew (ratio >= 1.5). The patch turns on inverse-frequency class weights; beyond a ratio of 10, where
weights alone make training unstable, it asks for oversampling (data.balance: oversample) instead. When the
run already balances (ctx.balance) well enough, the finding is info with no patch: nothing left to switch on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tunesmith.audit.context import AuditContext, make_finding, pct
from tunesmith.findings import Finding

OVERSAMPLE_FROM = 10.0


def class_imbalance(ctx: AuditContext) -> list[Finding]:
    if "train" not in ctx.tables:
        return []
    counts = pd.Series(ctx.labels["train"]).value_counts()
    if len(counts) < 2:
        return []
    n, k = int(counts.sum()), len(counts)
    ratio = float(counts.iat[0] / counts.iat[-1])
    below = {str(c): int(v) for c, v in counts.items() if v < ctx.cfg.min_class_count}
    if ratio < 1.5 and not below:
        return []
    minority = str(counts.index[-1])
    evidence: dict[str, Any] = {
        "split": "train",
        "counts": {str(c): int(v) for c, v in counts.items()},
        "shares": {str(c): round(float(v / n), 4) for c, v in counts.items()},
        "ratio": round(ratio, 2),
        "below_min_count": below,
        "min_class_count": ctx.cfg.min_class_count,
        "class_weights": {str(c): round(n / (k * float(v)), 3) for c, v in counts.items()},
        "oversample_to": int(counts.iat[0]),
        "other_splits": {
            s: {str(c): int(v) for c, v in pd.Series(ctx.labels[s]).value_counts().items()}
            for s in ctx.splits if s != "train"
        },
    }  # fmt: skip
    patch: dict[str, Any] | None = (
        {"data.balance": "oversample"} if ratio >= OVERSAMPLE_FROM else {"train.class_weights": True}
    )
    handled = ctx.balance == "oversample" or (ctx.balance == "class-weights" and ratio < OVERSAMPLE_FROM)
    title = f"class imbalance in train: {minority} is {pct(counts.iat[-1] / n)} (largest / smallest = {ratio:.1f})"
    if below:
        title += f"; {len(below)} below {ctx.cfg.min_class_count} rows"
    if handled:
        patch = None
        title += f"; the run already balances it ({ctx.balance})"
        recommendation = (
            "Nothing to switch on; judge the model by macro-F1 and per-class recall, not accuracy."
        )
    else:
        recommendation = (
            f"Weight the loss by inverse class frequency (train.class_weights: true; weights "
            f"{evidence['class_weights']}) or oversample the smaller classes to {evidence['oversample_to']} rows "
            "each (data.balance: oversample), and judge the model by macro-F1, not accuracy."
        )
    if below:
        recommendation += f" Collect more examples of {', '.join(below)}: a few rows cannot teach a class."
    severe = (ratio >= ctx.cfg.imbalance_ratio and not handled) or bool(below)
    return [
        make_finding(
            "class_imbalance", "warning" if severe else "info", title, evidence, None, recommendation, patch
        )
    ]
