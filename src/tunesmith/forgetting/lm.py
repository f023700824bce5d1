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

from tunesmith.forgetting.penalties import Penalty, squared_gradients
from tunesmith.forgetting.replay import ReplayDraw
from tunesmith.tasks.base import Collate, Encoded
from tunesmith.tasks.lm_loss import loss_token_nll
from tunesmith.training.callbacks.base import Callback, TrainContext

log = logging.getLogger(__name__)
MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")


def lm_callbacks(recipe: Any, model: nn.Module, retain: Encoded, collate: Collate) -> list[Callback]:
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
    collate: Collate,
    params: list[tuple[str, nn.Parameter]],
    samples: int,
) -> dict[str, torch.Tensor]:
    """Mean squared per-example gradient of the retain texts' token-mean NLL (empirical diagonal Fisher)."""
    device = next(model.parameters()).device

    def loss_of(i: int) -> Callable[[], torch.Tensor]:
        batch = {k: v.to(device) for k, v in collate([retain.input_ids[i]], [retain.labels[i]]).items()}
        return lambda: _nll(model, batch)

    return squared_gradients(model, params, (loss_of(i) for i in range(min(samples, len(retain)))))


class LMReplay(ReplayDraw):
    """Replay for a causal LM: the retain texts' own token-mean next-token loss."""

    def replay_loss(self, ctx: TrainContext, replay: dict[str, torch.Tensor]) -> torch.Tensor:
        return _nll(ctx.accelerator.unwrap_model(ctx.model), replay)
