"""Packing and collation for causal-LM batches.

Packing puts several examples into one window of `max_length` tokens, greedily first-fit in a seeded
order (deterministic). Each example keeps its own position ids (restarting at 0) and attends only to
itself: transformers (>= 4.5x, `masking_utils.find_packed_sequence_indices`) reads a packed batch from
position ids that restart, for eager, sdpa and flash attention alike, when the batch has no
`attention_mask` and no KV cache. So a packed batch is `input_ids`, `labels`, `position_ids` and
`use_cache=False`, nothing else. Padding at the end of a window gets its own position run (its own block),
and labels -100. Because the first label of every example is -100 (data/lm.py), the shifted loss never
crosses from one example into the next, so the packed loss equals the unpacked one exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tunesmith.data.lm import IGNORE, EncodedLM


@dataclass
class Packed:
    """Windows of whole examples: ids, labels and position ids per window (unpadded lists)."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    position_ids: list[list[int]]
    examples: list[list[int]]  # indices into the EncodedLM of the examples in each window
    max_length: int
    seed: int
    real_tokens: int = 0
    padding_share: float = 0.0  # of windows padded to max_length
    extra: dict[str, Any] = field(default_factory=dict)


def pack(encoded: EncodedLM, max_length: int | None = None, seed: int = 0) -> Packed:
    """First-fit packing in a seeded random order; every example fits (they are cut to max_length)."""
    max_length = max_length or encoded.max_length
    order = list(range(len(encoded.input_ids)))
    random.Random(seed).shuffle(order)
    windows: list[list[int]] = []
    room: list[int] = []
    for index in order:
        size = len(encoded.input_ids[index])
        if size > max_length:
            raise ValueError(f"example {index} has {size} tokens > max_length {max_length}; truncate first")
        # First fit: the first window with room (a linear scan is fine for the data sizes here).
        slot = next((w for w, free in enumerate(room) if free >= size), None)
        if slot is None:
            windows.append([])
            room.append(max_length)
            slot = len(windows) - 1
        windows[slot].append(index)
        room[slot] -= size
    packed = Packed([], [], [], windows, max_length, seed)
    for members in windows:
        packed.input_ids.append([t for i in members for t in encoded.input_ids[i]])
        packed.labels.append([t for i in members for t in encoded.labels[i]])
        packed.position_ids.append([p for i in members for p in range(len(encoded.input_ids[i]))])
    packed.real_tokens = sum(len(ids) for ids in packed.input_ids)
    capacity = len(windows) * max_length
    packed.padding_share = 1.0 - packed.real_tokens / capacity if capacity else 0.0
    return packed


@dataclass
class LMBatch:
    """One batch: tensors for the model, plus token counts for the padding share and tokens/s."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor | None = None  # unpacked batches only
    position_ids: torch.Tensor | None = None  # packed batches only
    real_tokens: int = 0
    padded_tokens: int = 0

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments for `model(**...)` (labels excluded: the task computes its own loss)."""
        inputs: dict[str, Any] = {"input_ids": self.input_ids, "use_cache": False}
        if self.attention_mask is not None:
            inputs["attention_mask"] = self.attention_mask
        if self.position_ids is not None:
            # No attention_mask on purpose: transformers infers the per-example blocks from position ids.
            inputs["position_ids"] = self.position_ids
        return inputs

    def to(self, device: torch.device | str) -> LMBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return LMBatch(self.input_ids.to(device), self.labels.to(device), move(self.attention_mask),
                       move(self.position_ids), self.real_tokens, self.padded_tokens)  # fmt: skip


def _pad(rows: Sequence[Sequence[int]], width: int, value: int) -> torch.Tensor:
    return torch.tensor([list(row) + [value] * (width - len(row)) for row in rows], dtype=torch.long)


def collate_padded(
    input_ids: Sequence[Sequence[int]], labels: Sequence[Sequence[int]], pad_id: int
) -> LMBatch:
    """Unpacked examples, right-padded to the longest: attention_mask 0 and labels -100 on padding."""
    width = max(len(row) for row in input_ids)
    real = sum(len(row) for row in input_ids)
    mask = _pad([[1] * len(row) for row in input_ids], width, 0)
    return LMBatch(_pad(input_ids, width, pad_id), _pad(labels, width, IGNORE), attention_mask=mask,
                   real_tokens=real, padded_tokens=width * len(input_ids))  # fmt: skip


def collate_packed(
    input_ids: Sequence[Sequence[int]], labels: Sequence[Sequence[int]],
    position_ids: Sequence[Sequence[int]], pad_id: int,
) -> LMBatch:  # fmt: skip
    """Packed windows, right-padded to the longest; the padding is one more block (positions 0..k)."""
    width = max(len(row) for row in input_ids)
    positions = [list(row) + list(range(width - len(row))) for row in position_ids]
    real = sum(len(row) for row in input_ids)
    return LMBatch(_pad(input_ids, width, pad_id), _pad(labels, width, IGNORE),
                   position_ids=torch.tensor(positions, dtype=torch.long),
                   real_tokens=real, padded_tokens=width * len(input_ids))  # fmt: skip


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed next-token NLL, the number of loss tokens, and correct next-token predictions (on device).

    Token-mean loss = nll_sum / count; perplexity = exp(that); accuracy = correct / count.
    """
    shifted_logits = logits[:, :-1, :].float()
    targets = labels[:, 1:]
    valid = targets != IGNORE
    nll = torch.nn.functional.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]), targets.reshape(-1),
        ignore_index=IGNORE, reduction="sum",
    )  # fmt: skip
    correct = ((shifted_logits.argmax(-1) == targets) & valid).sum()
    return nll, valid.sum(), correct


def packing_supported() -> bool:
    """Whether the installed transformers separates packed sequences by their position ids.

    Older releases (before masking_utils.find_packed_sequence_indices) silently let packed examples attend
    to each other under eager / sdpa attention; `data.packing: true` must be refused there.
    """
    try:
        from transformers.masking_utils import find_packed_sequence_indices  # noqa: F401
    except ImportError:
        return False
    return True
