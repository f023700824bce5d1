"""Load a pre-trained encoder with a fresh classification head, from local safetensors only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from tunesmith.errors import UserError
from tunesmith.models import shaping
from tunesmith.models.registry import resolve_model_dir

transformers.logging.set_verbosity_error()  # "newly initialized head" warnings are expected here
transformers.logging.disable_progress_bar()  # per-shard loading bars would drown our own progress


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"model.name: cannot load a tokenizer from {model_dir} ({exc}); the directory needs "
            "tokenizer.json or vocab files saved with tokenizer.save_pretrained."
        ) from exc


def load_classifier(
    name: str, labels: list[str], *, seed: int, shape: Any = None
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase, Path]:
    """Return (model, tokenizer, model_dir). The head is initialised from `seed`, so runs repeat exactly.

    `shape` (the recipe's model section) applies model.dropout / classifier_dropout / num_layers."""
    model_dir = resolve_model_dir(name)
    tokenizer = load_tokenizer(model_dir)
    try:
        config = AutoConfig.from_pretrained(
            model_dir,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            trust_remote_code=False,
        )
    except (OSError, ValueError) as exc:
        raise UserError(f"model.name: {model_dir}/config.json cannot be read ({exc}).") from exc
    if shape is not None and shaping.is_shaped(shape):
        shaping.check_shape(model_dir, shape, config)
        shaping.shape_config(config, shape)
    torch.manual_seed(seed)
    try:
        # A fine-tuned checkpoint with another label count (sequential fine-tuning) gets a fresh head.
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir,
            config=config,
            use_safetensors=True,
            trust_remote_code=False,
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as exc:
        raise UserError(f"model.name: cannot load {model_dir} as a sequence classifier ({exc}).") from exc
    return model, tokenizer, model_dir


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
