"""Rules over the per-epoch records: overfitting, still improving at the end, train/val gap, early stop, barely fit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tunesmith.diagnosis.common import finding, lr_of, regularising_patch, rnd, sig
from tunesmith.diagnosis.fit import fit_to_guess
from tunesmith.diagnosis.registry import rule
from tunesmith.diagnosis.rundata import RunData, finite
from tunesmith.diagnosis.signals import flat_and_unlearned, lr_too_high
from tunesmith.findings import Finding

OVERFIT_EPOCHS = 2  # epochs of rising validation loss (after its minimum) that count as overfitting
NOISE_Z = 2.0  # a change must exceed this many standard errors of the validation loss to count
GAP = 0.15  # train-minus-validation metric gap that counts as large


def _noise(se_a: float | None, se_b: float | None, level: float) -> float:
    # Without a recorded standard error, treat 2% of the loss as noise.
    if se_a is None or se_b is None:
        return 0.02 * level
    return math.sqrt(se_a**2 + se_b**2)


def _rise_noise(best: EpochPoint, last: EpochPoint) -> tuple[float, str]:
    """Noise of (last - best) validation loss: the paired standard error the monitor measured on the same
    examples when it has one for this pair of epochs, else the two means' errors as if independent."""
    paired = last.record.get("val_loss_paired_se")
    if finite(paired) and last.record.get("val_loss_ref_epoch") == best.epoch and paired > 0:
        return float(paired), "paired per-example differences"
    return _noise(best.se, last.se, best.val_loss), "independent means"


@dataclass
class EpochPoint:
    epoch: int  # 1-based
    val_loss: float
    se: float | None
    train_loss: float | None
    record: dict[str, Any]


def epoch_points(data: RunData) -> list[EpochPoint]:
    """The epochs that have a validation loss, in order."""
    points = []
    for i, r in enumerate(data.epochs):
        if finite(r.get("val_loss")):
            points.append(
                EpochPoint(
                    epoch=int(r["epoch"]) if finite(r.get("epoch")) else i + 1,
                    val_loss=float(r["val_loss"]),
                    se=float(r["val_loss_se"]) if finite(r.get("val_loss_se")) else None,
                    train_loss=float(r["train_loss"]) if finite(r.get("train_loss")) else None,
                    record=r,
                )
            )
    return points


def _metric(data: RunData) -> str:
    metric = data.setting("eval.metric", "macro_f1")
    return metric if metric in ("accuracy", "macro_f1", "weighted_f1") else "macro_f1"


@rule("overfitting")
def overfitting(data: RunData) -> list[Finding]:
    points = epoch_points(data)
    if len(points) < OVERFIT_EPOCHS + 1:
        return []
    best_i = min(range(len(points)), key=lambda i: points[i].val_loss)
    best, last = points[best_i], points[-1]
    rising = len(points) - 1 - best_i
    rise = last.val_loss - best.val_loss
    noise, noise_kind = _rise_noise(best, last)
    train_falling = best.train_loss is None or last.train_loss is None or last.train_loss < best.train_loss
    if rising < OVERFIT_EPOCHS or rise <= NOISE_Z * noise or not train_falling:
        return []
    metric = _metric(data)
    evidence: dict[str, Any] = {
        "best_val_loss_epoch": best.epoch,
        "val_loss_best": rnd(best.val_loss),
        "val_loss_last": rnd(last.val_loss),
        "rise": rnd(rise),
        "noise_se": rnd(noise),
        "noise_from": noise_kind,
        "rise_in_se": rnd(rise / noise, 1) if noise > 0 else None,
        "epochs_rising": rising,
        "train_loss_at_best": None if best.train_loss is None else rnd(best.train_loss),
        "train_loss_last": None if last.train_loss is None else rnd(last.train_loss),
    }
    for name, point in (("at_best", best), ("last", last)):
        value = point.record.get(f"val_{metric}")
        if finite(value):
            evidence[f"val_{metric}_{name}"] = rnd(value)
    kept = _kept_epoch(data, points, metric)
    regularise = regularising_patch(data)
    patch: dict[str, Any] = {"train.epochs": best.epoch} | regularise
    advice = f"Train for {best.epoch} epochs (or rely on early stopping), and regularise"
    if kept is not None and kept > best.epoch:
        # The weights kept are the best by the metric, not by the loss: the metric still improved after the
        # loss turned (the model grew overconfident while ranking better), so cutting at the loss minimum
        # would throw that away. Regularisation slows the fit (dropout nets need 2-3x the epochs:
        # Srivastava et al. 2014), so with it the run trains 1.5x longer; the best epoch is kept, so that
        # costs time, not quality. Without a regulariser left to raise, the cut goes to the kept epoch.
        evidence[f"kept_epoch_by_val_{metric}"] = kept
        planned = data.setting("train.epochs")  # more than ran when early stopping ended the run
        longer = math.ceil(1.5 * max(int(planned) if finite(planned) else 0, len(points)))
        patch = ({"train.epochs": longer} | regularise) if regularise else {"train.epochs": kept}
        advice = (f"{metric} still improved until epoch {kept}, the epoch kept: the loss grows from "
                  "overconfidence. " + (f"Regularise and train longer ({longer} epochs), as a regularised "
                  "model fits more slowly" if regularise else f"Train for {kept} epochs"))  # fmt: skip
    return [
        finding(
            "overfitting",
            "warning",
            f"Overfitting from epoch {best.epoch + 1}: validation loss rose for {rising} epochs "
            "while training loss fell",
            evidence,
            f"Validation loss was lowest at epoch {best.epoch} and rose by {evidence['rise_in_se']} standard "
            f"errors since. {advice}: raise train.weight_decay or model.dropout, use a parameter-efficient "
            "strategy, or add data.",
            patch,
        )
    ]


def _kept_epoch(data: RunData, points: list[EpochPoint], metric: str) -> int | None:
    """The epoch whose weights the run kept: the recorded best epoch, else the best validation metric's."""
    best = data.metrics.get("best_epoch")
    if finite(best):
        return int(best)
    scored = [p for p in points if finite(p.record.get(f"val_{metric}"))]
    return max(scored, key=lambda p: p.record[f"val_{metric}"]).epoch if scored else None


@rule("still_improving")
def still_improving(data: RunData) -> list[Finding]:
    """Underfitting by stopping too soon: validation loss still falling clearly in the last epoch."""
    points = epoch_points(data)
    if len(points) < 2 or _stopped_early(data) or lr_too_high(data):
        return []
    previous, last = points[-2], points[-1]
    metric = next((m for m in (f"val_{_metric(data)}", "val_accuracy") if finite(last.record.get(m))), None)
    if metric and finite(previous.record.get(metric)) and last.record[metric] <= previous.record[metric]:
        return []  # the loss still falls but the metric that picks the model no longer improves
    drop = previous.val_loss - last.val_loss
    if last.val_loss > min(p.val_loss for p in points) or drop <= NOISE_Z * _noise(
        previous.se, last.se, previous.val_loss
    ):
        return []
    train_drop = None
    if last.train_loss is not None and previous.train_loss:
        train_drop = (previous.train_loss - last.train_loss) / previous.train_loss
    if train_drop is not None and train_drop < 0.05:
        return []
    epochs = int(data.setting("train.epochs", len(points)))
    train_accuracy = last.record.get("train_accuracy")
    low = finite(train_accuracy) and train_accuracy < 0.8
    return [
        finding(
            "underfitting",
            "warning" if low else "info",
            "Still improving when training ended" + (" (underfitting)" if low else ""),
            {
                "epochs": len(points),
                "val_loss_previous": rnd(previous.val_loss),
                "val_loss_last": rnd(last.val_loss),
                "train_loss_relative_drop_last_epoch": None if train_drop is None else rnd(train_drop),
                "train_accuracy_last": rnd(train_accuracy) if finite(train_accuracy) else None,
            },
            f"Validation loss fell clearly in the last epoch, so more training should help: raise "
            f"train.epochs from {epochs} to {epochs * 2} (early stopping ends it once it stops improving).",
            {"train.epochs": epochs * 2},
        )
    ]


@rule("generalization_gap")
def generalization_gap(data: RunData) -> list[Finding]:
    metric = _metric(data)
    best = data.metrics.get("best_epoch")
    records = [r for r in data.epochs if finite(r.get(f"train_{metric}")) and finite(r.get(f"val_{metric}"))]
    if not records:
        return []
    record = next((r for r in records if r.get("epoch") == best), records[-1])
    train_value, val_value = float(record[f"train_{metric}"]), float(record[f"val_{metric}"])
    support = sum(
        c.get("support", 0) for c in data.metrics.get("validation", {}).get("per_class", {}).values()
    )
    # Binomial standard error of the validation estimate: a gap inside 3 SE is noise.
    se = math.sqrt(max(val_value * (1 - val_value), 0.01) / support) if support else 0.0
    gap = train_value - val_value
    if gap < GAP or gap < 3 * se:
        return []
    patch = regularising_patch(data)
    return [
        finding(
            "generalization_gap",
            "warning",
            f"Large gap between training and validation {metric}: {train_value:.2f} vs {val_value:.2f}",
            {
                "epoch": record.get("epoch"),
                f"train_{metric}": rnd(train_value),
                f"val_{metric}": rnd(val_value),
                "gap": rnd(gap),
                "validation_examples": support or None,
                "validation_se": rnd(se) if se else None,
            },
            "The model fits the training data much better than unseen data. Regularise (raise "
            "train.weight_decay or model.dropout, fewer epochs, a parameter-efficient strategy) or add training data; check "
            "the data audit for leakage or a validation set drawn from a different distribution.",
            patch,
        )
    ]


def _stopped_early(data: RunData) -> bool:
    reason = data.metrics.get("stop_reason") or ""
    return any(e.get("event") == "early_stop" for e in data.events) or reason.startswith("early stopping")


@rule("early_stopping")
def early_stopping(data: RunData) -> list[Finding]:
    if not _stopped_early(data):
        return []
    event = next((e for e in data.events if e.get("event") == "early_stop"), {})
    reason = data.metrics.get("stop_reason") or event.get("message") or "early stopping"
    epochs_run = data.metrics.get("epochs_run") or len(data.epochs)
    return [
        finding(
            "early_stopping",
            "info",
            f"Early stopping ended training after epoch {epochs_run}",
            {
                "reason": reason,
                "epochs_run": epochs_run,
                "epochs_planned": data.setting("train.epochs"),
                "best_epoch": data.metrics.get("best_epoch"),
                "step": event.get("step"),
            },
            "Nothing to fix: validation stopped improving and the best epoch's weights were restored. Lower "
            "train.epochs to save time on repeat runs.",
        )
    ]


@rule("barely_fit")
def barely_fit(data: RunData) -> list[Finding]:
    """Underfitting seen on the training data itself: at the end the training loss is still close to what
    a constant class-prior guess scores, and the validation predictions barely move from that guess. The
    validation-loss rule above misses it when a decaying learning rate has already flattened the last epoch."""
    points = epoch_points(data)
    fit = fit_to_guess(data)
    if not points or fit is None or not fit.near_guess or _stopped_early(data):
        return []
    if lr_too_high(data) or data.setting("train.l1") or flat_and_unlearned(data):
        return []  # too high a learning rate, an L1 term in the loss, or a flat loss: other rules' cases
    best, last = min(points, key=lambda p: p.val_loss), points[-1]
    if last.val_loss - best.val_loss > NOISE_Z * _rise_noise(best, last)[0]:
        return []  # validation loss rising: overfitting's case, not this
    lr, epochs = lr_of(data), int(data.setting("train.epochs", len(points)))
    patch = {"train.lr": sig(lr * 3), "train.epochs": epochs * 2}
    return [
        finding(
            "barely_fit",
            "warning",
            f"Under-trained: the training loss ended at {fit.train_loss:.3f}, close to the "
            f"{fit.guess_loss:.3f} of a constant guess",
            {
                "train_loss_last": rnd(fit.train_loss),
                "constant_guess_loss": rnd(fit.guess_loss),
                "perfect_fit_loss": rnd(fit.floor),
                "share_of_gap_closed": rnd(fit.share),
                "validation_distance_from_guess": None if fit.distance is None else rnd(fit.distance),
                "lr": lr,
                "epochs": epochs,
            },
            f"After {len(points)} epochs the training loss closed only {max(fit.share, 0.0):.0%} of the "
            "gap between guessing the class prior and fitting every example, and the validation probabilities "
            "stay near that guess: the model is under-trained (underfitting), whatever its accuracy. Raise "
            f"train.lr 3x (from {lr:g} to {sig(lr * 3):g}) and train.epochs from {epochs} to {epochs * 2}; "
            "the best epoch is kept, so a longer run costs time, not quality.",
            patch,
        )
    ]
