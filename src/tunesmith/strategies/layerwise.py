"""Parameter groups block by block, with the learning rate decaying from the top (ULMFiT, LLRD)."""

from __future__ import annotations

from typing import Any

import torch

from tunesmith.strategies.base import NO_DECAY_HINTS
from tunesmith.strategies.blocks import Blocks


def block_lr(block: int, n_layers: int, lr: float, decay: float, head_multiplier: float) -> float:
    """The head (block n_layers) gets lr * head_multiplier, the top layer lr, each block below `decay` times less."""
    if block >= n_layers:
        return lr * head_multiplier
    return lr * decay ** (n_layers - 1 - block)


def layerwise_groups(
    model: torch.nn.Module, blocks: Blocks, *, lr: float, weight_decay: float, decay: float, head_multiplier: float,
    only_trainable: bool = True,
) -> list[dict[str, Any]]:  # fmt: skip
    """Two AdamW groups per block (with / without weight decay), top block first, each named `layer<k>`
    (`head`, `embeddings`) and carrying its block id under "block". With only_trainable=False, frozen
    parameters are included too (progressive unfreezing hands those groups to the optimizer as blocks thaw).
    """
    n = len(blocks.layers)
    by_block: dict[int, list[tuple[str, torch.nn.Parameter]]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad or not only_trainable:
            by_block.setdefault(blocks.block_of(name), []).append((name, p))
    groups: list[dict[str, Any]] = []
    for block in sorted(by_block, reverse=True):
        rate = block_lr(block, n, lr, decay, head_multiplier)
        label = "head" if block >= n else ("embeddings" if block < 0 else f"layer{block}")
        named = by_block[block]
        decayed = [p for nm, p in named if not any(h in nm for h in NO_DECAY_HINTS)]
        plain = [p for nm, p in named if any(h in nm for h in NO_DECAY_HINTS)]
        for params, wd, suffix in ((decayed, weight_decay, ""), (plain, 0.0, ".no_decay")):
            if params:
                groups.append(
                    {"params": params, "lr": rate, "weight_decay": wd, "name": label + suffix, "block": block}
                )
    return groups
