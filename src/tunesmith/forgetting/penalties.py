"""EWC and L2-SP: penalties pulling the weights towards where fine-tuning started.

L2-SP (Li et al. 2018) adds weight * sum (theta - theta0)^2. EWC (Kirkpatrick et al. 2017) weights each
parameter's squared distance by its diagonal Fisher information on the retain task, scaled to [0, 1] (see
`importance`), so `ewc_weight` is on the scale of `l2sp_weight` whatever the model and data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.evaluation.inference import Collate, Encoded
from tunesmith.forgetting.retain import RetainHead, batches
from tunesmith.training.callbacks.base import Callback, TrainContext


def anchored(model: nn.Module, exclude: set[int]) -> list[tuple[str, nn.Parameter]]:
    """Trainable parameters that belong to the starting model's function (not the new task's head)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in exclude]


def diagonal_fisher(
    model: nn.Module, head: RetainHead, data: Encoded, collate: Collate, params: list[tuple[str, nn.Parameter]],
    samples: int,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Mean squared per-example gradient of the retain log-likelihood (empirical Fisher), one example at a time."""
    device = next(model.parameters()).device
    head.to(device)
    one_at_a_time = batches(Encoded(data.input_ids[:samples], data.labels[:samples]), 1, collate, device)

    def loss_of(batch: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
        labels = batch.pop("labels")
        return lambda: F.cross_entropy(head.logits(model, batch), labels)

    return squared_gradients(model, params, (loss_of(batch) for _idx, batch in one_at_a_time))


def squared_gradients(
    model: nn.Module,
    params: list[tuple[str, nn.Parameter]],
    example_losses: Iterable[Callable[[], torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """The empirical diagonal Fisher: the squared gradient of each example's loss, summed, then scaled by
    `importance`. In eval mode (no dropout): the Fisher of the starting model's function."""
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params}
    was_training = model.training
    model.eval()
    for example_loss in example_losses:
        model.zero_grad(set_to_none=True)
        example_loss().backward()
        for n, p in params:
            if p.grad is not None:
                fisher[n] += p.grad.detach().float() ** 2
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return importance(fisher)


def importance(fisher: dict[str, torch.Tensor], quantile: float = 0.99) -> dict[str, torch.Tensor]:
    """Fisher / its 99th percentile, capped at 1. The diagonal Fisher is extremely heavy-tailed (on MiniLM one
    LayerNorm weight holds 10^7 times the mean), so scaling by the mean or max leaves almost every weight
    unprotected or makes a few gradients explode; with this scale EWC is L2-SP weighted by importance in [0, 1]."""
    flat = torch.cat([f.flatten() for f in fisher.values()])
    if flat.numel() > 1_000_000:  # torch.quantile's input limit; a fixed sample keeps runs repeatable
        flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
    scale = float(torch.quantile(flat.cpu(), quantile))
    if scale <= 0:
        scale = float(flat.max()) or 1.0
    return {n: (f / scale).clamp(max=1.0) for n, f in fisher.items()}


class Penalty(Callback):
    """weight * sum_i importance_i * (theta_i - anchor_i)^2; importance 1 everywhere is L2-SP."""

    def __init__(self, name: str, params: list[tuple[str, nn.Parameter]], weight: float,
                 importance: dict[str, torch.Tensor] | None = None) -> None:  # fmt: skip
        self.name = name
        self.weight = weight
        self.params = [p for _n, p in params]
        self.anchor = [p.detach().clone() for p in self.params]
        self.importance = [importance[n] for n, _p in params] if importance is not None else None
        self.last: torch.Tensor | float = 0.0  # read on logged steps only: no host sync per micro-batch

    def penalty(self) -> torch.Tensor:
        total = torch.zeros((), device=self.params[0].device if self.params else "cpu")
        for i, (p, a) in enumerate(zip(self.params, self.anchor, strict=True)):
            sq = (p.float() - a.float()) ** 2
            total = (
                total + (sq * self.importance[i]).sum() if self.importance is not None else total + sq.sum()
            )
        return self.weight * total

    def extra_loss(self, ctx: TrainContext, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        term = self.penalty()
        self.last = term.detach()
        return term

    def on_step_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        if record:
            record[f"{self.name}_penalty"] = float(self.last)
