"""The plan's predictions against what the run then measures, on the real MiniLM and drug reviews.

For each configuration (full fine-tuning at micro-batch 8 / 16 x model.max_length 64 / 128, lora and frozen
at 8 x 64 and 16 x 128, gradient checkpointing on full and lora at 16 x 128) one real run of one epoch on a small subset:
the plan (RUN_DIR/plan.json, written by the run's own plan stage) predicts the peak memory and the
epoch's training time; a callback measures the peak resident memory (VmHWM, reset at the start of
training, validation included) and the history records the epoch's training time. One JSON line per
configuration (each in its own process: runs before it in one process leave the allocator's free lists
behind, which showed as up to 24% more peak memory for the later configurations), then a summary line:
how many configurations meet the targets (peak within 15%, epoch time within 20%) and the memory gradient
checkpointing and each strategy save. 256 reviews by default: epochs of 64 (1-5 s, 4-8 steps) are short enough
for one-off costs and timing noise to move the epoch-time error by 10-30% from one run to the next.

    python benchmarks/hardware.py [--train 256] [--validation 16]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from tunesmith.config.loader import recipe_from_dict
from tunesmith.data.demo import demo_table
from tunesmith.hardware.memory import MIB, _host_peak_bytes, _reset_host_peak, rss_bytes
from tunesmith.run import run
from tunesmith.training.callbacks.base import Callback, TrainContext

LR = {"full": 5e-5, "lora": 5e-4, "frozen": 1e-3}


class PeakRSS(Callback):
    name = "peak_rss"

    def on_train_start(self, ctx: TrainContext) -> None:
        _reset_host_peak()
        self.start = rss_bytes()

    def on_train_end(self, ctx: TrainContext) -> None:
        self.peak = _host_peak_bytes()


def _subset(out: Path, train: int, validation: int) -> dict[str, str]:
    table = demo_table("train").sample(frac=1.0, random_state=0)
    paths = {"train": out / "train.tsv", "validation": out / "validation.tsv"}
    table.iloc[:train].to_csv(paths["train"], sep="\t", index=False)
    table.iloc[train : train + validation].to_csv(paths["validation"], sep="\t", index=False)
    return {k: str(v) for k, v in paths.items()}


def one(config: dict[str, Any], files: dict[str, str], out: Path) -> dict[str, Any]:
    strategy, batch, length, gc = config["strategy"], config["batch"], config["length"], config["gc"]
    recipe = recipe_from_dict({
        "model": {"name": "minilm", "max_length": length},
        "data": {**files, "text": "review", "label": "rating"},
        "strategy": {"name": strategy, **({"cache": False} if strategy == "frozen" else {})},
        "train": {"epochs": 1, "batch_size": batch, "lr": LR[strategy], "precision": "fp32",
                  "gradient_checkpointing": gc, "early_stopping": {"patience": None}},
        "eval": {"on_start": False, "suite": []},
        "audit": {"gate": "off"},
        "output": {"dir": str(out), "name": f"{strategy}-{batch}-{length}{'-gc' if gc else ''}"},
    })  # fmt: skip
    meter = PeakRSS()
    result = run(recipe, quiet=True, overwrite=True, extra_callbacks=[meter])
    plan = json.loads((result.run_dir / "plan.json").read_text())
    history = [json.loads(line) for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
    epoch = next(r for r in history if r.get("kind") == "epoch" and r.get("epoch") == 1)
    predicted_peak = plan["memory_mb"]["needed"]
    measured_peak = meter.peak / MIB
    probe = plan["probe"]
    base_mb = (probe["weights_bytes"] + probe["other_bytes"]) / MIB
    predicted_epoch, measured_epoch = plan["time_s"]["train_epoch"], float(epoch["time_s"])
    return {
        "benchmark": "hardware", "strategy": strategy, "batch_size": batch, "max_length": length,
        "gradient_checkpointing": gc, "train_examples": result.metrics["data"]["train"],
        "predicted_peak_mb": round(predicted_peak, 1), "measured_peak_mb": round(measured_peak, 1),
        "peak_error": round(predicted_peak / measured_peak - 1, 4),
        "predicted_training_extra_mb": round(predicted_peak - base_mb, 1),
        "measured_training_extra_mb": round(measured_peak - meter.start / MIB, 1),
        "memory_mb": {k: round(v, 1) for k, v in plan["memory_mb"].items()},
        "predicted_epoch_s": round(predicted_epoch, 2), "measured_epoch_s": round(measured_epoch, 2),
        "epoch_time_error": round(predicted_epoch / measured_epoch - 1, 4),
        "tokens_per_s": round(plan["tokens_per_s"], 1), "macro_f1": round(result.metrics["validation"]["macro_f1"], 4),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=256)
    parser.add_argument("--validation", type=int, default=16)
    parser.add_argument("--config", default=None, help="one configuration as JSON (used internally)")
    parser.add_argument("--files", default=None, help="the subset's files as JSON (used internally)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.config:
        with tempfile.TemporaryDirectory() as tmp:
            row = one(json.loads(args.config), json.loads(args.files), Path(tmp) / "runs")
        print(json.dumps(row), flush=True)
        return
    # full fine-tuning on the whole grid; lora and frozen at its two corners; checkpointing at 16 x 128
    configs = [{"strategy": "full", "batch": b, "length": n, "gc": False} for b in (8, 16) for n in (64, 128)]
    configs += [{"strategy": s, "batch": b, "length": n, "gc": False}
                for s in ("lora", "frozen") for b, n in ((8, 64), (16, 128))]  # fmt: skip
    configs += [{"strategy": s, "batch": 16, "length": 128, "gc": True} for s in ("full", "lora")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = json.dumps(_subset(Path(tmp), args.train, args.validation))
        for config in configs:
            command = [sys.executable, __file__, "--config", json.dumps(config), "--files", files]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    frame = pd.DataFrame(rows)
    peak = {(r["strategy"], r["batch_size"], r["max_length"], r["gradient_checkpointing"]): r for r in rows}

    def extra(strategy: str, gc: bool = False) -> float:
        return float(peak[(strategy, 16, 128, gc)]["measured_training_extra_mb"])

    summary = {
        "benchmark": "hardware", "summary": True, "configurations": len(rows),
        "peak_within_15pct": int((frame["peak_error"].abs() <= 0.15).sum()),
        "epoch_time_within_20pct": int((frame["epoch_time_error"].abs() <= 0.20).sum()),
        "max_abs_peak_error": round(float(frame["peak_error"].abs().max()), 4),
        "max_abs_epoch_time_error": round(float(frame["epoch_time_error"].abs().max()), 4),
        "median_abs_epoch_time_error": round(float(frame["epoch_time_error"].abs().median()), 4),
        "training_extra_mb_at_16x128": {"full": extra("full"), "full+checkpointing": extra("full", True),
                                        "lora": extra("lora"), "lora+checkpointing": extra("lora", True),
                                        "frozen": extra("frozen")},
        "checkpointing_saves_mb": {"full": round(extra("full") - extra("full", True), 1),
                                   "lora": round(extra("lora") - extra("lora", True), 1)},
        "strategy_saves_vs_full_mb": {"lora": round(extra("full") - extra("lora"), 1),
                                      "frozen": round(extra("full") - extra("frozen"), 1)},
    }  # fmt: skip
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
