"""Tokenisation, length-bucketed batch order and dynamic padding.

Sorting examples of similar length into the same batch and padding each batch only to its own longest
example removes most padding, which is most of the speed-up over random batches padded to the batch max.
The batch order is a pure function of (seed, epoch), which is what makes an exact resume possible: the
loop regenerates epoch e's order and skips the batches it already did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def tokenize_texts(texts: Sequence[str], tokenizer: Any, max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to `max_length`, unpadded, in one batched call."""
    if not texts:
        return []
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return [list(ids) for ids in encoded["input_ids"]]


class LengthBucketBatcher:
    """Batches of indices with similar lengths, in an order fixed by (seed, epoch).

    shuffle=True (training): shuffle all indices, cut them into mega-batches of `mega_batch` batches, sort
    each mega-batch by length, cut it into batches and shuffle the order of all batches. Mega-batches keep
    the randomness of the epoch while neighbours in a batch have similar lengths; since a mega-batch holds
    a whole number of batches, only the epoch's very last batch can be short.
    shuffle=False (evaluation): all indices sorted by length, longest first, so a batch that does not fit in
    memory fails at once rather than at the end.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int, shuffle: bool = True, mega_batch: int = 50
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer; got {batch_size}.")
        if mega_batch < 1:
            raise ValueError(f"`mega_batch` must be a positive integer; got {mega_batch}.")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.mega_batch = mega_batch

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-len(self.lengths) // self.batch_size)

    def batches(self, epoch: int) -> list[list[int]]:
        """Every index exactly once, as lists of plain ints (usable as a DataLoader batch_sampler)."""
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            return self._cut(order)
        # Its own generator seeded from (seed, epoch): never touches or depends on global RNG state.
        rng = np.random.default_rng(np.random.SeedSequence([self.seed % 2**64, epoch % 2**64]))
        order = rng.permutation(len(self.lengths))
        span = self.batch_size * self.mega_batch
        batches: list[list[int]] = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            batches += self._cut(chunk[np.argsort(self.lengths[chunk], kind="stable")])
        return [batches[i] for i in rng.permutation(len(batches))]

    def _cut(self, order: np.ndarray) -> list[list[int]]:
        return [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]


def collate(
    encoded: Sequence[Sequence[int]],
    labels: Sequence[int] | None,
    pad_id: int,
    with_token_type_ids: bool,
    pad_to_multiple_of: int | None = None,
) -> dict[str, torch.Tensor]:
    """Pad a batch to its own longest example (right padding).

    Returns input_ids, attention_mask, token_type_ids (zeros; only when asked: BERT-style models) and labels
    (long; only when given). `pad_to_multiple_of` (e.g. 8) helps tensor cores on GPUs.
    """
    if not encoded:
        raise ValueError("`encoded` must hold at least one example; got an empty batch.")
    width = max(len(ids) for ids in encoded)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = np.full((len(encoded), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encoded), width), dtype=np.int64)
    for i, ids in enumerate(encoded):
        input_ids[i, : len(ids)] = ids
        mask[i, : len(ids)] = 1
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if with_token_type_ids:
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    if labels is not None:
        batch["labels"] = torch.as_tensor(list(labels), dtype=torch.long)
    return batch


def count_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Real (unpadded) tokens in a collated batch: what tokens/s and FLOP estimates should count."""
    return int(batch["attention_mask"].sum().item())
