"""Every strategy on the demo task with the real MiniLM, 5 epochs each, in one run: the cost of each choice.

Each strategy trains in its own process (so its peak memory is its own) with the demo recipe (batch 16,
class-weighted loss, precision auto, no early stopping, audit off) at model.max_length 128 by default (the
demo uses 256; 128 keeps three quarters of the reviews whole and halves the time, and every strategy sees the
same inputs; pass --max-length 256 for the demo's setting). full and discriminative use the demo learning
rate, the other strategies their suggested one (`tunesmith strategies`). frozen starts with an empty feature
cache, so it pays for computing its features.

Prints one JSON line per strategy (wall time of the whole run, training time, peak memory, trainable
parameters and share, test macro-F1), then one summary line with the targets: frozen total time <= 0.2x full;
progressive <= 0.7x full with test macro-F1 within 0.02 of full.

    python benchmarks/strategies.py                  # all strategies (the lead's quiet-machine run)
    python benchmarks/strategies.py --only full frozen progressive
    python benchmarks/strategies.py --quick          # the tiny random BERT on 120 rows, 2 epochs: a smoke test
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EPOCHS, QUICK_EPOCHS, DEMO_LR = 5, 2, 1e-4
ORDER = ["full", "frozen", "discriminative", "progressive", "lora", "ia3", "prompt-tuning", "adapter"]


def quick_inputs(out: Path) -> list[str]:
    """Recipe overrides for --quick: the tiny random BERT and the first rows of the demo data."""
    from tunesmith.data.demo import demo_table
    from tunesmith.testing import make_tiny_bert

    model = make_tiny_bert(out / "tiny-bert")
    paths = {}
    for split, rows in (("train", 120), ("test", 60)):
        paths[split] = out / f"{split}.tsv"
        demo_table(split).head(rows)[["review", "rating", "condition"]].to_csv(
            paths[split], sep="\t", index=False
        )
    return [f"model.name={model}", f"data.train={paths['train']}", f"data.test={paths['test']}"]


def one(name: str, out_dir: str, epochs: int, max_length: int, extra: list[str]) -> dict[str, Any]:
    import torch

    from tunesmith.config.loader import apply_overrides, recipe_from_dict
    from tunesmith.demo import DEMO_RECIPE
    from tunesmith.run import run
    from tunesmith.strategies.registry import STRATEGIES

    lr = DEMO_LR if name in {"full", "discriminative"} else STRATEGIES[name].recommended_lr
    overrides = [f"strategy.name={name}", f"train.epochs={epochs}", f"train.lr={lr}", f"output.dir={out_dir}",
                 f"output.name={name}", "audit.gate='off'", "train.early_stopping.patience=null",
                 f"model.max_length={max_length}", *extra]  # fmt: skip
    recipe = recipe_from_dict(apply_overrides(DEMO_RECIPE, overrides))
    start = time.perf_counter()
    result = run(recipe, quiet=True)
    m = result.metrics
    gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {
        "strategy": name, "lr": lr, "wall_s": round(time.perf_counter() - start, 1),
        "train_s": round(m["train_time_s"], 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_gpu_mb": round(gpu_mb) if gpu_mb is not None else None,
        "trainable_params": m["trainable_params"], "trainable_pct": round(m["trainable_pct"], 3),
        "test_macro_f1": round(m["test"]["macro_f1"], 4), "precision": m["precision"], "device": m["device"],
    }  # fmt: skip


def summary(results: dict[str, Any], epochs: int, max_length: int, quick: bool) -> dict[str, Any]:
    line: dict[str, Any] = {"benchmark": "strategies", "quick": quick, "epochs": epochs, "max_length": max_length,
                            "total_s": round(sum(r.get("wall_s", 0.0) for r in results.values()), 1)}  # fmt: skip
    full, frozen, prog = (results.get(n, {}) for n in ("full", "frozen", "progressive"))
    if "wall_s" in full and "wall_s" in frozen:
        line["frozen_vs_full_time"] = round(frozen["wall_s"] / full["wall_s"], 3)
        line["frozen_target_met"] = line["frozen_vs_full_time"] <= 0.2
    if "wall_s" in full and "wall_s" in prog:
        line["progressive_vs_full_time"] = round(prog["wall_s"] / full["wall_s"], 3)
        line["progressive_f1_gap"] = round(full["test_macro_f1"] - prog["test_macro_f1"], 4)
        line["progressive_target_met"] = (
            line["progressive_vs_full_time"] <= 0.7 and line["progressive_f1_gap"] <= 0.02
        )
    return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=ORDER, choices=ORDER)
    parser.add_argument("--quick", action="store_true", help="tiny random BERT, 120 rows, 2 epochs")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--extra", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    epochs = QUICK_EPOCHS if args.quick else EPOCHS
    if args.one:
        print(json.dumps(one(args.one, args.out, epochs, args.max_length, args.extra)))
        return
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as out:  # a fresh feature cache too: frozen pays for its features
        extra = quick_inputs(Path(out)) if args.quick else []
        for name in args.only:
            command = [
                sys.executable,
                __file__,
                "--one",
                name,
                "--out",
                out,
                "--max-length",
                str(args.max_length),
            ]
            command += (["--quick"] if args.quick else []) + (["--extra", *extra] if extra else [])
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode:
                sys.stderr.write(proc.stderr[-3000:])
                results[name] = {"strategy": name, "error": proc.returncode}
            else:
                results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(results[name]), flush=True)
    print(json.dumps(summary(results, epochs, args.max_length, args.quick)))


if __name__ == "__main__":
    main()
