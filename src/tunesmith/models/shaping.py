"""Model shaping from the recipe: `model.dropout`, `model.classifier_dropout`, `model.num_layers`.

Each one is a change to the model's config.json values before the weights are loaded, so the loaded
model *is* the shaped model (and `save_pretrained` writes a config that reloads it): Hugging Face builds
`num_hidden_layers` blocks and loads the bottom ones' weights, ignoring the rest. Config keys differ by
architecture: BERT has hidden_dropout_prob / attention_probs_dropout_prob / classifier_dropout, Llama has
attention_dropout only (its MLP and residual carry no dropout), GPT-2 has resid/embd/attn_pdrop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoConfig, PretrainedConfig

from tunesmith.errors import UserError

# model.dropout sets every one of these the config has (hidden and attention dropout of the backbone).
DROPOUT_KEYS = (
    "hidden_dropout_prob", "attention_probs_dropout_prob",  # BERT, RoBERTa, ELECTRA, ...
    "hidden_dropout", "attention_dropout", "dropout",  # Llama / Mistral (attention), DistilBERT, BART
    "resid_pdrop", "embd_pdrop", "attn_pdrop",  # GPT-2, GPT-J
    "activation_dropout",
)  # fmt: skip
CLASSIFIER_DROPOUT_KEYS = ("classifier_dropout", "seq_classif_dropout", "summary_first_dropout")
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")


def _set_keys(config: PretrainedConfig) -> set[str]:
    # attributes the config really has (an unset classifier_dropout is stored as None, still a key)
    return set(config.to_dict())


def layer_key(config: PretrainedConfig) -> str | None:
    keys = _set_keys(config)
    return next((k for k in LAYER_KEYS if k in keys and isinstance(getattr(config, k), int)), None)


def check_shape(model_dir: Path, model: Any, config: PretrainedConfig | None = None) -> None:
    """The recipe's model-shaping keys against the model's config. Raises UserError (one line each)."""
    if model.dropout is None and model.classifier_dropout is None and model.num_layers is None:
        return
    config = config if config is not None else AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    keys, kind = _set_keys(config), getattr(config, "model_type", "?")
    if model.dropout is not None and not keys & set(DROPOUT_KEYS):
        raise UserError(f"model.dropout: this '{kind}' model's config ({model_dir / 'config.json'}) has no "
                        f"dropout setting tunesmith knows ({', '.join(DROPOUT_KEYS)}); remove model.dropout.")  # fmt: skip
    if model.classifier_dropout is not None and not keys & set(CLASSIFIER_DROPOUT_KEYS):
        raise UserError(f"model.classifier_dropout: this '{kind}' model has no classifier dropout setting "
                        f"({', '.join(CLASSIFIER_DROPOUT_KEYS)}); remove model.classifier_dropout.")  # fmt: skip
    if model.num_layers is not None:
        key = layer_key(config)
        if key is None:
            raise UserError(f"model.num_layers: this '{kind}' model's config has no layer count "
                            f"({', '.join(LAYER_KEYS)}); remove model.num_layers.")  # fmt: skip
        total = int(getattr(config, key))
        if model.num_layers > total:
            raise UserError(
                f"model.num_layers: {model.num_layers}, but this model has {total} transformer blocks "
                f"({model_dir / 'config.json'}: {key}); set model.num_layers between 1 and {total}."
            )


def shape_config(config: PretrainedConfig, model: Any) -> PretrainedConfig:
    """Apply the recipe's shaping to `config` in place (validated by check_shape) and return it."""
    keys = _set_keys(config)
    if model.dropout is not None:
        for key in DROPOUT_KEYS:
            if key in keys:
                setattr(config, key, float(model.dropout))
    if model.classifier_dropout is not None:
        for key in CLASSIFIER_DROPOUT_KEYS:
            if key in keys:
                setattr(config, key, float(model.classifier_dropout))
    if model.num_layers is not None:
        layers = layer_key(config)
        if layers is not None:
            setattr(config, layers, int(model.num_layers))
            # Newer configs list each block's kind (full / sliding attention); keep the bottom ones.
            if isinstance(getattr(config, "layer_types", None), list):
                config.layer_types = config.layer_types[: model.num_layers]
    return config


def is_shaped(model: Any) -> bool:
    return model.dropout is not None or model.classifier_dropout is not None or model.num_layers is not None


def shaped_kwargs(model_dir: Path, model: Any) -> dict[str, Any]:
    """`from_pretrained` keyword arguments for a shaped model: {} when the recipe shapes nothing, so an
    unshaped model loads exactly as before."""
    if not is_shaped(model):
        return {}
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    check_shape(model_dir, model, config)
    return {"config": shape_config(config, model)}
