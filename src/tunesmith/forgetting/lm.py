"""Forgetting control for `task: causal-lm`: EWC, L2-SP and replay on the general-text retain set.

A language model needs no retain head: its own next-token loss on the retain text is what must be kept.
- l2sp: the plain pull of the trainable weights (the LoRA matrices, or all of them under `full`) to the start.
- ewc: the same pull weighted by the diagonal Fisher of the retain text's next-token log-likelihood, one
  example at a time (forgetting.ewc_samples of them), scaled to [0, 1] as for classification.
- replay: each micro-batch also scores a few retain texts (forgetting.replay_fraction of the batch, drawn
  by a generator seeded from the step, so a resume draws the same ones) and adds their token-mean loss.
The anchors are the weights the callbacks see when built (CausalLM.callbacks, before training: on a resume
that is still the freshly loaded start, so they are the same).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tunesmith.forgetting.penalties import Penalty, importance
from tunesmith.forgetting.replay import replay_draw
from tunesmith.tasks.base import Encoded
from tunesmith.tasks.lm_loss import loss_token_nll
from tunesmith.training.callbacks.base import Callback, TrainContext

log = logging.getLogger(__name__)
LMCollate = Callable[[list[list[int]], list[Any]], dict[str, torch.Tensor]]
MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")


def lm_callbacks(recipe: Any, model: nn.Module, retain: Encoded, collate: LMCollate) -> list[Callback]:
    """The forgetting.method callback for a causal LM ([] for none)."""
    cfg = recipe.forgetting
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.method == "l2sp":
        return [Penalty("l2sp", params, cfg.l2sp_weight)]
    if cfg.method == "ewc":
        fisher = lm_fisher(model, retain, collate, params, cfg.ewc_samples)
        return [Penalty("ewc", params, cfg.ewc_weight, fisher)]
    if cfg.method == "replay":
        return [LMReplay(retain, collate, cfg.replay_fraction, recipe.train.seed)]
    return []


def _nll(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    nll, count, _ = loss_token_nll(
        model, {k: v for k, v in batch.items() if k in MODEL_INPUTS}, batch["labels"]
    )
    return nll.sum() / count.sum().clamp_min(1)


def lm_fisher(
    model: nn.Module,
    retain: Encoded,
    collate: LMCollate,
    params: list[tuple[str, nn.Parameter]],
    samples: int,
) -> dict[str, torch.Tensor]:
    """Mean squared per-example gradient of the retain texts' token-mean NLL (empirical diagonal Fisher)."""
    device = next(model.parameters()).device
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params}
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the starting model's function
    for i in range(min(samples, len(retain))):
        batch = {k: v.to(device) for k, v in collate([retain.input_ids[i]], [retain.labels[i]]).items()}
        model.zero_grad(set_to_none=True)
        _nll(model, batch).backward()
        for n, p in params:
            if p.grad is not None:
                fisher[n] += p.grad.detach().float() ** 2
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return importance(fisher)


class LMReplay(Callback):
    name = "replay"

    def __init__(self, data: Encoded, collate: LMCollate, fraction: float, seed: int) -> None:
        self.data, self.collate, self.fraction, self.seed = data, collate, fraction, seed
        self.micro = (
            0  # micro-batch within the optimizer step: with the step, it seeds the draw (exact resume)
        )
        self.last: torch.Tensor | float = 0.0  # read on logged steps only: no host sync per micro-batch

    def extra_loss(self, ctx: TrainContext, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        size = len(batch["input_ids"])
        idx = replay_draw(size, len(self.data), self.fraction, [self.seed, ctx.step, self.micro])
        k = len(idx)
        self.micro += 1
        device = batch["input_ids"].device
        replay = self.collate([self.data.input_ids[i] for i in idx], [self.data.labels[i] for i in idx])
        loss = _nll(ctx.accelerator.unwrap_model(ctx.model), {key: v.to(device) for key, v in replay.items()})
        self.last = loss.detach()
        # As if the k retain texts were part of the batch: their share of its mean loss.
        return loss * (k / size)

    def on_step_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        self.micro = 0
        if record:
            record["replay_loss"] = float(self.last)
