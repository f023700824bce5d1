"""train.compile on this machine, step by step: what one compile costs and what a compiled step saves.

A whole 3-epoch run per side takes too long on a shared 2-core machine, so this measures the parts the
decision rests on, on the demo task of vs_hf_trainer.py (MiniLM, batch 16, max length 256, fused AdamW):
the padded lengths an epoch's batches fall into (train.compile's buckets), the extra padded tokens they
cost, the eager step time and, through tunesmith's own compile path (inductor), the first compiled
step's time (the compile) and the steady compiled step time, on the epoch's most common batch shape.
break_even_steps = compile time / time saved per step, per distinct shape. One JSON line.

    python benchmarks/compile_cpu.py [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(__file__))


def _timed(step: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n


def main() -> None:
    from transformers import AutoModelForSequenceClassification
    from vs_hf_trainer import demo_recipe

    from tunesmith.config.loader import apply_overrides, recipe_from_dict
    from tunesmith.data.batching import LengthBucketBatcher, collate, tokenize_texts
    from tunesmith.data.prepare import prepare_data
    from tunesmith.models.loader import load_tokenizer
    from tunesmith.models.registry import resolve_model_dir
    from tunesmith.training.compile import BucketPad, compile_for_training

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    n = parser.parse_args().steps
    with tempfile.TemporaryDirectory() as out:
        recipe = recipe_from_dict(apply_overrides(demo_recipe(out), ["train.compile=true"]))
    _, bundle = prepare_data(recipe.data)
    model_dir = resolve_model_dir("minilm")
    tokenizer = load_tokenizer(model_dir)
    ids = tokenize_texts(bundle.train.texts, tokenizer, recipe.model.max_length)
    batches = LengthBucketBatcher([len(i) for i in ids], 16, seed=42).batches(0)
    pad = BucketPad(recipe.model.max_length, tokenizer.pad_token_id)
    real = dynamic = padded = 0
    shapes: Counter[tuple[int, int]] = Counter()
    samples: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
    for indices in batches:
        batch = collate(
            [ids[i] for i in indices], [bundle.train.labels[i] for i in indices], tokenizer.pad_token_id, True
        )
        real += int(batch["attention_mask"].sum())
        dynamic += batch["input_ids"].numel()
        batch = pad(batch)
        padded += batch["input_ids"].numel()
        shape = tuple(batch["input_ids"].shape)
        shapes[shape] += 1  # type: ignore[index]
        samples.setdefault(shape, batch)  # type: ignore[arg-type]
    common = shapes.most_common(1)[0][0]
    batch = samples[common]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3, use_safetensors=True)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, fused=True)

    def step() -> None:
        labels = batch["labels"]
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    eager = _timed(step, n)
    assert compile_for_training(recipe, model, tokenizer.pad_token_id) is not None
    first = _timed(step, 1)
    compiled = _timed(step, n)
    saved = eager - compiled
    print(json.dumps({
        "benchmark": "compile_cpu", "task": "drug-review rating, MiniLM, batch 16, max length 256, one epoch's batches",
        "threads": torch.get_num_threads(), "distinct_shapes_per_epoch": len(shapes), "batches_per_epoch": len(batches),
        "bucket_padding_extra_tokens": round(padded / dynamic - 1, 3), "dynamic_padding_extra_tokens": round(dynamic / real - 1, 3),
        "measured_shape": list(common), "eager_step_s": round(eager, 3), "first_compiled_step_s": round(first, 1),
        "compiled_step_s": round(compiled, 3), "step_ratio": round(compiled / eager, 3),
        "break_even_steps_per_shape": round((first - compiled) / saved) if saved > 0 else None,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
