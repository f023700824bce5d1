"""Greedy generation for causal LMs, and a repeated-n-gram score for degenerate output.

Deterministic: greedy decoding (no sampling), batched with LEFT padding so every prompt's last token sits
at the end of the row and generation continues from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tunesmith.data.lm import has_chat_template


def format_prompt(tokenizer: Any, prompt: str, chat: bool | None = None) -> str:
    """The prompt as the model sees it: the chat template with a generation prompt when the tokenizer has
    one (or `chat=True`), else the raw text."""
    use_chat = has_chat_template(tokenizer) if chat is None else chat
    if not use_chat:
        return prompt
    return str(tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True))  # fmt: skip


@torch.no_grad()
def generate_greedy(
    model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int = 64,
    batch_size: int = 8, chat: bool | None = None,
) -> list[str]:  # fmt: skip
    """Greedy continuations of `prompts` (only the new text, special tokens removed), in order."""
    if chat and not has_chat_template(tokenizer):
        raise ValueError("chat=True needs a tokenizer with a chat template")
    use_chat = has_chat_template(tokenizer) if chat is None else chat
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [format_prompt(tokenizer, p, use_chat) for p in prompts[start : start + batch_size]]
            # A templated prompt already holds its special tokens; raw text gets the tokenizer's own.
            rows = [list(tokenizer(t, add_special_tokens=not use_chat)["input_ids"]) for t in texts]
            width = max(len(r) for r in rows)
            ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                num_beams=1, pad_token_id=pad_id, eos_token_id=eos, temperature=None, top_p=None, top_k=None,
            )  # fmt: skip
            outputs += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
    finally:
        model.train(was_training)
    return outputs


def repeated_ngram_share(text: str, n: int = 3) -> float:
    """Share of the word n-grams in `text` that repeat an earlier one (0: none, near 1: a loop).

    A healthy sentence scores about 0; "the the the the" or a phrase stuck in a loop scores high.
    """
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)
