"""`train.compile: true`: torch.compile of the model's training forward, on a few padded batch lengths.

torch.compile specialises a graph to its input shapes, and dynamic padding gives nearly every batch its own
length, so compiling as is would recompile on almost every step. Here each training batch's length is
padded up to one of a few buckets (powers of two and 1.5x powers of two from 16 up to model.max_length, at
most ~25% extra tokens), so there are at most `len(buckets)` lengths, times two batch sizes (the epoch's
last batch can be short). Padded positions carry attention_mask 0 (and labels -100), so the loss is the
eager loss up to float summation order.

Only the training forward is compiled: evaluation (no grad, other batch sizes) keeps the eager forward,
so it never triggers compiles of its own. Off by default: on a CPU the compile time (tens of seconds per
shape) is rarely won back in a fine-tuning run; see the README's performance section for the measurement.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

import torch

from tunesmith.config.schema import Recipe
from tunesmith.errors import UserError

log = logging.getLogger(__name__)

# Tests pick a backend without a C++ toolchain step (aot_eager); users get inductor.
BACKEND_ENV = "TUNESMITH_COMPILE_BACKEND"
MIN_BUCKET = 16
# Padding value per batch key for the sequence dimension; other (B, L) keys get 0.
PAD_VALUES = {"labels": -100, "attention_mask": 0, "token_type_ids": 0}

Pad = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def check_compile(recipe: Recipe) -> None:
    """UserError for `train.compile` settings that cannot work (called with the other lever checks)."""
    if not getattr(recipe.train, "compile", False):
        return
    if getattr(recipe.data, "packing", False):
        raise UserError(
            "train.compile: packed causal-LM batches (data.packing: true) have no padding mask to pad to a "
            "bucket length; set data.packing: false or train.compile: false."
        )
    if recipe.model.max_length < MIN_BUCKET:
        raise UserError(
            f"train.compile: model.max_length {recipe.model.max_length} is below the smallest padding bucket "
            f"({MIN_BUCKET}); set model.max_length to at least {MIN_BUCKET} or train.compile: false."
        )


def buckets(max_length: int) -> list[int]:
    """The padded lengths: 16, 24, 32, 48, 64, 96, ... up to and always including max_length."""
    out: list[int] = []
    size = MIN_BUCKET
    while size < max_length:
        out += [size] + ([size * 3 // 2] if size * 3 // 2 < max_length else [])
        size *= 2
    return [*out, max_length]


class BucketPad:
    """Pads every (batch, length) tensor of a batch to the next bucket; remembers the lengths it made."""

    def __init__(self, max_length: int, pad_id: int) -> None:
        self.buckets, self.pad_id = buckets(max_length), pad_id
        self.seen: set[int] = set()

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask = batch.get("attention_mask")
        if mask is None or mask.dim() != 2:  # fixed-size inputs (images): nothing to pad
            return batch
        size, width = mask.shape
        target = next((b for b in self.buckets if b >= width), width)
        self.seen.add(target)
        if target == width:
            return batch
        out = {}
        for key, value in batch.items():
            if value.dim() == 2 and value.shape == (size, width):
                fill = self.pad_id if key == "input_ids" else PAD_VALUES.get(key, 0)
                value = torch.nn.functional.pad(value, (0, target - width), value=fill)
            out[key] = value
        return out


def _compiler_available() -> bool:
    """Inductor on a CPU compiles C++: it needs a compiler on PATH."""
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


class _TrainingForward:
    """The compiled forward while training with gradients, the eager one otherwise (evaluation)."""

    def __init__(self, model: torch.nn.Module, backend: str) -> None:
        self.model, self.eager = model, model.forward
        self.compiled = torch.compile(model.forward, backend=backend, dynamic=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.model.training and torch.is_grad_enabled():
            return self.compiled(*args, **kwargs)
        return self.eager(*args, **kwargs)


def compile_for_training(recipe: Recipe, model: torch.nn.Module, pad_id: int) -> Pad | None:
    """With train.compile: compile `model`'s training forward in place and return the batch padder
    (None when compile is off or cannot run here, after a one-line warning)."""
    if not getattr(recipe.train, "compile", False):
        return None
    backend = os.environ.get(BACKEND_ENV, "inductor")
    device = next(model.parameters()).device
    if backend == "inductor" and device.type == "cpu" and not _compiler_available():
        log.warning("train.compile: no C++ compiler (g++/clang++) for inductor on this CPU; training eagerly")
        return None
    pad = BucketPad(recipe.model.max_length, pad_id)
    # Each bucket, at the full and at the short last batch size, is one specialised graph.
    limit = 2 * len(pad.buckets) + 2
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
    model.forward = _TrainingForward(model, backend)  # type: ignore[method-assign]
    return pad


def uncompile(model: torch.nn.Module) -> None:
    """Back to the plain forward (evaluation, export and save_pretrained see an ordinary module)."""
    if isinstance(model.__dict__.get("forward"), _TrainingForward):
        del model.forward


def pad_id(task: Any) -> int:
    """The tokenizer's pad id (padded positions are masked, so any id would do; this one reads right)."""
    return int(getattr(getattr(task, "tokenizer", None), "pad_token_id", None) or 0)
