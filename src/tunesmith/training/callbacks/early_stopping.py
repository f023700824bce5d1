"""Early stopping on the recipe's metric, with patience; says why it stopped."""

from __future__ import annotations

from typing import Any

from tunesmith.evaluation.metrics import LOWER_IS_BETTER
from tunesmith.training.callbacks.base import Callback, TrainContext


class EarlyStopping(Callback):
    name = "early_stopping"

    def __init__(self, metric: str, patience: int, min_delta: float = 0.0) -> None:
        self.metric = metric
        self.patience = patience
        self.min_delta = min_delta
        self.higher_is_better = metric not in LOWER_IS_BETTER
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.higher_is_better:
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        value = float(record[f"val_{self.metric}"])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, int(record["epoch"]), 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            ctx.stop_reason = (
                f"early stopping: val_{self.metric} did not improve on {self.best:.4f} (epoch {self.best_epoch}) "
                f"for {self.wait} epochs (patience {self.patience})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
