"""Tiny randomly initialised models for fast tests and examples: real architecture, milliseconds to load."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from tunesmith.models.loader import load_tokenizer
from tunesmith.models.registry import resolve_model_dir


def make_tiny_bert(
    out_dir: Path, *, layers: int = 2, hidden: int = 32, heads: int = 2, seed: int = 0, dropout: float = 0.1
) -> Path:
    """Save a random BERT (with the packaged MiniLM tokenizer) as a local Hugging Face model directory."""
    tokenizer = load_tokenizer(resolve_model_dir("minilm"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=hidden * 2, max_position_embeddings=512, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )  # fmt: skip
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def make_tiny_llama(
    out_dir: Path, *, layers: int = 2, hidden: int = 32, heads: int = 2, seed: int = 0
) -> Path:
    """Save a random Llama (with the SmolLM2 tokenizer and its chat template) as a local causal-LM directory.

    The tokenizer comes from the model cache: the first use on a machine reads it from the SmolLM2 GGUF
    (about 10 s, once); later uses read the cached tokenizer files in well under a second.
    """
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tunesmith.models.gguf_cache import cached_tokenizer_dir

    tokenizer = AutoTokenizer.from_pretrained(cached_tokenizer_dir("smollm2"))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=512,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def make_sentence_encoder_files(model_dir: Path, *, normalize: bool = True) -> Path:
    """Mark a local BERT directory as a sentence-transformers encoder (mean pooling), as MiniLM's is."""
    import json

    hidden = json.loads((model_dir / "config.json").read_text())["hidden_size"]
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]  # fmt: skip
    if normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    (model_dir / "modules.json").write_text(json.dumps(modules, indent=2))
    (model_dir / "1_Pooling").mkdir(exist_ok=True)
    (model_dir / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True})
    )
    return model_dir
