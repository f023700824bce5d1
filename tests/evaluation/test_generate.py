"""Greedy generation is deterministic and batch-independent (left padding); the n-gram degeneracy score."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunesmith.evaluation.generate import format_prompt, generate_greedy, repeated_ngram_share


@pytest.fixture(scope="module")
def lm(tiny_llama: Path):
    return AutoModelForCausalLM.from_pretrained(
        tiny_llama, dtype=torch.float32
    ), AutoTokenizer.from_pretrained(tiny_llama)


def test_greedy_generation_is_deterministic_and_does_not_depend_on_the_batch(lm) -> None:
    model, tok = lm
    prompts = [
        "Hi",
        "Write a long patient review of aspirin for a headache",
        "What is the capital of France?",
    ]
    model.train()
    # Raw text (chat=False): a random model with tied embeddings repeats the prompt's last token, so each
    # prompt gets its own visible continuation (after a chat prompt it repeats a newline).
    batched = generate_greedy(model, tok, prompts, max_new_tokens=5, batch_size=3, chat=False)
    assert model.training  # the caller's mode is restored
    again = generate_greedy(model, tok, prompts, max_new_tokens=5, batch_size=3, chat=False)
    one_by_one = [generate_greedy(model, tok, [p], max_new_tokens=5, chat=False)[0] for p in prompts]
    assert batched == again == one_by_one
    assert len(set(batched)) == 3
    chat = generate_greedy(model, tok, prompts, max_new_tokens=4, batch_size=2)
    assert chat == generate_greedy(model, tok, prompts, max_new_tokens=4, batch_size=1)


def test_the_chat_template_is_used_when_the_tokenizer_has_one(lm) -> None:
    _, tok = lm
    assert format_prompt(tok, "Hi").endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert format_prompt(tok, "Hi", chat=False) == "Hi"


def test_repeated_ngram_share() -> None:
    assert repeated_ngram_share("the drug helped my pain a lot") == 0.0
    assert repeated_ngram_share("short") == 0.0
    assert repeated_ngram_share("I am fine " * 10) > 0.8
    loop = "it helped me a lot and it helped me a lot and it helped me"
    assert 0.3 < repeated_ngram_share(loop) < repeated_ngram_share("I am fine " * 10)
