"""Shared judgements several rules need, so their recommendations agree: is the learning rate too high?

A run whose loss diverged or whose lower layers died (gradients collapsing after a spike) has a learning
rate that is too high; rules that would otherwise recommend raising it (flat loss, collapsed predictions,
vanishing gradients) recommend lowering it instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tunesmith.diagnosis.common import chance_loss, median, series
from tunesmith.diagnosis.rundata import RunData, finite

MIN_POINTS = 5  # logged steps needed before judging a curve
FLAT_DROP = 0.05  # under 5% relative decrease from the first to the last quarter counts as flat
DEAD_DROP = 1e-2
IMPROVED_Z = 2.0  # a validation drop of this many standard errors is learning, not noise
SHORT_RATIO, SHORT_JUMP = 2.0, 0.5  # a short run's last loss this many times (and this much above) its first
TAIL, TAIL_RATIO, TAIL_JUMP = (
    2,
    3.0,
    1.0,
)  # the last TAIL points all this many times the median before  # a layer whose gradient falls below 1% of its starting level has died


@dataclass
class Curve:
    steps: list[int]
    losses: list[float]
    first: float  # median of the first quarter
    last: float  # median of the last quarter
    low: float  # lowest rolling median: one lucky batch is not the level the loss reached
    peak: float

    @property
    def relative_drop(self) -> float:
        return (self.first - self.last) / self.first if self.first > 0 else 0.0


def loss_curve(data: RunData) -> Curve | None:
    points = series(data.steps, "loss")
    if len(points) < MIN_POINTS:
        return None
    steps, losses = [s for s, _ in points], [v for _, v in points]
    k = max(1, len(losses) // 4)
    w = max(3, len(losses) // 8)
    low = min(median(losses[i : i + w]) for i in range(len(losses) - w + 1))
    return Curve(steps, losses, median(losses[:k]), median(losses[-k:]), low, max(losses))


def divergence(data: RunData) -> str | None:
    """Why the training loss counts as diverged, or None. Works at any run length: a run with few logged
    points compares its last loss with its first (step 1 is always logged); a longer one also catches a
    blow-up confined to its last logged steps, which the quarter medians below only see late."""
    points = [v for _, v in series(data.steps, "loss")]
    curve = loss_curve(data)
    if curve is None:
        if len(points) >= 2 and points[-1] > SHORT_RATIO * points[0] and points[-1] - points[0] > SHORT_JUMP:
            return f"the loss ended {points[-1] / points[0]:.1f}x above its start (a short run: {len(points)} logged points)"
        return None
    before = median(curve.losses[:-TAIL])
    tail = curve.losses[-TAIL:]
    if min(tail) > TAIL_RATIO * before and min(tail) - before > TAIL_JUMP:
        return (
            f"the loss exploded in the last {TAIL} logged steps ({min(tail) / before:.1f}x the level before)"
        )
    if curve.last > 1.2 * curve.first and curve.last - curve.first > 0.1:
        return "the loss ends higher than it started"
    if curve.last > 2.0 * curve.low and curve.last - curve.low > 0.25:
        return "the loss fell, then climbed back up"
    chance = chance_loss(data)
    reference = max(curve.losses[0], chance or 0.0)
    if chance is not None and curve.peak > 3.0 * reference and curve.last >= 0.9 * chance:
        return "the loss blew up and never got below chance level again"
    return None


def is_flat(data: RunData, threshold: float = FLAT_DROP) -> bool:
    curve = loss_curve(data)
    return curve is not None and curve.relative_drop < threshold and divergence(data) is None


def flat_and_unlearned(data: RunData) -> bool:
    """The flat-loss case: a flat training loss, and no validation drop beyond noise to say it learned."""
    return is_flat(data) and not validation_improved(data)


def flat_lr_factor(data: RunData) -> int:
    """How much to raise the learning rate of a run that learned nothing: 10x when the loss did not move."""
    curve = loss_curve(data)
    return 10 if curve is None or curve.relative_drop < 0.01 else 3


def layer_series(data: RunData, prefix: str) -> dict[str, list[tuple[int, float]]]:
    """layer -> [(step, value)] for `grad_norm/` or `update_ratio/` keys; non-finite values kept."""
    found: dict[str, list[tuple[int, float]]] = {}
    for record in data.steps:
        for key, value in record.items():
            if key.startswith(prefix) and (value is None or isinstance(value, int | float)):
                number = math.inf if value is None else float(value)
                found.setdefault(key[len(prefix) :], []).append((int(record.get("step", 0)), number))
    return found


def dead_layers(data: RunData) -> dict[str, tuple[float, float]]:
    """Layers whose gradient norm collapsed to under 1% of its starting level: layer -> (start, late)."""
    dead = {}
    for layer, points in layer_series(data, "grad_norm/").items():
        values = [v for _, v in points if math.isfinite(v)]
        if len(values) < 6:
            continue
        start, late = median(values[:3]), median(values[len(values) // 2 :])
        if start > 0 and late < DEAD_DROP * start:
            dead[layer] = (start, late)
    return dead


def lr_too_high(data: RunData) -> str | None:
    """The evidence that the learning rate is too high, in words, or None."""
    reason = divergence(data)
    if reason:
        return reason
    dead = dead_layers(data)
    if dead:
        return f"the gradients of {', '.join(dead)} collapsed to under 1% of their starting size (dead units)"
    return None


def high_lr_divisor(data: RunData) -> int:
    """How much to lower the learning rate: 10x for a blow-up or dead layers, else 3x."""
    curve = loss_curve(data)
    if dead_layers(data):
        return 10
    points = [v for _, v in series(data.steps, "loss")]
    if curve is None and len(points) >= 2 and points[-1] > 5 * points[0]:
        return 10
    if curve and curve.losses[-1] > 10.0 * curve.first:
        return 10
    if curve and (curve.last > 2.0 * curve.first or curve.peak > 10.0 * curve.first):
        return 10
    return 3


def validation_improved(data: RunData) -> bool:
    """The validation loss fell from before the first step (epoch 0) to the last epoch by more than its
    noise: the model learned, however flat the noisy training steps look. A pre-trained language model's
    loss moves a few percent in a short run (20 steps: 3.86 -> 3.68 nats), under the flat-loss bar."""
    initial = data.initial
    last = next((r for r in reversed(data.epochs) if finite(r.get("val_loss"))), None)
    if initial is None or last is None or not finite(initial.get("val_loss")):
        return False
    drop = float(initial["val_loss"]) - float(last["val_loss"])
    paired = last.get("val_loss_paired_se")
    if finite(paired) and paired > 0 and last.get("val_loss_ref_epoch") == 0:
        noise = float(paired)
    else:
        se = [float(v) for r in (initial, last) if finite(v := r.get("val_loss_se"))]
        noise = math.sqrt(sum(v**2 for v in se)) if len(se) == 2 else 0.0
    if noise <= 0:  # no spread recorded: ask for a clear relative drop instead
        return drop > FLAT_DROP / 2 * float(initial["val_loss"])
    return drop > IMPROVED_Z * noise
