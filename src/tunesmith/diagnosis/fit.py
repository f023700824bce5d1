"""How far a classifier got from a constant guess: the measure behind `barely_fit`, which the label-error
rule also needs (on a model that fit nothing, every row looks mislabelled)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tunesmith.diagnosis.rundata import RunData, finite

BARELY_FIT = 0.15  # the final training loss closed under this share of the way from a constant guess to a fit
PRIOR_DISTANCE = 0.15  # validation probabilities this close (mean total variation) to that guess: uninformed


@dataclass
class Fit:
    train_loss: float  # the last epoch's
    guess_loss: float  # the best constant prediction's
    floor: float  # a perfect fit's
    distance: float | None  # mean total variation of the validation probabilities from the guess

    @property
    def share(self) -> float:
        """Share of the way from the guess's loss to a perfect fit that the training loss covered."""
        span = self.guess_loss - self.floor
        return (self.guess_loss - self.train_loss) / span if span > 0 else 1.0

    @property
    def near_guess(self) -> bool:
        return self.share < BARELY_FIT and (self.distance is None or self.distance < PRIOR_DISTANCE)


def fit_to_guess(data: RunData) -> Fit | None:
    """The last epoch's fit against the best constant guess, or None without the numbers for it."""
    train_loss = next((r["train_loss"] for r in reversed(data.epochs) if finite(r.get("train_loss"))), None)
    reference = guess_and_floor(data)
    if train_loss is None or reference is None:
        return None
    prior, guess_loss, floor = reference
    return Fit(float(train_loss), guess_loss, floor, distance_from_guess(data, prior))


def guess_and_floor(data: RunData) -> tuple[list[float], float, float] | None:
    """The best constant prediction under the training loss, its loss, and the loss of a perfect fit.

    Unweighted cross-entropy is minimised by the class prior (validation support; the split is stratified);
    balanced class weights or oversampling make every class weigh the same, so by the uniform guess. Label
    smoothing moves both the guess and the floor (a perfect fit still pays the smoothed targets' entropy).
    """
    per_class = data.metrics.get("validation", {}).get("per_class") or {}
    support = [float(per_class.get(label, {}).get("support") or 0) for label in data.labels]
    k, total = len(support), sum(support)
    if k < 2 or total <= 0:
        return None
    balanced = data.setting("train.class_weights") is True or data.setting("data.balance") is not None
    prior = [1.0 / k] * k if balanced else [s / total for s in support]
    eps = float(data.setting("train.label_smoothing") or 0.0)
    guess = [(1 - eps) * p + eps / k for p in prior]
    fitted = [1 - eps + eps / k] + [eps / k] * (k - 1)
    return prior, _entropy(guess), _entropy(fitted)


def _entropy(ps: list[float]) -> float:
    return -sum(p * math.log(p) for p in ps if p > 0)


def distance_from_guess(data: RunData, guess: list[float]) -> float | None:
    """Mean total-variation distance of the validation probabilities from the constant guess."""
    rows = [
        r["probs"] for r in data.predictions.get("validation", []) if len(r.get("probs") or []) == len(guess)
    ]
    if not rows:
        return None
    return sum(0.5 * sum(abs(p - g) for p, g in zip(probs, guess, strict=True)) for probs in rows) / len(rows)
