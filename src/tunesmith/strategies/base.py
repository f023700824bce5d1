"""What a fine-tuning strategy decides: which weights train, at which learning rates, with which callbacks."""

from __future__ import annotations

from typing import Any

import torch

from tunesmith.config.schema import StrategyConfig, TrainConfig
from tunesmith.training.callbacks.base import Callback

NO_DECAY_HINTS = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight", "ln_")


def decay_split(
    named: list[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """Two AdamW groups: weight decay on matrices, none on biases and norms (standard BERT practice)."""
    decay = [p for n, p in named if p.requires_grad and not any(h in n for h in NO_DECAY_HINTS)]
    no_decay = [p for n, p in named if p.requires_grad and any(h in n for h in NO_DECAY_HINTS)]
    groups = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


class Strategy:
    """Base strategy: train every weight. Subclasses override the three hooks."""

    name = "full"
    description = "every weight trains at the same learning rate (the baseline)"
    options_model: Any = (
        None  # a tunesmith.strategies.options.Options subclass, when the strategy has options
    )
    recommended_lr = 5e-5  # a sensible train.lr for this strategy (shown by `tunesmith strategies`)

    def __init__(self, cfg: StrategyConfig) -> None:
        self.cfg = cfg

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Freeze / wrap the model; may return a new module (e.g. a PEFT wrapper)."""
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def param_groups(self, model: torch.nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
        return decay_split(list(model.named_parameters()), train.lr, train.weight_decay)

    def attach(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Called once the optimizer and schedule exist, before any checkpoint is loaded into them."""

    def callbacks(self) -> list[Callback]:
        return []

    # ---- strategies that fit something before (or instead of) the loop: setfit, zero-shot ----
    trains = True  # False: the loop is skipped and the prepared model is evaluated as it is

    def validate(self, recipe: Any, labels: list[str]) -> None:
        """Checks that need the recipe and the labels, before the run directory exists (UserError)."""

    def before_training(self, model: torch.nn.Module, task: Any, train_data: Any, device: Any) -> None:
        """Called once after prepare() and encoding, before the optimizer exists (a resume loads over it)."""

    def skip_training(self, run_dir: Any) -> Any:
        """The TrainOutcome of a strategy that does not train (`trains = False`)."""
        raise NotImplementedError
