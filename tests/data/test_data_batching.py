"""Tokenisation, length-bucketed batch order and dynamic padding."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch

from tunesmith.data.batching import LengthBucketBatcher, collate, count_tokens, tokenize_texts


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from tunesmith.models.registry import resolve_model_dir

    return AutoTokenizer.from_pretrained(resolve_model_dir("minilm"))


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(5, 256) for _ in range(n)]


def _flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


def test_tokenize_truncates_without_padding(tokenizer: Any) -> None:
    ids = tokenize_texts(["short text", "a much longer text " * 100, ""], tokenizer, max_length=16)
    assert len(ids) == 3
    assert len(ids[1]) == 16 and len(ids[0]) < 16
    assert ids[0][0] == tokenizer.cls_token_id and ids[0][-1] == tokenizer.sep_token_id
    assert all(isinstance(t, int) for t in ids[0])
    assert tokenize_texts([], tokenizer, 16) == []


@pytest.mark.parametrize("n, batch_size", [(1000, 16), (17, 4), (5, 8), (1, 1), (0, 3)])
def test_every_index_exactly_once(n: int, batch_size: int) -> None:
    for shuffle in (True, False):
        batcher = LengthBucketBatcher(_lengths(n), batch_size, seed=1, shuffle=shuffle)
        batches = batcher.batches(0)
        assert sorted(_flat(batches)) == list(range(n))
        assert len(batches) == len(batcher)
        assert all(1 <= len(b) <= batch_size for b in batches)
        assert sum(len(b) < batch_size for b in batches) <= 1  # only one short batch per epoch


def test_deterministic_per_seed_and_epoch() -> None:
    lengths = _lengths()
    first = LengthBucketBatcher(lengths, 16, seed=3).batches(2)
    np.random.seed(123)  # global RNG state must not matter
    random.seed(99)
    assert LengthBucketBatcher(lengths, 16, seed=3).batches(2) == first
    assert LengthBucketBatcher(lengths, 16, seed=4).batches(2) != first


def test_does_not_touch_global_rng() -> None:
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    LengthBucketBatcher(_lengths(), 16, seed=3).batches(0)
    assert np.random.rand() == expected


def test_order_differs_across_epochs() -> None:
    batcher = LengthBucketBatcher(_lengths(), 16, seed=3)
    epochs = [batcher.batches(e) for e in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    assert {frozenset(b) for b in epochs[0]} != {frozenset(b) for b in epochs[1]}


def _mean_padding_waste(batches: list[list[int]], lengths: list[int]) -> float:
    waste = [1 - sum(lengths[i] for i in b) / (len(b) * max(lengths[i] for i in b)) for b in batches]
    return float(np.mean(waste))


def test_bucketing_cuts_padding_waste() -> None:
    lengths = _lengths(2000)
    bucketed = _mean_padding_waste(LengthBucketBatcher(lengths, 16, seed=0).batches(0), lengths)
    perm = np.random.default_rng(0).permutation(len(lengths)).tolist()
    random_batches = [perm[i : i + 16] for i in range(0, len(perm), 16)]
    random_waste = _mean_padding_waste(random_batches, lengths)
    assert bucketed < 0.25 * random_waste
    assert bucketed < 0.1


def test_evaluation_order_is_sorted_longest_first() -> None:
    lengths = _lengths(100)
    order = _flat(LengthBucketBatcher(lengths, 8, seed=0, shuffle=False).batches(0))
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    assert LengthBucketBatcher(lengths, 8, seed=1, shuffle=False).batches(5) == LengthBucketBatcher(
        lengths, 8, seed=0, shuffle=False
    ).batches(0)


def test_resume_is_a_slice_of_the_same_order() -> None:
    batcher = LengthBucketBatcher(_lengths(), 16, seed=9)
    full = batcher.batches(1)
    assert LengthBucketBatcher(_lengths(), 16, seed=9).batches(1)[7:] == full[7:]


def test_rejects_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketBatcher([1, 2], 0, seed=0)


def test_collate_pads_to_the_longest_in_batch() -> None:
    batch = collate(
        [[101, 7, 102], [101, 102], [101, 5, 6, 7, 102]], [2, 0, 1], pad_id=0, with_token_type_ids=True
    )
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"].shape == (3, 5) and batch["input_ids"].dtype == torch.long
    assert batch["input_ids"][1].tolist() == [101, 102, 0, 0, 0]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["token_type_ids"].sum() == 0 and batch["token_type_ids"].shape == (3, 5)
    assert batch["labels"].tolist() == [2, 0, 1] and batch["labels"].dtype == torch.long
    assert count_tokens(batch) == 10


def test_collate_options() -> None:
    batch = collate([[1, 2, 3]], None, pad_id=9, with_token_type_ids=False, pad_to_multiple_of=8)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].tolist() == [[1, 2, 3, 9, 9, 9, 9, 9]]
    with pytest.raises(ValueError, match="empty"):
        collate([], [], pad_id=0, with_token_type_ids=False)


def test_tokenize_then_collate(tokenizer: Any) -> None:
    ids = tokenize_texts(["hello world", "a somewhat longer sentence here"], tokenizer, max_length=32)
    batch = collate(ids, [0, 1], pad_id=tokenizer.pad_token_id, with_token_type_ids=True)
    reference = tokenizer(
        ["hello world", "a somewhat longer sentence here"], padding=True, return_tensors="pt"
    )
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(batch[key], reference[key])
