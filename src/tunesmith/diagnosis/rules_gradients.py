"""Rules over the GradientMonitor keys: exploding or vanishing gradients per layer, update/weight ratios."""

from __future__ import annotations

import math
from typing import Any

from tunesmith.diagnosis.common import finding, lr_of, median, sig, stabilising_patch
from tunesmith.diagnosis.registry import rule
from tunesmith.diagnosis.rundata import RunData
from tunesmith.diagnosis.signals import dead_layers, divergence, high_lr_divisor, layer_series
from tunesmith.findings import Finding

EXPLODE_GROWTH = 10.0  # late median / early median of a layer's gradient norm
EXPLODE_SPIKE = 100.0  # one value / median of the values before it
VANISH_RATIO = 1e-3  # a layer's gradient norm relative to the largest layer's at the same step
RATIO_HIGH = 2e-2  # update/weight ratio per step; ~1e-3 is typical for fine-tuning with AdamW
RATIO_LOW = 1e-5


def _fmt(value: float) -> float | str:
    return float(f"{value:.3g}") if math.isfinite(value) else str(value)


def _explosion(points: list[tuple[int, float]]) -> dict[str, Any] | None:
    bad = [s for s, v in points if not math.isfinite(v)]
    if bad:
        return {"first_nonfinite_step": bad[0]}
    values = [v for _, v in points]
    if len(values) < 3:
        return None
    third = max(1, len(values) // 3)
    early, late = median(values[:third]), median(values[-third:])
    if early > 0 and late / early >= EXPLODE_GROWTH:
        return {"early": _fmt(early), "late": _fmt(late), "growth": _fmt(late / early)}
    for i in range(2, len(values)):
        before = median(values[:i])
        if before > 0 and values[i] / before >= EXPLODE_SPIKE:
            return {"spike_step": points[i][0], "spike": _fmt(values[i]), "median_before": _fmt(before)}
    return None


@rule("exploding_gradients")
def exploding_gradients(data: RunData) -> list[Finding]:
    if divergence(data):
        return []  # the divergence finding carries the fix
    exploding = {
        layer: found
        for layer, points in layer_series(data, "grad_norm/").items()
        if (found := _explosion(points))
    }
    if not exploding:
        return []
    nonfinite = any("first_nonfinite_step" in v for v in exploding.values())
    clip = data.setting("train.grad_clip", 1.0)
    advice = "Turn gradient clipping on (train.grad_clip: 1.0) and lower" if clip is None else "Lower"
    divisor = high_lr_divisor(data)
    return [
        finding(
            "exploding_gradients",
            "error" if nonfinite else "warning",
            f"Exploding gradients in {', '.join(exploding)}",
            {"layers": exploding, "grad_clip": clip, "lr": lr_of(data)},
            f"Gradient norms grew {EXPLODE_GROWTH:g}x or spiked {EXPLODE_SPIKE:g}x (measured before clipping). "
            f"{advice} train.lr about {divisor}x; add warmup if there is none.",
            stabilising_patch(data, divisor),
        )
    ]


def _small_layers(data: RunData) -> dict[str, dict[str, Any]]:
    """Layers whose gradient is under VANISH_RATIO of the largest layer's in the second half of training."""
    by_step: dict[int, dict[str, float]] = {}
    layers = layer_series(data, "grad_norm/")
    for layer, points in layers.items():
        for step, value in points:
            if math.isfinite(value):
                by_step.setdefault(step, {})[layer] = value
    steps = sorted(by_step)[len(by_step) // 2 :]  # after warmup
    small = {}
    for layer in layers:
        ratios = [
            by_step[s][layer] / max(by_step[s].values())
            for s in steps
            if layer in by_step[s] and max(by_step[s].values()) > 0
        ]
        if len(ratios) >= 2 and median(ratios) < VANISH_RATIO:
            small[layer] = {"relative_to_largest_layer": _fmt(median(ratios))}
    return small


@rule("vanishing_gradients")
def vanishing_gradients(data: RunData) -> list[Finding]:
    if divergence(data) or len(layer_series(data, "grad_norm/")) < 2:
        return []
    dead = dead_layers(data)
    small = {k: v for k, v in _small_layers(data).items() if k not in dead}
    if not dead and not small:
        return []
    lr = lr_of(data)
    layers: dict[str, Any] = {k: {"start": _fmt(s), "late": _fmt(late)} for k, (s, late) in dead.items()}
    layers.update(small)
    if dead:
        divisor = high_lr_divisor(data)
        text = (
            f"The gradients of {', '.join(dead)} collapsed to under 1% of where they started: the units died "
            f"after too large updates. Lower train.lr about {divisor}x (from {lr:g} to {sig(lr / divisor):g})."
        )
        patch = stabilising_patch(data, divisor)
    else:
        text = (
            "These layers receive almost no gradient, so they barely change. If they are meant to train, "
            f"raise train.lr (from {lr:g} to {sig(lr * 3):g}) or give lower layers a larger learning rate "
            "(a discriminative strategy); check that nothing upstream saturates or is detached."
        )
        patch = {"train.lr": sig(lr * 3)}
    return [
        finding(
            "vanishing_gradients",
            "warning",
            f"Vanishing gradients in {', '.join(layers)}",
            {"layers": layers, "threshold_relative": VANISH_RATIO, "lr": lr},
            text,
            patch,
        )
    ]


@rule("update_ratio")
def update_ratio(data: RunData) -> list[Finding]:
    layers = {k: v for k, v in layer_series(data, "update_ratio/").items() if k != "head"}  # the head is new
    per_layer = {k: median([v for _, v in pts if math.isfinite(v)]) for k, pts in layers.items()}
    per_layer = {k: v for k, v in per_layer.items() if math.isfinite(v)}
    if not per_layer:
        return []
    typical = median(list(per_layer.values()))
    lr = lr_of(data)
    evidence = {
        "median_update_ratio": _fmt(typical),
        "per_layer": {k: _fmt(v) for k, v in per_layer.items()},
        "lr": lr,
    }
    if typical > RATIO_HIGH:
        return [
            finding(
                "update_ratio_high",
                "warning",
                f"Each step changes the weights by {typical:.1%} of their size: updates are too large",
                evidence,
                "Fine-tuning usually moves weights by about 0.1% per step; much larger steps erase what the "
                f"pre-trained model knows. Lower train.lr (from {lr:g} to {sig(lr / 3):g}).",
                {"train.lr": sig(lr / 3)},
            )
        ]
    if typical < RATIO_LOW:
        return [
            finding(
                "update_ratio_low",
                "info",
                f"Each step changes the weights by only {typical:.1e} of their size: updates are tiny",
                evidence,
                f"Fine-tuning usually moves weights by about 1e-3 per step. Raise train.lr (from {lr:g} to "
                f"{sig(lr * 10):g}) if the loss is also slow to fall.",
                {"train.lr": sig(lr * 10)},
            )
        ]
    return []
