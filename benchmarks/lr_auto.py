"""`train.lr: auto` (LR range test, then one run) against a 5-point manual grid 1e-5..1e-3, in the same process.

On the demo task (packaged MiniLM, drug-review data, the demo recipe). Reports the test macro-F1 of the
auto run and of the best grid point (best by validation macro-F1, as a user would pick it, and by test
macro-F1, the oracle), and the cost (wall-clock seconds) of auto against the whole grid. Target: auto
within 0.02 macro-F1 of the best grid point, at under a quarter of the grid's cost. Prints one JSON line.

    python benchmarks/lr_auto.py            # the real benchmark (MiniLM; about 6 full runs)
    python benchmarks/lr_auto.py --epochs 3 --max-length 128   # the figures in the README (about 15 min)
    python benchmarks/lr_auto.py --quick    # a check of the script: tiny random BERT, 1 epoch
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config.loader import apply_overrides, recipe_from_dict
from tunesmith.demo import DEMO_RECIPE
from tunesmith.run import run

GRID = [float(f"{lr:.3g}") for lr in np.geomspace(1e-5, 1e-3, 5)]


def one_run(base: dict[str, Any], lr: float | str, name: str) -> dict[str, Any]:
    recipe = recipe_from_dict(apply_overrides(base, [f"train.lr={lr}", f"output.name={name}"]), "benchmark")
    start = time.perf_counter()
    result = run(recipe, overwrite=True, quiet=True)
    seconds = time.perf_counter() - start
    m = result.metrics
    used = json.loads((result.run_dir / "lr_find.json").read_text())["suggestion"] if lr == "auto" else lr
    return {"lr": used, "test_macro_f1": m["test"]["macro_f1"], "val_macro_f1": m["validation"]["macro_f1"],
            "time_s": round(seconds, 2), "train_time_s": round(m["train_time_s"], 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny random BERT and 1 epoch: checks the script"
    )
    parser.add_argument("--model", default=None, help="model name or directory (default: minilm)")
    parser.add_argument("--out", default=None, help="runs directory (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the demo's 5)")
    parser.add_argument("--max-length", type=int, default=None, help="model.max_length (default: 256)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        overrides = [
            f"output.dir={out}",
            'audit.gate="off"',
        ]  # the audit is the same for every run: not timed
        overrides += [f"train.epochs={args.epochs}"] if args.epochs else []
        overrides += [f"model.max_length={args.max_length}"] if args.max_length else []
        model = args.model
        if args.quick:
            from tunesmith.testing import make_tiny_bert

            model = model or str(make_tiny_bert(out / "tiny-bert"))
            overrides += ["train.epochs=1", "model.max_length=64", "train.precision=fp32"]
        base = apply_overrides(DEMO_RECIPE, overrides + ([f"model={model}"] if model else []))
        # untimed warm-up: the first run in a process pays for imports, caches and allocator growth
        one_run(apply_overrides(base, ["train.epochs=1"]), GRID[2], "warm-up")
        auto = one_run(base, "auto", "lr-auto")
        grid = [one_run(base, lr, f"lr-{i}") for i, lr in enumerate(GRID)]
    by_val = max(grid, key=lambda g: g["val_macro_f1"])
    by_test = max(grid, key=lambda g: g["test_macro_f1"])
    grid_time = sum(g["time_s"] for g in grid)
    gap = by_test["test_macro_f1"] - auto["test_macro_f1"]
    cost = auto["time_s"] / grid_time
    print(json.dumps({
        "benchmark": "lr_auto", "quick": args.quick, "epochs": args.epochs or DEMO_RECIPE["train"]["epochs"],
        "max_length": args.max_length or 256, "model": model or "minilm", "machine": platform.machine(),
        "auto": auto, "grid": grid, "best_grid_by_validation": by_val, "best_grid_by_test": by_test,
        "f1_gap_to_best_grid": round(gap, 4), "f1_gap_to_validation_pick": round(by_val["test_macro_f1"] - auto["test_macro_f1"], 4),
        "cost_ratio_auto_to_grid": round(cost, 4),
        "target": "gap <= 0.02 and cost ratio < 0.25", "met": bool(gap <= 0.02 and cost < 0.25),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
