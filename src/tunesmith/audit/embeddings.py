"""Embedders for the model-based checks: texts -> (n, d) float32 array.

`minilm_embedder` mean-pools the packaged all-MiniLM-L6-v2 (the default, loaded only from local files);
`hashing_embedder` is a model-free bag of hashed words and word pairs, for fast tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tunesmith.models.registry import resolve_model_dir

Embedder = Callable[[list[str]], np.ndarray]


def minilm_embedder(max_length: int = 256, batch_size: int = 64, model: str = "minilm") -> Embedder:
    """Mean-pooled last hidden states of `model` (registry name or local directory), batched by length."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from tunesmith.models.checks import position_limit

    path = resolve_model_dir(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    network: Any = AutoModel.from_pretrained(path, use_safetensors=True).eval()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    network.to(device)
    # The encoder embeds at most its own position limit, whatever model.max_length the run trains with.
    limit = position_limit(network.config)
    if limit is not None:
        max_length = min(max_length, limit)

    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), network.config.hidden_size), dtype=np.float32)
        order = np.argsort(
            [len(t) for t in texts], kind="stable"
        )  # similar lengths batch with little padding
        with torch.inference_mode():
            for lo in range(0, len(texts), batch_size):
                idx = order[lo : lo + batch_size]
                batch = tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt",
                ).to(device)  # fmt: skip
                hidden = network(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
                out[idx] = pooled.float().cpu().numpy()
        return out

    return embed


def hashing_embedder(dim: int = 512) -> Embedder:
    """Hashed word and word-pair counts, L2-normalised: no model, milliseconds per thousand texts."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(n_features=dim, ngram_range=(1, 2), alternate_sign=False, norm="l2")

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray(vectorizer.transform(texts).toarray(), dtype=np.float32)

    return embed
