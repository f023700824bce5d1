"""Callbacks: small objects the training loop calls at fixed points; each carries its own state_dict.

The loop calls, in order: on_train_start, then per micro-batch extra_loss (terms added to the loss), per
optimizer step on_after_backward (gradients present,
before clipping and the optimizer step) and on_step_end, then per epoch on_epoch_end (after evaluation),
and on_train_end. A callback asks the loop to stop by setting `ctx.stop_reason`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

    from tunesmith.config.schema import Recipe


@dataclass
class TrainContext:
    """What callbacks may read (and, for `stop_reason` and `extra`, write) during training."""

    recipe: Recipe
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    accelerator: Accelerator
    step: int = 0  # optimizer steps done
    epoch: int = 0  # 0-based epoch in progress
    steps_per_epoch: int = 0
    stop_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Callback:
    name = "callback"

    def on_train_start(self, ctx: TrainContext) -> None: ...

    def extra_loss(self, ctx: TrainContext, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """A term added to each micro-batch's loss (EWC, L2-SP, replay); None adds nothing."""
        return None

    def on_after_backward(self, ctx: TrainContext) -> None: ...

    def on_step_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        """`record` is the step's history record when this step is logged, else empty; add keys to it."""

    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        """`record` holds the epoch's training and validation metrics; add keys to it."""

    def on_train_end(self, ctx: TrainContext) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state saved in every checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
