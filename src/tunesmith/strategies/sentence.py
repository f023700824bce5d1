"""Sentence-encoder pooling for `setfit` and `zero-shot`: the classifier reads the mean of the token vectors.

A sentence encoder such as all-MiniLM-L6-v2 was trained so that the *mean* of its token vectors (then
L2-normalised) is the sentence embedding; BERT's own [CLS] pooler is untrained for that (on the demo data its
zero-shot macro-F1 is 0.17 against 0.32 for the mean). So these strategies keep the ordinary
`*ForSequenceClassification` model and its saved weights, and replace only how its head is fed: the
instance's `forward` (an attribute, like the feature cache's, so parameter names and save_pretrained are
unchanged) mean-pools over the attention mask, normalises, and applies the model's own linear classifier.
`config.json` records `tunesmith_pooling`, and `tunesmith.export.load_trained` (predict, evaluate, the suite)
puts the same forward back on load. A plain `AutoModelForSequenceClassification` would feed the head the
[CLS] pooler instead: the model card says so.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from tunesmith.errors import UserError

POOLING_KEY = "tunesmith_pooling"


def sentence_pooling(model_dir: Path, strategy: str) -> dict[str, Any]:
    """{"mode": "mean", "normalize": bool} from the model's sentence-transformers files, or UserError."""
    modules_file = model_dir / "modules.json"
    fix = (
        f"strategy.name: {strategy} needs a sentence encoder (a sentence-transformers model directory with "
        "modules.json and a mean Pooling module, e.g. model: minilm); "
    )
    if not modules_file.is_file():
        raise UserError(fix + f"{model_dir} has no modules.json. Use strategy.name: frozen or full instead.")
    try:
        modules = json.loads(modules_file.read_text())
        pooling = next(m for m in modules if str(m.get("type", "")).endswith("Pooling"))
        config = json.loads((model_dir / pooling["path"] / "config.json").read_text())
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        raise UserError(fix + f"{modules_file} names no readable Pooling module.") from None
    if not config.get("pooling_mode_mean_tokens"):
        raise UserError(
            fix + f"{model_dir}'s pooling is not mean pooling; use strategy.name: frozen or full."
        )
    normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
    return {"mode": "mean", "normalize": normalize}


def check_task(recipe: Any, strategy: str) -> None:
    if recipe.task != "text-classification":
        raise UserError(f"strategy.name: {strategy} classifies texts; it does not apply to task: {recipe.task}. "
                        "Use strategy.name: full or lora.")  # fmt: skip


def check_linear_head(model: Any, strategy: str) -> nn.Linear:
    head = getattr(model, "classifier", None)
    hidden = getattr(model.config, "hidden_size", None)
    if not isinstance(head, nn.Linear) or head.in_features != hidden:
        raise UserError(
            f"strategy.name: {strategy} needs a BERT-style classifier (one linear layer on the hidden size); "
            f"{type(model).__name__} has another head. Use strategy.name: frozen or full."
        )
    return head


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor, normalize: bool) -> torch.Tensor:
    m = mask[..., None].to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, dim=-1) if normalize else pooled


def _pooled_forward(
    self: Any,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    **_: Any,
) -> SequenceClassifierOutput:
    backbone = getattr(self, self.base_model_prefix)
    kwargs: dict[str, Any] = {"attention_mask": attention_mask}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    if inputs_embeds is not None:
        kwargs["inputs_embeds"] = inputs_embeds
    else:
        kwargs["input_ids"] = input_ids
    hidden = backbone(**kwargs)[0]
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], device=hidden.device, dtype=torch.long)
    embedding = mean_pool(hidden, attention_mask, bool(self.config.tunesmith_pooling.get("normalize")))
    dropout = getattr(self, "dropout", None)
    logits = self.classifier(dropout(embedding) if dropout is not None else embedding)
    loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
    return SequenceClassifierOutput(loss=loss, logits=logits)


def use_pooling(model: Any, pooling: dict[str, Any]) -> Any:
    """Feed `model`'s classifier the mean-pooled embedding from now on (and record it in its config)."""
    setattr(model.config, POOLING_KEY, dict(pooling))
    model.forward = types.MethodType(_pooled_forward, model)  # type: ignore[method-assign]
    return model


def restore_pooling(model: Any) -> Any:
    """On load: a model saved by `setfit` / `zero-shot` gets its pooled forward back."""
    pooling = getattr(getattr(model, "config", None), POOLING_KEY, None)
    return use_pooling(model, pooling) if isinstance(pooling, dict) else model


@torch.no_grad()
def embed(model: Any, ids: list[list[int]], collate: Any, device: torch.device,
          batch_size: int = 64) -> torch.Tensor:  # fmt: skip
    """Sentence embeddings (as the pooled forward computes them) of token-id lists, in eval mode."""
    backbone = getattr(model, model.base_model_prefix)
    normalize = bool(getattr(model.config, POOLING_KEY, {}).get("normalize"))
    was_training = backbone.training
    backbone.eval()
    out = []
    for start in range(0, len(ids), batch_size):
        batch = collate(ids[start : start + batch_size], [0] * len(ids[start : start + batch_size]))
        inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        hidden = backbone(**inputs)[0]
        out.append(mean_pool(hidden, inputs["attention_mask"], normalize).float().cpu())
    backbone.train(was_training)
    return torch.cat(out)
