"""tunesmith vs TRL's SFTTrainer: LoRA on the embedded SmolLM2, drug reviews as domain text, packing off and on.

Same model (SmolLM2 from tunesmith's model cache, fp32), same data (the LM demo's reviews: 160 training and
48 validation reviews, tunesmith.data.lm_demo), same LoRA (r 8, alpha 16, dropout 0.1 on q/k/v/o), sequence
length 128, batch 8, lr 5e-4 with linear decay after 10% warmup, weight decay 0.01, gradient clipping 1.0,
and the same number of optimizer steps (tunesmith's one epoch: 20 unpacked, fewer packed; TRL gets that as
max_steps). Both validate once at the end (tunesmith's end-of-epoch validation, TRL's eval at max_steps): the
timed parts are tunesmith's training loop (`train_loop_s`) and `SFTTrainer.train()`. Afterwards each side's
tuned model is scored by one shared function (the validation reviews cut at 128 tokens, unpacked, loss on
every token but the first: token-mean NLL -> perplexity). Each side runs in its own process, one after the
other. Prints one JSON line per comparison (packing off, packing on).

    pip install -e .[bench]                      # TRL (and the datasets package it needs)
    nice -n 10 python benchmarks/causal_lm.py    # both modes, both sides
    nice -n 10 python benchmarks/causal_lm.py --train 64 --validation 16   # smaller (a loaded machine)
    python benchmarks/causal_lm.py --side trl --packing --steps 14   # one side (used internally)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TRAIN, VALIDATION = 160, 48
MAX_LEN, BATCH, LR, WD, WARMUP, CLIP, SEED = 128, 8, 5e-4, 0.01, 0.1, 1.0, 42
LORA = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def texts() -> tuple[list[str], list[str]]:
    from tunesmith.data.lm_demo import demo_corpus

    corpus = demo_corpus("train")["text"].tolist()
    n_train, n_val = (
        int(os.environ.get(f"BENCH_{k}", d)) for k, d in (("TRAIN", TRAIN), ("VALIDATION", VALIDATION))
    )
    return corpus[:n_train], corpus[n_train : n_train + n_val]


def validation_perplexity(model: Any, tokenizer: Any, rows: list[str]) -> float:
    """The shared score: tunesmith's text encoding (cut at MAX_LEN), batches of 8 in order, token-mean NLL."""
    import math

    import pandas as pd
    import torch

    from tunesmith.data.lm import encode_lm, lm_records
    from tunesmith.data.packing import collate_padded, token_nll

    encoded = encode_lm(lm_records(pd.DataFrame({"text": rows})), tokenizer, MAX_LEN)
    model.eval()
    nll = count = 0.0
    with torch.inference_mode():
        for lo in range(0, len(encoded.input_ids), BATCH):
            batch = collate_padded(encoded.input_ids[lo : lo + BATCH], encoded.labels[lo : lo + BATCH],
                                   int(tokenizer.pad_token_id))  # fmt: skip
            n, c, _ = token_nll(model(**batch.model_inputs()).logits, batch.labels)
            nll, count = nll + float(n), count + float(c)
    return math.exp(nll / count)


def run_tunesmith(out_dir: str, packing: bool) -> dict[str, Any]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.fileio import write_text_atomic
    from tunesmith.models.gguf_cache import resolve_causal_lm_dir
    from tunesmith.models.loader import load_tokenizer
    from tunesmith.run import run

    train, val = texts()
    paths = {}
    for name, rows in (("train", train), ("validation", val)):
        paths[name] = str(Path(out_dir) / f"{name}.jsonl")
        write_text_atomic(Path(paths[name]), "".join(json.dumps({"text": t}) + "\n" for t in rows))
    recipe = {
        "task": "causal-lm", "model": {"name": "smollm2", "max_length": MAX_LEN},
        "data": {**paths, "packing": packing},
        "strategy": {"name": "lora", **LORA},
        "train": {"epochs": 1, "batch_size": BATCH, "lr": LR, "weight_decay": WD, "warmup_ratio": WARMUP,
                  "schedule": "linear", "grad_clip": CLIP, "precision": "fp32", "seed": SEED, "log_every": 5},
        "eval": {"samples": 0, "on_start": False},
        "audit": {"gate": "off"}, "output": {"dir": out_dir, "name": "bench"},
    }  # fmt: skip
    result = run(recipe_from_dict(recipe), quiet=True)
    assert result.outcome is not None
    model_dir = resolve_causal_lm_dir("smollm2")
    tokenizer = load_tokenizer(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True)
    tuned = PeftModel.from_pretrained(base, result.run_dir / "model")
    return {
        "train_s": result.metrics["train_loop_s"], "steps": result.outcome.steps,
        "val_perplexity": validation_perplexity(tuned, tokenizer, val),
        "own_val_perplexity": result.metrics["validation"]["perplexity"],
    }  # fmt: skip


def run_trl(out_dir: str, packing: bool, steps: int) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from tunesmith.models.gguf_cache import resolve_causal_lm_dir
    from tunesmith.models.loader import load_tokenizer

    train, val = texts()
    model_dir = resolve_causal_lm_dir("smollm2")
    tokenizer = load_tokenizer(model_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True, dtype=torch.float32)
    lora = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules=LORA["target_modules"], task_type="CAUSAL_LM")  # fmt: skip
    # transformers 5: a float warmup_steps in [0, 1) is the ratio of the total steps
    args = SFTConfig(
        output_dir=out_dir, max_length=MAX_LEN, packing=packing, per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=BATCH, max_steps=steps, learning_rate=LR, lr_scheduler_type="linear",
        warmup_steps=WARMUP, weight_decay=WD, max_grad_norm=CLIP, seed=SEED, logging_steps=5,
        eval_strategy="steps", eval_steps=steps, save_strategy="no", report_to=[], bf16=False, fp16=False,
        use_cpu=not torch.cuda.is_available(), disable_tqdm=True, dataset_text_field="text",
    )  # fmt: skip
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": train}),
                         eval_dataset=Dataset.from_dict({"text": val}), processing_class=tokenizer,
                         peft_config=lora)  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    assert trainer.state.global_step == steps, trainer.state.global_step
    return {"train_s": train_s, "steps": steps,
            "val_perplexity": validation_perplexity(trainer.model, tokenizer, val)}  # fmt: skip


def one_side(side: str, packing: bool, steps: int) -> None:
    with tempfile.TemporaryDirectory() as out_dir:
        result = run_tunesmith(out_dir, packing) if side == "tunesmith" else run_trl(out_dir, packing, steps)
    print("RESULT " + json.dumps(result), flush=True)


def measure(side: str, packing: bool, steps: int = 0) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--side", side, "--steps", str(steps)] + (
        ["--packing"] if packing else []
    )
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{side} failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=["trl", "tunesmith"])
    parser.add_argument("--packing", action="store_true")
    parser.add_argument("--steps", type=int, default=0, help="TRL's max_steps (--side trl)")
    parser.add_argument("--modes", default="off,on", help="packing modes to compare: off, on or off,on")
    parser.add_argument("--train", type=int, default=TRAIN, help="training reviews (steps = train / batch)")
    parser.add_argument("--validation", type=int, default=VALIDATION, help="validation reviews")
    args = parser.parse_args()
    os.environ.setdefault("BENCH_TRAIN", str(args.train))  # the sides read the sizes from the environment
    os.environ.setdefault("BENCH_VALIDATION", str(args.validation))
    if args.side:
        one_side(args.side, args.packing, args.steps)
        return
    import torch

    for mode in args.modes.split(","):
        packing = mode == "on"
        ts = measure("tunesmith", packing)  # first: its epoch sets the number of steps both take
        trl = measure("trl", packing, ts["steps"])
        line = {
            "benchmark": "causal_lm_vs_trl", "packing": packing,
            "task": f"SmolLM2 LoRA r8 q/k/v/o, {args.train} drug reviews, {MAX_LEN} tokens, batch {BATCH}, fp32",
            "validation_reviews": args.validation,
            "steps": ts["steps"], "threads": torch.get_num_threads(),
            "trl_train_s": round(trl["train_s"], 1), "tunesmith_train_s": round(ts["train_s"], 1),
            "time_ratio": round(ts["train_s"] / trl["train_s"], 3),
            "trl_val_perplexity": round(trl["val_perplexity"], 3),
            "tunesmith_val_perplexity": round(ts["val_perplexity"], 3),
            "target_met": ts["train_s"] <= 0.7 * trl["train_s"] and ts["val_perplexity"] <= trl["val_perplexity"],
        }  # fmt: skip
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
