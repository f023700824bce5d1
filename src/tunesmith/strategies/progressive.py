"""`progressive`: gradual unfreezing from the top (ULMFiT; Lightning's BackboneFinetuning as a callback).

The optimizer starts with the parameter groups of what trains from the start (the head, `initial` blocks);
each block that thaws brings its own groups (with / without weight decay, at its layer-wise learning rate),
added to the optimizer and the learning-rate schedule at that moment. What is thawed is a pure function of
the optimizer step. On resume, a pre-hook on the optimizer's load_state_dict thaws the blocks whose groups
the checkpoint holds before the state is loaded, so the saved groups and moments fit. The block cache
starts empty on resume: outputs the uninterrupted run had cached are recomputed in other batches, whose other
padding changes the last bit, so a resumed run matches to float rounding (`cache: false` resumes bit for bit).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from pydantic import Field

from tunesmith.config.schema import StrategyConfig, TrainConfig
from tunesmith.strategies.base import Strategy
from tunesmith.strategies.blocks import Blocks, find_blocks
from tunesmith.strategies.layerwise import layerwise_groups
from tunesmith.strategies.options import Options, parse_options
from tunesmith.strategies.prefix_cache import PrefixCache, keep_eval
from tunesmith.training.callbacks.base import Callback, TrainContext

log = logging.getLogger(__name__)


class ProgressiveOptions(Options):
    every: float = Field(
        1.0, gt=0.0, description="epochs between thawing one more block; 0.5 = every half epoch"
    )
    initial: int = Field(0, ge=0, description="blocks below the head that train from the start")
    embeddings: bool = Field(True, description="thaw the embeddings last, after every block")
    decay: float = Field(1.0, gt=0.0, le=1.0, description="lr factor per block from the top (1 = same lr)")
    head_multiplier: float = Field(1.0, gt=0.0, description="head lr = train.lr x head_multiplier")
    cache: bool = Field(True, description="cache the outputs of the still-frozen bottom blocks")
    cache_mb: float = Field(
        2048.0,
        ge=0.0,
        description="memory for the outputs of lower frozen blocks, so a thaw recomputes nothing",
    )


def thawed_blocks(step: int, steps_per_epoch: int, every: float, initial: int, total: int) -> int:
    """Blocks below the head that train at optimizer step `step` (counted from the top)."""
    period = max(every * steps_per_epoch, 1e-9)
    return min(total, initial + math.floor(step / period + 1e-9))


class ProgressiveStrategy(Strategy):
    name = "progressive"
    description = "gradual unfreezing: the head first, then one more block from the top every `every` epochs"
    options_model = ProgressiveOptions
    recommended_lr = 3e-4

    def __init__(self, cfg: StrategyConfig) -> None:
        super().__init__(cfg)
        self.options = parse_options(ProgressiveOptions, cfg)
        self.blocks: Blocks | None = None
        self.model: torch.nn.Module | None = None
        self.cache: PrefixCache | None = None
        self.thawed = -1
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.waiting: dict[int, list[dict[str, Any]]] = {}  # block id -> its groups, not yet in the optimizer

    @property
    def units(self) -> list[int]:
        """Block ids in thawing order: top layer first, embeddings (-1) last when enabled."""
        assert self.blocks is not None
        n = len(self.blocks.layers)
        return list(range(n - 1, -1, -1)) + ([-1] if self.options.embeddings else [])

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        self.model, self.blocks = model, find_blocks(model)
        if self.options.cache:
            self.cache = PrefixCache(self.blocks, self.options.cache_mb)
        self.thaw(min(self.options.initial, len(self.units)))
        return model

    def thaw(self, count: int) -> bool:
        """Make exactly the top `count` blocks (and the head) trainable; once an optimizer is attached, hand it
        the groups of the blocks that thawed. Returns whether anything changed."""
        if count == self.thawed:
            return False
        assert self.blocks is not None and self.model is not None
        if self.optimizer is not None and count < self.thawed:
            raise ValueError(f"progressive: cannot freeze blocks again ({self.thawed} -> {count} thawed).")
        n = len(self.blocks.layers)
        trainable = {n, *self.units[:count]}
        for name, p in self.model.named_parameters():
            p.requires_grad_(self.blocks.block_of(name) in trainable)
        for i, layer in enumerate(self.blocks.layers):
            keep_eval(layer, i not in trainable, self.model.training)
        embeddings_frozen = -1 not in trainable
        for name, child in self.blocks.backbone.named_children():
            if child is self.blocks.layers:
                continue
            below = self.blocks.block_of(f"{self.blocks.backbone_prefix}.{name}.x") < 0
            if below or isinstance(child, torch.nn.Dropout):
                keep_eval(child, embeddings_frozen, self.model.training)
        if self.cache is not None:
            self.cache.set_frozen(n - len([u for u in self.units[:count] if u >= 0]), embeddings_frozen)
        self.thawed = count
        if self.optimizer is not None:
            for unit in self.units[:count]:
                for group in self.waiting.pop(unit, []):
                    add_group(self.optimizer, self.scheduler, group)
        return True

    def param_groups(self, model: torch.nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
        """The groups of what trains now; those of the frozen blocks wait for their block to thaw."""
        assert self.blocks is not None
        o = self.options
        groups = layerwise_groups(
            model, self.blocks, lr=train.lr, weight_decay=train.weight_decay, decay=o.decay,
            head_multiplier=o.head_multiplier, only_trainable=False,
        )  # fmt: skip
        thawed = max(self.thawed, 0)
        now, later = {len(self.blocks.layers), *self.units[:thawed]}, set(self.units[thawed:])
        self.waiting = {}
        active = []
        for group in groups:  # groups of blocks that never thaw (embeddings: false) are left out
            group["peak_lr"] = group["lr"]
            if group["block"] in later:
                self.waiting.setdefault(group["block"], []).append(group)
            elif group["block"] in now:
                active.append(group)
        return active

    def attach(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        self.optimizer, self.scheduler = optimizer, scheduler
        optimizer.register_load_state_dict_pre_hook(self._before_load)

    def _before_load(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> dict[str, Any]:
        """Resume: thaw the blocks whose groups the saved state holds. NaN rollback to a state saved before
        the last thaw: keep the newer groups (with fresh moments) by appending them to the saved state."""
        saved = state["param_groups"]
        blocks = {g.get("block") for g in saved}
        count = max([i + 1 for i, unit in enumerate(self.units) if unit in blocks], default=0)
        if count > self.thawed:
            self.thaw(count)
        extra = optimizer.param_groups[len(saved) :]
        if not extra:
            return state
        index = sum(len(g["params"]) for g in saved)
        padded = list(saved)
        for group in extra:
            padded.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(index, index + len(group["params"])))})  # fmt: skip
            index += len(group["params"])
        return {**state, "param_groups": padded}

    def callbacks(self) -> list[Callback]:
        return [Unfreeze(self)]


def add_group(optimizer: torch.optim.Optimizer, scheduler: Any, group: dict[str, Any]) -> None:
    """Add `group` on the schedule the head's group follows: its lr keys are the head's times the ratio of
    their peak learning rates (so warm-up, decay and a halving after a NaN rollback all carry over)."""
    ref = next(g for g in optimizer.param_groups if "peak_lr" in g)
    factor = group["peak_lr"] / ref["peak_lr"]
    new = dict(group)
    for key in ("lr", "initial_lr", "max_lr", "min_lr"):
        if key in ref:
            new[key] = ref[key] * factor
    for key in ("betas", "max_momentum", "base_momentum"):  # one-cycle also cycles the momentum
        if key in ref:
            new[key] = ref[key]
    optimizer.add_param_group(new)
    if scheduler is None:
        return
    position = optimizer.param_groups.index(ref)
    scheduler.base_lrs.append(scheduler.base_lrs[position] * factor)
    if hasattr(scheduler, "lr_lambdas"):
        scheduler.lr_lambdas.append(scheduler.lr_lambdas[position])
    if getattr(scheduler, "_last_lr", None) is not None:
        scheduler._last_lr.append(new["lr"])


class Unfreeze(Callback):
    name = "progressive_unfreezing"

    def __init__(self, strategy: ProgressiveStrategy) -> None:
        self.strategy = strategy

    def _apply(self, ctx: TrainContext) -> bool:
        o, units = self.strategy.options, self.strategy.units
        count = thawed_blocks(ctx.step, ctx.steps_per_epoch, o.every, min(o.initial, len(units)), len(units))
        changed = self.strategy.thaw(count)
        if changed:
            trainable = sum(p.numel() for p in ctx.model.parameters() if p.requires_grad)
            log.info(
                "step %d: %d of %d blocks thawed; %s parameters train",
                ctx.step,
                count,
                len(units),
                f"{trainable:,}",
            )
        return changed

    def on_train_start(self, ctx: TrainContext) -> None:
        self._apply(ctx)

    def on_step_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        # At an epoch's end the thaw waits for on_epoch_end, so validation still reads the cached outputs.
        if ctx.step % max(ctx.steps_per_epoch, 1) and self._apply(ctx) and record:
            record["thawed_blocks"] = self.strategy.thawed

    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        record["thawed_blocks"] = self.strategy.thawed  # the blocks that trained at the end of this epoch
        record["trainable_params"] = sum(p.numel() for p in ctx.model.parameters() if p.requires_grad)
        record["param_groups"] = len(ctx.optimizer.param_groups)
        if self.strategy.cache is not None:
            record["prefix_cache_mb"] = round(self.strategy.cache.megabytes, 2)
        self._apply(ctx)
