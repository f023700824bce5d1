"""The memory levers in the recipe: gradient checkpointing and `train.batch_size: auto`, checked up front.

`check_levers` runs before the run directory exists, so a setting that cannot work ends in one line naming
the key and the fix (exit 2) and leaves nothing behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tunesmith.config.schema import Recipe, TrainConfig
from tunesmith.errors import UserError
from tunesmith.training.compile import check_compile

HEADROOM = 0.2  # batch_size auto leaves a fifth of the memory free (fragmentation, longer eval batches)
AUTO_PROBE_BATCH = 4  # batch_size auto measures activations per example at this micro-batch, then scales
DEFAULT_MICRO_BATCH = 16  # the effective batch of batch_size auto without effective_batch_size, per accum


def is_auto(train: TrainConfig) -> bool:
    return train.batch_size == "auto"  # type: ignore[comparison-overlap]  # the schema's `auto`


def effective_batch(train: TrainConfig) -> int:
    return train.effective_batch_size or DEFAULT_MICRO_BATCH * train.grad_accum


def micro_batch_choices(train: TrainConfig) -> list[int]:
    """Micro-batches auto may pick, largest first: divisors of effective / grad_accum (grad_accum is the
    least accumulation the recipe asks for), so micro-batch x accumulation is the effective batch exactly."""
    top = effective_batch(train) // train.grad_accum
    return [m for m in range(top, 0, -1) if top % m == 0]


def with_batch(recipe: Recipe, batch_size: int, grad_accum: int) -> Recipe:
    train = recipe.train.model_copy(update={"batch_size": batch_size, "grad_accum": grad_accum})
    return recipe.model_copy(update={"train": train})


def _model_class(recipe: Recipe) -> Any:
    """The transformers class the task will load, from config.json alone (nothing is built)."""
    from transformers.models.auto import modeling_auto

    from tunesmith.models.checks import read_config

    if recipe.task == "causal-lm":
        from tunesmith.models.gguf_cache import resolve_causal_lm_dir

        model_dir, mapping = (
            resolve_causal_lm_dir(recipe.model.name),
            modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING,
        )
    else:
        from tunesmith.models.registry import resolve_model_dir

        model_dir = resolve_model_dir(recipe.model.name)
        mapping = modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING
    config = read_config(Path(model_dir))
    try:
        return mapping[type(config)]
    except KeyError:
        return None


def check_levers(recipe: Recipe, run_dir: Path, *, resume: bool) -> Recipe:
    """UserError for lever settings that cannot work; a resumed `batch_size: auto` gets its recorded batch."""
    cfg = recipe.train
    if cfg.effective_batch_size is not None and not is_auto(cfg):
        raise UserError(
            f"train.effective_batch_size: only read with train.batch_size: auto; set train.batch_size: auto, or "
            f"drop it (the effective batch is batch_size x grad_accum = {cfg.batch_size * cfg.grad_accum})."
        )
    if is_auto(cfg) and effective_batch(cfg) % cfg.grad_accum:
        target = effective_batch(cfg)
        divisors = ", ".join(str(d) for d in range(1, target + 1) if target % d == 0)
        raise UserError(
            f"train.grad_accum: {cfg.grad_accum} cannot keep the effective batch of {target} "
            f"(train.effective_batch_size) with train.batch_size: auto; set train.grad_accum to a divisor of "
            f"{target} ({divisors}) or drop it."
        )
    if cfg.gradient_checkpointing:
        cls = _model_class(recipe)
        if cls is not None and not getattr(cls, "supports_gradient_checkpointing", False):
            raise UserError(
                f"train.gradient_checkpointing: {cls.__name__} ({recipe.model.name}) does not support gradient "
                "checkpointing; set it to false and lower memory with a smaller train.batch_size and more "
                "train.grad_accum, or strategy.name: lora."
            )
    check_compile(recipe)  # train.compile
    if resume and is_auto(cfg):
        path = run_dir / "plan.json"
        if path.is_file():
            plan = json.loads(path.read_text(encoding="utf-8"))
            recipe = with_batch(recipe, int(plan["batch_size"]), int(plan["grad_accum"]))
    return recipe


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each block's activations in the backward pass (non-reentrant checkpointing).

    With PEFT (or any strategy that freezes the embeddings) the inputs of the checkpointed blocks do not
    require grad; transformers' enable_input_require_grads makes the embedding output require it, so no
    gradient is silently missing (tests/hardware checks every trainable parameter gets one).
    """
    wrapped: Any = model
    base: Any = wrapped.get_base_model() if hasattr(wrapped, "get_base_model") else wrapped
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    embeddings = base.get_input_embeddings()
    if embeddings is not None and not any(p.requires_grad for p in embeddings.parameters()):
        base.enable_input_require_grads()
