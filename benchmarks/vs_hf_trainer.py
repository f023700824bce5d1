"""tunesmith vs the stock Hugging Face Trainer on the demo task, same model, data and hyperparameters.

Both train MiniLM for 3 epochs (batch 16, lr 5e-5, weight decay 0.01, 10% warmup, max length 256) on the
same training rows, evaluate macro-F1 on the same validation rows every epoch, write a checkpoint every
epoch, restore the best epoch's weights at the end and are scored on the same test set. The timed part is
the same work on both sides: Trainer.train() and tunesmith's training loop (`train_loop_s`).
Each side runs in its own process so peak memory (max RSS) is its own. Prints one JSON line.

    python benchmarks/vs_hf_trainer.py            # both, then the comparison line
    python benchmarks/vs_hf_trainer.py --trainer-bf16  # the Trainer with bf16=True (CPU autocast) too
    python benchmarks/vs_hf_trainer.py --side hf  # one side only (used internally)

tunesmith runs at `train.precision: auto` (bf16 on CPUs with AVX512-BF16 or AMX, else fp32, as `make demo`);
the stock Trainer runs fp32 unless `--trainer-bf16`, which compares like with like on bf16 hardware.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

EPOCHS, BATCH, LR, WD, WARMUP, MAX_LEN, SEED = 3, 16, 5e-5, 0.01, 0.1, 256, 42
FP32_LIMIT_FLOPS = 200e9  # this machine's fp32 matmul limit on 2 cores (DESIGN.md)
FLOP_PER_TOKEN = 65e6  # fine-tuning MiniLM, per real (unpadded) token


def demo_recipe(out_dir: str) -> dict[str, Any]:
    from tunesmith.config.loader import apply_overrides
    from tunesmith.demo import DEMO_RECIPE

    overrides = [
        f"train.epochs={EPOCHS}", f"train.batch_size={BATCH}", f"train.lr={LR}", f"train.weight_decay={WD}",
        f"train.warmup_ratio={WARMUP}", f"model.max_length={MAX_LEN}", "train.class_weights=false",
        f"train.seed={SEED}", f"output.dir={out_dir}", "output.name=bench", "audit.gate=off",
        "train.early_stopping.patience=null",
        # the Trainer does not validate before its first step: neither does the timed loop here
        "eval.on_start=false",
    ]  # fmt: skip
    return apply_overrides(DEMO_RECIPE, overrides)


def run_tunesmith(out_dir: str) -> dict[str, Any]:
    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.run import run

    start = time.perf_counter()
    result = run(recipe_from_dict(demo_recipe(out_dir)), quiet=True)
    wall = time.perf_counter() - start
    history = [json.loads(line) for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
    epochs = [r for r in history if r["kind"] == "epoch"]
    real_tokens_per_s = sum(r["tokens_per_s"] for r in epochs) / len(epochs)
    return {
        # train_loop_s: the training loop with its per-epoch validation and checkpoints, like Trainer.train()
        "train_s": result.metrics["train_loop_s"], "step_s": result.metrics["train_time_s"], "wall_s": wall, "macro_f1": result.metrics["test"]["macro_f1"],
        "tokens_per_s": real_tokens_per_s, "precision": result.metrics["precision"],
    }  # fmt: skip


def run_hf(out_dir: str, bf16: bool) -> dict[str, Any]:
    import numpy as np
    import torch
    from sklearn.metrics import f1_score
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )  # fmt: skip

    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.data.prepare import prepare_data
    from tunesmith.models.loader import load_tokenizer
    from tunesmith.models.registry import resolve_model_dir

    recipe = recipe_from_dict(demo_recipe(out_dir))
    _, bundle = prepare_data(recipe.data)  # the very same train/validation/test rows as tunesmith
    model_dir = resolve_model_dir("minilm")
    tokenizer = load_tokenizer(model_dir)

    class Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self, texts: list[str], labels: list[int]) -> None:
            self.enc = tokenizer(texts, truncation=True, max_length=MAX_LEN)
            self.labels = labels

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {**{k: v[i] for k, v in self.enc.items()}, "labels": self.labels[i]}

    train, val = (
        Rows(bundle.train.texts, bundle.train.labels),
        Rows(bundle.validation.texts, bundle.validation.labels),
    )
    assert bundle.test is not None
    test = Rows(bundle.test.texts, bundle.test.labels)
    torch.manual_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(bundle.labels), use_safetensors=True
    )
    # transformers 5: a float warmup_steps in [0, 1) is the ratio of the total steps (warmup_ratio is gone)
    # Like tunesmith: a checkpoint every epoch, the best epoch by validation macro-F1 restored at the end.
    args = TrainingArguments(
        output_dir=out_dir, num_train_epochs=EPOCHS, per_device_train_batch_size=BATCH, learning_rate=LR,
        weight_decay=WD, warmup_steps=WARMUP, eval_strategy="epoch", save_strategy="epoch", save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model="macro_f1", greater_is_better=True, report_to=[],
        seed=SEED, logging_strategy="no", use_cpu=not torch.cuda.is_available(), disable_tqdm=True, bf16=bf16,
    )  # fmt: skip

    def macro_f1(prediction: Any) -> dict[str, float]:
        preds = np.asarray(prediction.predictions).argmax(-1)
        return {"macro_f1": float(f1_score(prediction.label_ids, preds, average="macro"))}

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val, compute_metrics=macro_f1,
                      data_collator=DataCollatorWithPadding(tokenizer))  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    logits = trainer.predict(test).predictions
    f1 = f1_score(bundle.test.labels, np.asarray(logits).argmax(-1), average="macro")
    return {
        "train_s": train_s,
        "wall_s": train_s,
        "macro_f1": float(f1),
        "precision": "bf16" if bf16 else "fp32",
    }


def one_side(side: str, trainer_bf16: bool) -> None:
    with tempfile.TemporaryDirectory() as out_dir:
        result = run_tunesmith(out_dir) if side == "tunesmith" else run_hf(out_dir, trainer_bf16)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def measure(side: str, trainer_bf16: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--side", side] + (["--trainer-bf16"] if trainer_bf16 else [])
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{side} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=["hf", "tunesmith"])
    parser.add_argument("--trainer-bf16", action="store_true", help="the Trainer with bf16=True")
    args = parser.parse_args()
    if args.side:
        one_side(args.side, args.trainer_bf16)
        return
    hf, ts = measure("hf", args.trainer_bf16), measure("tunesmith", args.trainer_bf16)
    line = {
        "benchmark": "vs_hf_trainer", "task": "drug-review rating, MiniLM, 3 epochs, batch 16, lr 5e-5",
        "hf_train_s": round(hf["train_s"], 1), "tunesmith_train_s": round(ts["train_s"], 1),
        "time_ratio": round(ts["train_s"] / hf["train_s"], 3), "tunesmith_steps_only_s": round(ts["step_s"], 1),
        "hf_peak_rss_mb": round(hf["peak_rss_mb"]), "tunesmith_peak_rss_mb": round(ts["peak_rss_mb"]),
        "hf_test_macro_f1": round(hf["macro_f1"], 4), "tunesmith_test_macro_f1": round(ts["macro_f1"], 4),
        "hf_precision": hf["precision"], "tunesmith_precision": ts["precision"], "tunesmith_real_tokens_per_s": round(ts["tokens_per_s"]),
        "fraction_of_fp32_limit": round(ts["tokens_per_s"] * FLOP_PER_TOKEN / FP32_LIMIT_FLOPS, 3),
        "target_met": ts["train_s"] <= 0.45 * hf["train_s"] and ts["macro_f1"] >= hf["macro_f1"],
    }  # fmt: skip
    print(json.dumps(line))


if __name__ == "__main__":
    main()
