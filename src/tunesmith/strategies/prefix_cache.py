"""Outputs of the still-frozen bottom blocks, cached per example while those blocks stay frozen.

The frozen blocks run in eval mode (no dropout), so their output is a pure function of the token ids. When
every row of a batch has an entry, the frozen blocks pass their input through untouched and the topmost
frozen block returns the cached output: none of them computes. Thawing a block changes which output is
needed, so the entries are dropped.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tunesmith.strategies.blocks import Blocks
from tunesmith.strategies.feature_cache import place_rows, row_keys


def keep_eval(module: nn.Module, frozen: bool, model_training: bool) -> None:
    """A frozen module stays in eval mode whatever `model.train()` says; a thawed one follows the model again
    at once (not only at the next `model.train()`: dropout must not depend on when the last one happened)."""
    if frozen:
        module.train = lambda mode=True: nn.Module.train(module, False)  # type: ignore[method-assign]
        nn.Module.train(module, False)
    elif "train" in module.__dict__:
        del module.__dict__["train"]
        module.train(model_training)


class PrefixCache:
    def __init__(self, blocks: Blocks) -> None:
        self.layers = blocks.layers
        self.frozen = 0  # bottom layers frozen; their output (input of layer `frozen`) is what is cached
        self.active = False
        self.entries: dict[bytes, torch.Tensor] = {}
        self.keys: list[bytes] | None = None
        self.mask: torch.Tensor | None = None
        self.hit = False
        self.computed_rows = 0
        self._original = {i: layer.forward for i, layer in enumerate(self.layers)}
        blocks.backbone.register_forward_pre_hook(self._before, with_kwargs=True)
        blocks.backbone.register_forward_hook(self._after)

    def set_frozen(self, frozen_layers: int, embeddings_frozen: bool) -> None:
        if frozen_layers != self.frozen:
            self.entries.clear()
        self.frozen = frozen_layers
        self.active = embeddings_frozen and frozen_layers > 0
        for i, layer in enumerate(self.layers):
            if self.active and i < frozen_layers:
                layer.forward = self._frozen_forward(i)  # type: ignore[method-assign]
            elif "forward" in layer.__dict__:
                del layer.__dict__["forward"]

    def _before(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if not self.active or ids is None or kwargs.get("inputs_embeds") is not None:
            self.keys = None
            return
        mask = kwargs.get("attention_mask")
        self.mask = mask if mask is not None else torch.ones_like(ids)
        self.keys = row_keys(ids, self.mask, kwargs.get("token_type_ids"))
        self.hit = all(k in self.entries for k in self.keys)

    def _after(self, module: nn.Module, args: Any, output: Any) -> None:
        self.keys = None

    def _frozen_forward(self, i: int) -> Any:
        top = i == self.frozen - 1

        def forward(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if self.keys is not None and self.hit:
                if not top:
                    return hidden_states
                assert self.mask is not None
                return place_rows([self.entries[k] for k in self.keys], self.mask).to(hidden_states.device)
            with torch.no_grad():
                out = self._original[i](hidden_states, *args, **kwargs)
            if top and self.keys is not None and isinstance(out, torch.Tensor):
                assert self.mask is not None
                real = self.mask.bool()
                for row, key in enumerate(self.keys):
                    self.entries[key] = out[row][real[row]].clone()
                self.computed_rows += len(self.keys)
            return out

        return forward
