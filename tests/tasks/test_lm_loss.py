"""The causal-LM loss on loss-carrying positions only equals the full-logits loss (values and gradients)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunesmith.data.lm import IGNORE
from tunesmith.tasks.lm_loss import _full_token_nll, keeps_masked_logits, loss_token_nll


def _batch() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 200, (3, 12), generator=gen)
    labels = ids.clone()
    labels[:, 0] = IGNORE
    labels[0, :5] = IGNORE  # a masked prompt
    labels[1, 9:] = IGNORE  # right padding
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    return {"input_ids": ids, "attention_mask": mask}, labels


def test_masked_logits_loss_equals_the_full_loss(tiny_llama: Path) -> None:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).train()
    assert keeps_masked_logits(model)
    inputs, labels = _batch()
    fast = loss_token_nll(model, inputs, labels)
    fast_loss = fast[0].sum() / fast[1].sum()
    fast_loss.backward()
    fast_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    full = _full_token_nll(model(**inputs, use_cache=False).logits, labels)
    (full[0].sum() / full[1].sum()).backward()
    full_grads = [p.grad for p in model.parameters() if p.grad is not None]
    torch.testing.assert_close(fast[0], full[0], atol=1e-5, rtol=1e-5)
    assert fast[1].tolist() == full[1].tolist() == [7, 8, 11]
    assert fast[2].tolist() == full[2].tolist()
    assert len(fast_grads) == len(full_grads)
    for a, b in zip(fast_grads, full_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_prompt_learning_models_keep_the_full_logits(tiny_llama: Path) -> None:
    peft = pytest.importorskip("peft")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    prompt = peft.get_peft_model(model, peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2))
    lora = peft.get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama), peft.LoraConfig(task_type="CAUSAL_LM", r=2)
    )
    assert not keeps_masked_logits(prompt)
    assert keeps_masked_logits(lora)
    inputs, labels = _batch()
    nll, count, _ = loss_token_nll(prompt, inputs, labels)
    assert count.tolist() == [7, 8, 11] and bool(torch.isfinite(nll).all())
