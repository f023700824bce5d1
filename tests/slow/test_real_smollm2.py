"""The real embedded SmolLM2 (make test-slow): conversion into a fresh cache, reload, the facts in issue 11."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunesmith.evaluation.generate import generate_greedy
from tunesmith.models.gguf_cache import resolve_causal_lm_dir

pytestmark = pytest.mark.slow


def test_smollm2_converts_once_and_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path))
    directory = resolve_causal_lm_dir("smollm2")  # ~40 s: de-quantise the GGUF, save safetensors
    assert directory == tmp_path / "models" / "smollm2"
    assert (directory / "model.safetensors").is_file() and (directory / "tokenizer.json").is_file()
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")]  # no temp dir left
    stamp = (directory / "model.safetensors").stat().st_mtime_ns
    assert resolve_causal_lm_dir("smollm2") == directory
    assert (directory / "model.safetensors").stat().st_mtime_ns == stamp  # not converted twice

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 134.5
    assert model.config.vocab_size == len(tokenizer) == 49152
    assert tokenizer.chat_template
    answer = generate_greedy(model, tokenizer, ["What is the capital of France?"], max_new_tokens=16)
    assert answer == ["The capital of France is Paris."]
