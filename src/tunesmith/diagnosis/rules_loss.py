"""Rules over the training-loss curve: divergence, loss spikes, a flat loss."""

from __future__ import annotations

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
from tunesmith.diagnosis.rundata import RunData
from tunesmith.diagnosis.signals import (
    MIN_POINTS,
    divergence,
    flat_and_unlearned,
    flat_lr_factor,
    high_lr_divisor,
    loss_curve,
    lr_too_high,
)
from tunesmith.findings import Finding

SPIKE_FACTOR = 2.0  # a logged loss this many times the median of the previous few is a spike
SPIKE_MIN_JUMP = 0.3  # ... and at least this much higher in absolute terms (noise near zero loss)
SPIKE_NOISE = 5.0  # ... and this many times the run's typical step-to-step change (batch-to-batch noise)


@rule("divergence")
def diverging_loss(data: RunData) -> list[Finding]:
    reason = divergence(data)
    if reason is None:
        return []
    curve = loss_curve(data)
    points = series(data.steps, "loss")
    steps, losses = [s for s, _ in points], [v for _, v in points]
    divisor = high_lr_divisor(data)
    grad_norms = [v for _, v in series(data.steps, "grad_norm")]
    start = curve.first if curve else losses[0]
    end = curve.last if curve else losses[-1]
    peak = max(losses)
    # How sure: how far the end is above where the loss started, and on how many logged points.
    ratio = max(losses[-1], end) / start if start > 0 else float("inf")
    confidence = "high" if ratio >= 3 and len(losses) >= MIN_POINTS else "medium" if ratio >= 2 else "low"
    evidence = {
        "reason": reason,
        "loss_start": rnd(start),
        "loss_min": rnd(curve.low if curve else min(losses)),
        "loss_end": rnd(end),
        "last_logged_loss": rnd(losses[-1]),
        "loss_peak": rnd(peak),
        "peak_step": steps[losses.index(peak)],
        "end_over_start": rnd(ratio, 3),
        "logged_points": len(losses),
        "confidence": confidence,
        "lr": lr_of(data),
    }
    if grad_norms:
        evidence["max_grad_norm"] = rnd(max(grad_norms))
    return [
        finding(
            "divergence",
            "error",
            f"Training diverged: {reason}",
            evidence,
            f"The learning rate is too high for this model and batch size. Lower train.lr about {divisor}x "
            f"(and keep warmup and gradient clipping on). Confidence {confidence}: the loss ended "
            f"{ratio:.1f}x its start, judged on {len(losses)} logged point(s).",
            stabilising_patch(data, divisor),
        )
    ]


@rule("loss_spikes")
def loss_spikes(data: RunData) -> list[Finding]:
    curve = loss_curve(data)
    if curve is None or divergence(data):
        return []  # a diverged run gets the divergence finding instead
    spikes = []
    # Small logged windows on imbalanced data swing between majority-only and mixed batches: a jump counts
    # only when it stands out from how much the logged loss typically changes from one record to the next.
    noise = median([abs(b - a) for a, b in zip(curve.losses[:-1], curve.losses[1:], strict=True)])
    for i in range(3, len(curve.losses)):
        reference = median(curve.losses[max(0, i - 5) : i])
        jump = curve.losses[i] - reference
        if curve.losses[i] > SPIKE_FACTOR * reference and jump > max(SPIKE_MIN_JUMP, SPIKE_NOISE * noise):
            spikes.append((curve.steps[i], curve.losses[i] / reference))
    if not spikes:
        return []
    return [
        finding(
            "loss_spikes",
            "warning",
            f"{len(spikes)} loss spike{'s' if len(spikes) > 1 else ''} during training",
            {
                "spikes": len(spikes),
                "steps": [s for s, _ in spikes[:10]],
                "largest_ratio_to_recent_median": rnd(max(r for _, r in spikes), 2),
                "lr": lr_of(data),
            },
            "Sudden jumps in the loss mean some updates overshoot. Lower train.lr about 3x, and keep warmup "
            "and gradient clipping on.",
            stabilising_patch(data, 3),
        )
    ]


@rule("flat_loss")
def flat_loss(data: RunData) -> list[Finding]:
    curve = loss_curve(data)
    if curve is None or not flat_and_unlearned(data):
        return []
    lr = lr_of(data)
    chance = chance_loss(data)
    evidence: dict[str, Any] = {
        "loss_start": rnd(curve.first),
        "loss_end": rnd(curve.last),
        "relative_drop": rnd(curve.relative_drop),
        "logged_steps": len(curve.losses),
        "lr": lr,
    }
    at_chance = chance is not None and curve.last >= 0.95 * chance
    if chance is not None:
        evidence["chance_loss"] = rnd(chance)
    title = "The training loss is flat" + (" at chance level" if at_chance else "")
    summary = (
        f"The loss fell only {max(curve.relative_drop, 0.0):.1%} over training: the model is not learning."
    )
    too_high = lr_too_high(data)
    if too_high:
        divisor = high_lr_divisor(data)
        evidence["lr_too_high"] = too_high
        advice = (
            f" Not because the learning rate is low: {too_high}. Lower train.lr about {divisor}x "
            f"(from {lr:g} to {sig(lr / divisor):g})."
        )
        return [
            finding(
                "flat_loss", "warning", title, evidence, summary + advice, stabilising_patch(data, divisor)
            )
        ]
    factor = flat_lr_factor(data)
    advice = (
        f" Raise train.lr about {factor}x (from {lr:g} to {sig(lr * factor):g}); if the loss then falls but "
        "is still falling at the end, also train more epochs."
    )
    return [
        finding("flat_loss", "warning", title, evidence, summary + advice, {"train.lr": sig(lr * factor)})
    ]
