"""Recipe options that depend on the model, checked against its config.json before anything heavy runs.

The schema can say that `model.max_length` is a positive integer; only the model knows that it has 512
positions, 6 blocks, a head for sequence classification and Linear layers called query/value. These checks
read config.json (and build the architecture on the meta device, which allocates nothing) so a wrong value
ends in one line naming the key and the model's own limit, before data is read or a directory is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, PretrainedConfig

from tunesmith.config.schema import Recipe
from tunesmith.errors import UserError
from tunesmith.models.registry import resolve_model_dir

# Learned-position models that offset position ids by padding_idx + 1: RoBERTa's 514 positions hold 512 tokens.
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod", "ernie_m"}
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "n_ctx", "seq_length")


def read_config(model_dir: Path) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"model.name: {model_dir}/config.json cannot be read ({exc}).") from exc


def position_limit(config: Any) -> int | None:
    """Tokens the model can take in one sequence (None: no fixed limit in its config)."""
    for key in _POSITION_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            if getattr(config, "model_type", "") in _OFFSET_POSITIONS:
                value -= (getattr(config, "pad_token_id", None) or 0) + 1
            return value
    return None


def check_max_length(model_dir: Path, max_length: int, key: str = "model.max_length", extra: int = 0) -> None:
    """`max_length` (+ `extra` tokens the strategy prepends) must fit the model's positions."""
    limit = position_limit(read_config(model_dir))
    if limit is not None and max_length + extra > limit:
        prefix = f" plus the {extra} virtual tokens of prompt-tuning" if extra else ""
        raise UserError(
            f"{key}: {max_length}{prefix} is beyond this model's {limit} positions "
            f"({model_dir / 'config.json'}); set {key} to at most {limit - extra}."
        )


def check_model_options(recipe: Recipe) -> None:
    """Every recipe option that depends on the model, against the model's config. Raises UserError."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    from tunesmith.strategies.registry import get_strategy

    model_dir = resolve_model_dir(recipe.model.name)
    config = read_config(model_dir)
    model_type = getattr(config, "model_type", "")
    if model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        raise UserError(
            f"model.name: {model_dir.name} is a '{model_type}' model, which has no sequence-classification "
            f"head in transformers; task {recipe.task} needs an encoder such as BERT (e.g. model.name: minilm)."
        )
    from tunesmith.models import shaping

    shaping.check_shape(model_dir, recipe.model, config)
    shaping.shape_config(config, recipe.model)  # the strategy checks see the blocks the run will have
    strategy = get_strategy(recipe.strategy)
    options = getattr(strategy, "options", None)
    extra = int(getattr(options, "num_virtual_tokens", 0) or 0) if strategy.name == "prompt-tuning" else 0
    check_max_length(model_dir, recipe.model.max_length, extra=extra)
    _check_strategy_modules(strategy, options, config)


def _meta_model(config: PretrainedConfig) -> torch.nn.Module:
    """The classifier's architecture without weights: names and shapes only, no memory, milliseconds."""
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config, trust_remote_code=False)


def _check_strategy_modules(strategy: Any, options: Any, config: PretrainedConfig) -> None:
    name = strategy.name
    if name == "full":  # every weight trains: nothing named
        return
    from tunesmith.strategies.blocks import find_blocks

    model = _meta_model(config)
    try:
        blocks = find_blocks(model)
    except ValueError as exc:
        raise UserError(f"strategy.name: {name} needs the model's transformer blocks; {exc}") from None
    n = len(blocks.layers)
    if name == "progressive":
        units = n + (1 if options.embeddings else 0)
        if options.initial > units:
            raise UserError(
                f"strategy.initial: {options.initial} blocks, but this model has {n} transformer blocks"
                f"{' + the embeddings' if options.embeddings else ''}; set strategy.initial to at most {units}."
            )
    elif name in {"lora", "ia3"}:
        from tunesmith.strategies.peft_methods import check_targets, detect_ia3_targets, detect_lora_targets

        targets = options.target_modules
        if targets:
            check_targets(model, targets)
        else:
            targets = detect_lora_targets(model) if name == "lora" else detect_ia3_targets(model)[0]
        if name == "ia3" and options.feedforward_modules:
            check_targets(model, options.feedforward_modules, key="feedforward_modules")
    elif name == "adapter":
        from tunesmith.strategies.adapter import find_targets

        find_targets(model, options.targets)
