"""Packing is exact on a real (tiny) Llama: no attention across examples, no loss across boundaries."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunesmith.data.lm import IGNORE, encode_lm, lm_records
from tunesmith.data.packing import collate_packed, collate_padded, pack, token_nll


@pytest.fixture(scope="module")
def tok(tiny_llama: Path):
    return AutoTokenizer.from_pretrained(tiny_llama)


@pytest.fixture(scope="module")
def model(tiny_llama: Path):
    return AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()


def _encoded(tok, n: int = 9):
    words = ["the", "drug", "helped", "my", "pain", "but", "gave", "me", "awful", "nausea", "for", "weeks"]
    frame = pd.DataFrame({
        "prompt": [f"Review {words[i % 11]} please" for i in range(n)],
        "response": [" ".join(words[: 2 + (3 * i) % 10]) for i in range(n)],
    })  # fmt: skip
    return encode_lm(lm_records(frame), tok, 64)


def _loss(model, batch) -> tuple[float, int]:
    with torch.no_grad():
        logits = model(**batch.model_inputs()).logits
    nll, count, _ = token_nll(logits, batch.labels)
    return float(nll), int(count)


def test_packing_is_deterministic_first_fit_and_keeps_every_token(tok) -> None:
    enc = _encoded(tok)
    a, b = pack(enc, 128, seed=3), pack(enc, 128, seed=3)
    assert a.input_ids == b.input_ids and a.examples == b.examples
    assert sorted(i for w in a.examples for i in w) == list(range(len(enc.input_ids)))
    assert all(len(ids) <= 128 for ids in a.input_ids) and len(a.input_ids) < len(enc.input_ids)
    assert a.real_tokens == sum(map(len, enc.input_ids))
    assert a.padding_share == pytest.approx(1 - a.real_tokens / (128 * len(a.input_ids)))
    for window, positions in zip(a.examples, a.position_ids, strict=True):
        assert positions == [p for i in window for p in range(len(enc.input_ids[i]))]


def test_packed_loss_equals_the_token_weighted_mean_of_unpacked_losses(tok, model) -> None:
    enc = _encoded(tok)
    packed = pack(enc, 128, seed=0)
    batch = collate_packed(packed.input_ids, packed.labels, packed.position_ids, tok.pad_token_id)
    assert batch.padded_tokens > batch.real_tokens  # the windows differ in length: padding is exercised
    packed_nll, packed_count = _loss(model, batch)
    singles = [_loss(model, collate_padded([ids], [labels], tok.pad_token_id))
               for ids, labels in zip(enc.input_ids, enc.labels, strict=True)]  # fmt: skip
    total = sum(count for _, count in singles)
    assert packed_count == total == enc.loss_tokens()
    assert packed_nll / packed_count == pytest.approx(sum(nll for nll, _ in singles) / total, abs=1e-5)
    # and one padded (unpacked) batch of all the examples agrees too
    padded = collate_padded(enc.input_ids, enc.labels, tok.pad_token_id)
    nll, count = _loss(model, padded)
    assert nll / count == pytest.approx(packed_nll / packed_count, abs=1e-5)


def test_without_position_ids_the_examples_would_see_each_other(tok, model) -> None:
    # The guard on the test above: a plain causal mask over the same window gives another loss.
    enc = _encoded(tok)
    packed = pack(enc, 128, seed=0)
    batch = collate_packed(packed.input_ids, packed.labels, packed.position_ids, tok.pad_token_id)
    exact, _ = _loss(model, batch)
    batch.position_ids = None
    leaky, _ = _loss(model, batch)
    assert abs(exact - leaky) > 1e-3


def test_prompt_tokens_carry_no_loss_unless_train_on_prompt(tok, model) -> None:
    # The loss must not depend on what the model predicts at prompt positions: perturbing those logits
    # (as another prompt would) leaves the masked loss unchanged and changes it with train_on_prompt.
    frame = pd.DataFrame({"prompt": ["Review aspirin for my pain"], "response": ["It helped my pain."]})
    masked = encode_lm(lm_records(frame), tok, 64)
    full = encode_lm(lm_records(frame), tok, 64, train_on_prompt=True)
    assert masked.input_ids == full.input_ids
    first = next(i for i, label in enumerate(masked.labels[0]) if label != IGNORE)
    assert tok.decode(masked.input_ids[0][first:]) == "It helped my pain.<|im_end|>\n"
    batch = collate_padded(masked.input_ids, masked.labels, tok.pad_token_id)
    with torch.no_grad():
        logits = model(**batch.model_inputs()).logits
    changed = logits.clone()
    changed[:, : first - 1] += 3.0 * torch.randn_like(changed[:, : first - 1])  # predictions of prompt tokens
    full_labels = collate_padded(full.input_ids, full.labels, tok.pad_token_id).labels
    assert float(token_nll(changed, batch.labels)[0]) == pytest.approx(
        float(token_nll(logits, batch.labels)[0])
    )
    assert float(token_nll(changed, full_labels)[0]) != pytest.approx(
        float(token_nll(logits, full_labels)[0])
    )


def test_padded_collate_masks_padding(tok) -> None:
    batch = collate_padded([[5, 6, 7], [8]], [[IGNORE, 6, 7], [IGNORE]], tok.pad_token_id)
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch.labels.tolist() == [[IGNORE, 6, 7], [IGNORE, IGNORE, IGNORE]]
    assert (batch.real_tokens, batch.padded_tokens) == (4, 6)


def test_the_installed_transformers_supports_packed_position_ids(tok) -> None:
    from tunesmith.data.packing import packing_supported

    assert packing_supported()
    batch = collate_packed([[5, 6], [7]], [[IGNORE, 6], [IGNORE]], [[0, 1], [0]], tok.pad_token_id).to("cpu")
    assert "attention_mask" not in batch.model_inputs() and batch.model_inputs()["use_cache"] is False
    assert batch.position_ids.tolist() == [[0, 1], [0, 0]]  # padding starts a block of its own
