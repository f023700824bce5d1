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


class Replay(Callback):
    name = "replay"

    def __init__(self, head: RetainHead, data: Encoded, collate: Collate, fraction: float, seed: int) -> None:
        self.head, self.data, self.collate = head, data, collate
        self.fraction, self.seed = fraction, seed
        self.micro = (
            0  # micro-batch within the optimizer step: with the step, it seeds the draw (exact resume)
        )
        self.last = 0.0

    def extra_loss(self, ctx: TrainContext, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        size = len(batch["input_ids"])
        k = min(len(self.data), max(1, math.ceil(self.fraction * size)))
        rng = np.random.default_rng([self.seed, ctx.step, self.micro])
        self.micro += 1
        idx = rng.choice(len(self.data), size=k, replace=False).tolist()
        device = batch["input_ids"].device
        replay = {key: v.to(device) for key, v in self.collate([self.data.input_ids[i] for i in idx],
                                                                [self.data.labels[i] for i in idx]).items()}  # fmt: skip
        labels = replay.pop("labels")
        self.head.to(device)
        loss = F.cross_entropy(self.head.logits(ctx.accelerator.unwrap_model(ctx.model), replay), labels)
        self.last = float(loss.detach())
        # The mean loss of a batch holding `size` new and `k` retain examples, up to the new examples' factor.
        return loss * (k / size)

    def on_step_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        self.micro = 0
        if record:
            record["replay_loss"] = self.last
