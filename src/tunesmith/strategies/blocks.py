"""Where the pieces of a Hugging Face classifier are: backbone, embeddings, transformer blocks, head.

Strategies that treat the model block by block (frozen, discriminative, progressive, adapter) find the
blocks here, so they work for BERT-like encoders and GPT-like decoders without per-model tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Blocks:
    backbone: nn.Module  # the pre-trained base model (model.bert, model.transformer, ...)
    backbone_prefix: str  # its attribute name on the classifier, e.g. "bert"
    layers: nn.ModuleList  # the transformer blocks, bottom first
    layers_prefix: str  # parameter-name prefix of the blocks, e.g. "bert.encoder.layer."
    head_names: list[str]  # children of the classifier that are not the backbone (classifier, score, ...)

    def block_of(self, name: str) -> int:
        """-1 below the blocks (embeddings), i for block i, len(layers) above them (pooler, final norm, head)."""
        if name.startswith(self.layers_prefix):
            return int(name[len(self.layers_prefix) :].split(".", 1)[0])
        if not name.startswith(self.backbone_prefix + "."):
            return len(self.layers)
        inner = name[len(self.backbone_prefix) + 1 :]
        return -1 if _is_embedding_param(self.backbone, inner) else len(self.layers)


def _is_embedding_param(backbone: nn.Module, inner_name: str) -> bool:
    top = inner_name.split(".", 1)[0]
    module = getattr(backbone, top, None)
    return "emb" in top or isinstance(module, nn.Embedding) or top in {"wte", "wpe"}


def unwrap_hf(model: nn.Module) -> nn.Module:
    """The Hugging Face model inside a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def find_blocks(model: nn.Module) -> Blocks:
    prefix = getattr(model, "base_model_prefix", "") or ""
    backbone = getattr(model, prefix, None) if prefix else None
    if not isinstance(backbone, nn.Module):
        raise ValueError(
            f"`model` must be a Hugging Face *ForSequenceClassification model; got {type(model).__name__}."
        )
    layers_name, layers = _largest_block_list(backbone)
    head = [n for n, child in model.named_children() if n != prefix and any(True for _ in child.parameters())]
    return Blocks(backbone, prefix, layers, f"{prefix}.{layers_name}.", head)


def _largest_block_list(backbone: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of identical blocks holding the most parameters: the transformer layers."""
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in backbone.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1:
            size = sum(p.numel() for p in module.parameters())
            if best is None or size > best[0]:
                best = (size, name, module)
    if best is None:
        raise ValueError(f"no list of transformer blocks found in {type(backbone).__name__}.")
    return best[1], best[2]


def set_trainable(params: Iterable[torch.nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)
