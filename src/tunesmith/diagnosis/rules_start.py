"""Rules that compare the end of a run with where it started, so that short runs are diagnosed too.

The loop validates once before the first optimizer step (an epoch record with `"epoch": 0`) and always logs
step 1, so the starting loss is known however few points were logged. A run whose loss ends far above its
start, or far above the chance level ln K (a uniform guess over K classes), did not learn: with a pre-trained
model the learning rate is the first suspect, and the update/weight ratios of the gradient monitor say by how
much it is off (about 1e-3 is typical for fine-tuning).
"""

from __future__ import annotations

import math
from typing import Any

from tunesmith.diagnosis.common import (
    chance_loss,
    finding,
    lr_of,
    median,
    rnd,
    series,
    sig,
    stabilising_patch,
)
from tunesmith.diagnosis.registry import rule
from tunesmith.diagnosis.rundata import RunData, finite
from tunesmith.findings import Finding

ABOVE_START = 1.5  # final loss this many times the starting one
ABOVE_CHANCE = 2.0  # or this many times ln K
TYPICAL_UPDATE_RATIO = 1e-3


def start_and_end(data: RunData) -> tuple[float, float, str, int] | None:
    """(starting loss, final loss, what they are, supporting points): validation losses when the run
    validated before the first step, else the logged training loss of step 1 and the last step."""
    initial = data.initial
    epochs = [r for r in data.epochs if finite(r.get("val_loss"))]
    if initial is not None and finite(initial.get("val_loss")) and epochs:
        return float(initial["val_loss"]), float(epochs[-1]["val_loss"]), "validation loss", len(epochs)
    steps = series(data.steps, "loss")
    first = next(((s, v) for s, v in steps if s == 1), None)
    if first is None or len(steps) < 2:
        return None
    tail = [v for _, v in steps[-max(1, len(steps) // 4) :]]
    return first[1], median(tail), "training loss", len(tail)


def update_ratio(data: RunData) -> float | None:
    values = [
        float(v) for r in data.steps for k, v in r.items() if k.startswith("update_ratio/") and finite(v)
    ]
    return median(values) if values else None


@rule("loss_above_start")
def loss_above_start(data: RunData) -> list[Finding]:
    found = start_and_end(data)
    if found is None:
        return []
    start, end, what, support = found
    chance = chance_loss(data)
    vs_start = end / start if start > 0 else math.inf
    vs_chance = end / chance if chance else None
    if not (vs_start >= ABOVE_START or (vs_chance is not None and vs_chance >= ABOVE_CHANCE)):
        return []
    ratio = update_ratio(data)
    # How sure: how far past each bar, and on how many points the end was measured.
    margin = max(vs_start / ABOVE_START, (vs_chance or 0) / ABOVE_CHANCE)
    confidence = "high" if margin >= 2 and support >= 2 else "medium" if margin >= 1.2 else "low"
    divisor = 10.0 if margin >= 2 or (ratio is not None and ratio > 10 * TYPICAL_UPDATE_RATIO) else 3.0
    evidence: dict[str, Any] = {
        "measured_on": what, "start_loss": rnd(start), "end_loss": rnd(end), "end_over_start": rnd(vs_start, 3),
        "chance_loss": rnd(chance) if chance else None, "end_over_chance": rnd(vs_chance, 3) if vs_chance else None,
        "points_at_end": support, "confidence": confidence, "lr": lr_of(data),
    }  # fmt: skip
    if ratio is not None:
        evidence["median_update_ratio"] = sig(ratio, 3)
        evidence["update_ratio_vs_typical"] = sig(ratio / TYPICAL_UPDATE_RATIO, 2)
    bars = []
    if vs_start >= ABOVE_START:
        bars.append(f"{vs_start:.1f}x its start ({start:.3g})")
    if vs_chance is not None and vs_chance >= ABOVE_CHANCE:
        bars.append(f"{vs_chance:.1f}x the chance level ln K = {chance:.3g}")
    suspect = (
        f"; updates were {ratio / TYPICAL_UPDATE_RATIO:.0f}x the typical size"
        if ratio and ratio > TYPICAL_UPDATE_RATIO
        else ""
    )
    return [
        finding(
            "loss_above_start",
            "error",
            f"the {what} ended at {end:.3g}, {' and '.join(bars)}: the model did not learn",
            evidence,
            f"The learning rate is the first suspect (train.lr = {lr_of(data):g}{suspect}): divide it by "
            f"{divisor:g}, with warmup and gradient clipping. Confidence {confidence}: measured on {support} "
            f"point(s) at the end of the run.",
            stabilising_patch(data, divisor),
        )
    ]
