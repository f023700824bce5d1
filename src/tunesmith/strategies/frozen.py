"""`frozen`: feature extraction. The backbone never changes, so its features are computed once and cached."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from tunesmith.config.schema import StrategyConfig
from tunesmith.strategies.base import Strategy
from tunesmith.strategies.blocks import find_blocks
from tunesmith.strategies.feature_cache import FeatureCache, weights_hash
from tunesmith.strategies.options import Options, parse_options
from tunesmith.training.callbacks.base import Callback, TrainContext

log = logging.getLogger(__name__)


class FrozenOptions(Options):
    cache: bool = True  # reuse features across epochs (and across runs, through the disk cache)
    cache_dir: str | None = None  # default: <output.dir>/.cache/features


class FrozenStrategy(Strategy):
    name = "frozen"
    description = "feature extraction: the backbone is frozen and its features cached; only the head trains"
    options_model = FrozenOptions
    recommended_lr = 1e-3

    def __init__(self, cfg: StrategyConfig) -> None:
        super().__init__(cfg)
        self.options = parse_options(FrozenOptions, cfg)
        self.cache: FeatureCache | None = None

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        blocks = find_blocks(model)
        for name, p in model.named_parameters():
            p.requires_grad_(not name.startswith(blocks.backbone_prefix + "."))
        if self.options.cache:
            self.cache = FeatureCache(blocks.backbone)
        return model

    def callbacks(self) -> list[Callback]:
        return [FeatureCacheFiles(self.cache, self.options.cache_dir)] if self.cache else []


class FeatureCacheFiles(Callback):
    """Loads the disk cache that matches the backbone at the start; saves new features after an epoch."""

    name = "feature_cache"

    def __init__(self, cache: FeatureCache, cache_dir: str | None) -> None:
        self.cache, self.cache_dir = cache, cache_dir
        self.path: Path | None = None

    def on_train_start(self, ctx: TrainContext) -> None:
        folder = (
            Path(self.cache_dir or Path(ctx.recipe.output.dir) / ".cache" / "features").expanduser().resolve()
        )
        precision = str(ctx.accelerator.mixed_precision)
        self.path = folder / f"{weights_hash(self.cache.backbone, precision)}.safetensors"
        if self.path.is_file():
            rows = self.cache.load(self.path)
            log.info("feature cache: %d examples from %s", rows, self.path)

    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        record["feature_cache_hits"], record["feature_cache_misses"] = self.cache.hits, self.cache.misses
        self.cache.hits = self.cache.misses = 0
        if self.cache.dirty and self.path is not None and ctx.accelerator.is_main_process:
            self.cache.save(self.path)
