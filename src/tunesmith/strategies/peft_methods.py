"""Shared machinery of the PEFT strategies (lora, ia3, prompt-tuning): task SEQ_CLS, target detection.

Task SEQ_CLS makes PEFT train and save the classification head (`classifier` / `score`) with the adapter,
so the saved adapter is a complete classifier on top of the unchanged base model.
"""

from __future__ import annotations

from typing import Any

import torch
from peft import PeftConfig, TaskType, get_peft_model
from peft.utils.constants import (
    TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING,
    TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
    TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
)

from tunesmith.config.schema import StrategyConfig
from tunesmith.errors import UserError
from tunesmith.strategies.base import Strategy
from tunesmith.strategies.options import Options, parse_options

TASK = TaskType.SEQ_CLS


def task_type(model: torch.nn.Module) -> TaskType:
    """CAUSAL_LM for a language model (PEFT then generates and merges it as one), else SEQ_CLS."""
    return TaskType.CAUSAL_LM if type(model).__name__.endswith("ForCausalLM") else TASK


# Attention projections by family, for models PEFT has no table entry for: BERT-like, GPT-2-like, Llama-like,
# DistilBERT-like, fused-QKV (MPT, Phi, Falcon).
ATTENTION_GUESSES = (
    ["query", "value"],
    ["c_attn"],
    ["q_proj", "v_proj"],
    ["q_lin", "v_lin"],
    ["Wqkv"],
    ["query_key_value"],
)
# (targets, feed-forward subset) for IA3.
IA3_GUESSES = (
    (["key", "value", "output.dense"], ["output.dense"]),
    (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
    (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
    (["k_lin", "v_lin", "lin2"], ["lin2"]),
)


def linear_names(model: torch.nn.Module) -> set[str]:
    from transformers.pytorch_utils import Conv1D

    return {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear | Conv1D)}


def _present(names: set[str], suffix: str) -> bool:
    return any(n == suffix or n.endswith("." + suffix) for n in names)


def detect_lora_targets(model: torch.nn.Module) -> list[str]:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    names = linear_names(model)
    known = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type or "")
    for candidate in ([list(known)] if known else []) + [list(c) for c in ATTENTION_GUESSES]:
        if all(_present(names, s) for s in candidate):
            return candidate
    raise UserError(
        f"strategy.target_modules: no attention projections found in this {model_type or 'model'}; "
        "set strategy.target_modules to the names of its attention Linear layers (e.g. [query, value])."
    )


def detect_ia3_targets(model: torch.nn.Module) -> tuple[list[str], list[str]]:
    model_type = getattr(getattr(model, "config", None), "model_type", None) or ""
    names = linear_names(model)
    known_t = TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING.get(model_type)
    known_f = TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(model_type)
    table = [(list(known_t), list(known_f or []))] if known_t else []
    for targets, feedforward in table + [(list(t), list(f)) for t, f in IA3_GUESSES]:
        if all(_present(names, s) for s in targets):
            return targets, feedforward
    raise UserError(
        f"strategy.target_modules: no attention / feed-forward layers found in this {model_type or 'model'}; "
        "set strategy.target_modules (and strategy.feedforward_modules) to Linear layer names."
    )


def check_targets(model: torch.nn.Module, targets: list[str], key: str = "target_modules") -> None:
    names = linear_names(model)
    missing = [t for t in targets if not _present(names, t)]
    if missing:
        examples = sorted({n.rsplit(".", 1)[-1] for n in names})[:12]
        raise UserError(f"strategy.{key}: no Linear layer named {', '.join(missing)} in this model; "
                        f"names that exist: {', '.join(examples)}.")  # fmt: skip


class PeftStrategy(Strategy):
    """A strategy whose model is `get_peft_model(model, config)`; subclasses build the PEFT config."""

    options_model: type[Options] = Options
    recommended_lr = 5e-4

    def __init__(self, cfg: StrategyConfig) -> None:
        super().__init__(cfg)
        self.options: Any = parse_options(self.options_model, cfg)

    def peft_config(self, model: torch.nn.Module) -> PeftConfig:
        raise NotImplementedError

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return get_peft_model(model, self.peft_config(model))  # type: ignore[arg-type]
