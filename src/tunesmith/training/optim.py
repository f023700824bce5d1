"""Optimizer and learning-rate schedules."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from tunesmith.config.schema import TrainConfig


def make_optimizer(groups: list[dict[str, Any]], train: TrainConfig) -> torch.optim.Optimizer:
    # The fused kernel runs on CPU and CUDA; on CPU it is several times faster than foreach (measured:
    # ~0.03 s against ~0.2 s per step for MiniLM's 22.7 M parameters on 2 cores). foreach elsewhere.
    params = [p for g in groups for p in g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    return torch.optim.AdamW(
        groups,
        lr=train.lr,
        weight_decay=train.weight_decay,
        fused=fused or None,
        foreach=None if fused else True,
    )


def make_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig, total_steps: int) -> LRScheduler:
    total_steps = max(total_steps, 1)
    warmup = int(train.warmup_ratio * total_steps)
    if train.schedule == "one-cycle":
        # One-cycle (Smith 2018): warm up to each group's lr, anneal by cosine; momentum cycles inversely.
        # OneCycleLR needs at least one step in each phase; very short runs get a minimal cycle.
        total_steps = max(total_steps, 3)
        return OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=max(train.warmup_ratio, 2.0 / total_steps),
            anneal_strategy="cos",
        )

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        if train.schedule == "linear":
            return max(0.0, 1.0 - progress)
        if train.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return 1.0  # constant after warmup

    return LambdaLR(optimizer, factor)


def scale_learning_rate(optimizer: torch.optim.Optimizer, scheduler: LRScheduler, factor: float) -> None:
    """Multiply every learning rate, now and for the rest of the schedule (used by NaN rollback)."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
        for key in ("initial_lr", "max_lr", "min_lr"):
            if key in group:
                group[key] *= factor
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
