"""Outputs of the still-frozen bottom blocks, cached per example while those blocks stay frozen.

The frozen blocks run in eval mode (no dropout), so their outputs are a pure function of the token ids. When
every row of a batch has an entry for the topmost frozen block, the frozen blocks pass their input through
untouched and the topmost one returns the cached output: none of them computes. The outputs of the lower
frozen blocks are kept too (within a memory budget): when the top frozen block thaws, the output of the block
below it is already there, so thawing needs no recomputation. A thawed block's entries are dropped.
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
    def __init__(self, blocks: Blocks, budget_mb: float = 2048.0) -> None:
        self.layers = blocks.layers
        self.frozen = 0  # bottom layers frozen; their output (input of layer `frozen`) is what is cached
        self.active = False
        self.entries: dict[int, dict[bytes, torch.Tensor]] = {}  # layer -> example key -> its output
        self.budget = budget_mb * 2**20  # bytes for the outputs of the frozen layers below the top one
        self.lower_bytes = 0
        self.keys: list[bytes] | None = None
        self.mask: torch.Tensor | None = None
        self.hit = False
        self.computed_rows = 0
        self._original = {i: layer.forward for i, layer in enumerate(self.layers)}
        blocks.backbone.register_forward_pre_hook(self._before, with_kwargs=True)
        blocks.backbone.register_forward_hook(self._after)

    def set_frozen(self, frozen_layers: int, embeddings_frozen: bool) -> None:
        self.frozen = frozen_layers
        self.active = embeddings_frozen and frozen_layers > 0
        for index in [i for i in self.entries if i >= frozen_layers or not self.active]:
            del self.entries[index]  # thawed: its output is no longer fixed
        self.lower_bytes = sum(_size(e) for i, e in self.entries.items() if i < frozen_layers - 1)
        for i, layer in enumerate(self.layers):
            if self.active and i < frozen_layers:
                layer.forward = self._frozen_forward(i)  # type: ignore[method-assign]
            elif "forward" in layer.__dict__:
                del layer.__dict__["forward"]

    def _before(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        # Pixels (vision backbones) are not cached here: frozen stages still run without gradients.
        if (
            not self.active
            or ids is None
            or ids.is_floating_point()
            or kwargs.get("inputs_embeds") is not None
        ):
            self.keys = None
            return
        mask = kwargs.get("attention_mask")
        self.mask = mask if mask is not None else torch.ones_like(ids)
        self.keys = row_keys(ids, self.mask, kwargs.get("token_type_ids"))
        top = self.entries.get(self.frozen - 1, {})
        self.hit = all(k in top for k in self.keys)

    def _after(self, module: nn.Module, args: Any, output: Any) -> None:
        self.keys = None

    def _store(self, i: int, out: torch.Tensor) -> None:
        assert self.keys is not None and self.mask is not None
        top = i == self.frozen - 1
        real = self.mask.bool()
        rows = [out[row][real[row]] for row in range(len(self.keys))]  # boolean indexing copies
        if not top:
            size = sum(r.numel() * r.element_size() for r in rows)
            if self.lower_bytes + size > self.budget:
                return
            self.lower_bytes += size
        self.entries.setdefault(i, {}).update(zip(self.keys, rows, strict=True))
        if top:
            self.computed_rows += len(self.keys)

    def _frozen_forward(self, i: int) -> Any:
        top = i == self.frozen - 1

        def forward(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if self.keys is not None and self.hit:
                if not top:
                    return hidden_states
                assert self.mask is not None
                cached = self.entries[i]
                return place_rows([cached[k] for k in self.keys], self.mask).to(hidden_states.device)
            with torch.no_grad():
                out = self._original[i](hidden_states, *args, **kwargs)
            if self.keys is not None and isinstance(out, torch.Tensor):
                self._store(i, out)
            return out

        return forward

    @property
    def megabytes(self) -> float:
        return sum(_size(e) for e in self.entries.values()) / 2**20


def _size(entries: dict[bytes, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in entries.values())
