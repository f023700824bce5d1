"""`discriminative`: every weight trains, with layer-wise learning rates decaying from the top."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from tunesmith.config.schema import StrategyConfig, TrainConfig
from tunesmith.strategies.base import Strategy
from tunesmith.strategies.blocks import find_blocks
from tunesmith.strategies.layerwise import layerwise_groups
from tunesmith.strategies.options import Options, parse_options


class DiscriminativeOptions(Options):
    decay: float = Field(
        0.8, gt=0.0, le=1.0, description="lr factor per block, counted down from the top block"
    )
    head_multiplier: float = Field(5.0, gt=0.0, description="head lr = train.lr x head_multiplier")


class DiscriminativeStrategy(Strategy):
    name = "discriminative"
    description = "all weights train; lr x decay per block from the top, head lr x head_multiplier (LLRD)"
    options_model = DiscriminativeOptions
    recommended_lr = 5e-5

    def __init__(self, cfg: StrategyConfig) -> None:
        super().__init__(cfg)
        self.options = parse_options(DiscriminativeOptions, cfg)

    def param_groups(self, model: torch.nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
        o = self.options
        return layerwise_groups(
            model, find_blocks(model), lr=train.lr, weight_decay=train.weight_decay, decay=o.decay,
            head_multiplier=o.head_multiplier,
        )  # fmt: skip
