"""Replay: a few retain examples ride along with every training batch, scored through the retain head."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tunesmith.evaluation.inference import Collate, Encoded
from tunesmith.forgetting.retain import RetainHead
from tunesmith.training.callbacks.base import Callback, TrainContext


def replay_draw(size: int, available: int, fraction: float, seed: list[int]) -> list[int]:
    """Positions of the retain examples replayed beside a micro-batch of `size`: ceil(fraction * size), at
    least 1 and at most `available`, drawn without replacement from a generator seeded by `seed` (the run's
    seed, the optimizer step and the micro-batch within it), so a resumed run draws the same ones."""
    k = min(available, max(1, math.ceil(fraction * size)))
    return np.random.default_rng(seed).choice(available, size=k, replace=False).tolist()  # type: ignore[no-any-return]


class ReplayDraw(Callback):
    """Draws the retain examples for each micro-batch, scores them with `replay_loss` and adds their share
    of the batch's mean loss; the task decides how a retain batch is scored."""

    name = "replay"

    def __init__(self, data: Encoded, collate: Collate, fraction: float, seed: int) -> None:
        self.data, self.collate, self.fraction, self.seed = data, collate, fraction, seed
        self.micro = (
            0  # micro-batch within the optimizer step: with the step, it seeds the draw (exact resume)
        )
        self.last: torch.Tensor | float = 0.0  # read on logged steps only: no host sync per micro-batch

    def replay_loss(self, ctx: TrainContext, replay: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def extra_loss(self, ctx: TrainContext, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        size = len(batch["input_ids"])
        idx = replay_draw(size, len(self.data), self.fraction, [self.seed, ctx.step, self.micro])
        self.micro += 1
        device = batch["input_ids"].device
        replay = self.collate([self.data.input_ids[i] for i in idx], [self.data.labels[i] for i in idx])
        loss = self.replay_loss(ctx, {key: v.to(device) for key, v in replay.items()})
        self.last = loss.detach()
        # As if the k retain examples were part of the batch: their share of its mean loss.
        return loss * (len(idx) / size)

    def on_step_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        self.micro = 0
        if record:
            record["replay_loss"] = float(self.last)


class Replay(ReplayDraw):
    """Replay for classification: the retain examples scored through the retain head."""

    def __init__(self, head: RetainHead, data: Encoded, collate: Collate, fraction: float, seed: int) -> None:
        super().__init__(data, collate, fraction, seed)
        self.head = head

    def replay_loss(self, ctx: TrainContext, replay: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = replay.pop("labels")
        self.head.to(labels.device)
        return F.cross_entropy(self.head.logits(ctx.accelerator.unwrap_model(ctx.model), replay), labels)
