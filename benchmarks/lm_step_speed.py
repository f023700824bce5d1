"""SmolLM2 causal-LM throughput: conversion, reload, and LoRA forward+backward tokens/s (one JSON line).

Converts the embedded GGUF into a fresh cache (timed), reloads the safetensors copy (timed), then times
forward+backward of LoRA (peft; r 8 on q/k/v/o) in fp32 on the demo reviews cut at 128 tokens, batch 8,
packed (every window full, no padding) and unpacked (right-padded, the padding share reported).

    nice -n 10 python benchmarks/lm_step_speed.py [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--fresh-cache", action="store_true", help="time the conversion in a new cache")
    args = parser.parse_args()
    if args.fresh_cache:
        os.environ["TUNESMITH_CACHE"] = tempfile.mkdtemp(prefix="tunesmith-bench-")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.data.lm import encode_lm, lm_records
    from tunesmith.data.lm_demo import demo_corpus
    from tunesmith.data.packing import collate_packed, collate_padded, pack, token_nll
    from tunesmith.models.gguf_cache import resolve_causal_lm_dir

    start = time.perf_counter()
    directory = resolve_causal_lm_dir("smollm2")
    convert_s = time.perf_counter() - start
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    reload_s = time.perf_counter() - start
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(model, lora).train()
    encoded = encode_lm(lm_records(demo_corpus("train")), tokenizer, 128)
    packed = pack(encoded, 128, seed=0)
    batch_size = 8
    result = {"bench": "lm_step_speed", "model": "smollm2", "lora_r": 8, "max_length": 128,
              "batch_size": batch_size, "threads": torch.get_num_threads(),
              "convert_s": round(convert_s, 2), "fresh_cache": args.fresh_cache,
              "reload_s": round(reload_s, 2)}  # fmt: skip
    for mode in ("packed", "unpacked"):
        real = padded = 0
        elapsed = 0.0
        for step in range(args.steps + 1):  # step 0 warms up, not timed
            lo = step * batch_size
            if mode == "packed":
                sl = slice(lo, lo + batch_size)
                batch = collate_packed(packed.input_ids[sl], packed.labels[sl], packed.position_ids[sl],
                                       tokenizer.pad_token_id)  # fmt: skip
            else:
                sl = slice(lo, lo + batch_size)
                batch = collate_padded(encoded.input_ids[sl], encoded.labels[sl], tokenizer.pad_token_id)
            tick = time.perf_counter()
            nll, count, _ = token_nll(model(**batch.model_inputs()).logits, batch.labels)
            (nll / count).backward()
            model.zero_grad(set_to_none=True)
            if step:
                elapsed += time.perf_counter() - tick
                real += batch.real_tokens
                padded += batch.padded_tokens
        result[f"{mode}_tokens_per_s"] = round(real / elapsed, 1)
        result[f"{mode}_padding_share"] = round(1 - real / padded, 3)
        result[f"{mode}_step_s"] = round(elapsed / args.steps, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
