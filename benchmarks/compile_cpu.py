"""train.compile on this machine: the demo task (as in vs_hf_trainer.py) trained eagerly and compiled.

Each side runs in its own process (a fresh compile cache). Reports the training loop's time for both,
the steady-state real tokens/s of the last epoch (after the compiles), the number of compiled graphs and
the test macro-F1, as one JSON line.

    python benchmarks/compile_cpu.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))


def one_side(compiled: bool, epochs: int) -> dict[str, Any]:
    from torch._dynamo.utils import counters
    from vs_hf_trainer import demo_recipe

    from tunesmith.config.loader import apply_overrides, recipe_from_dict
    from tunesmith.run import run

    with tempfile.TemporaryDirectory() as out_dir:
        recipe = apply_overrides(
            demo_recipe(out_dir), [f"train.compile={str(compiled).lower()}", f"train.epochs={epochs}"]
        )
        start = time.perf_counter()
        result = run(recipe_from_dict(recipe), quiet=True)
        wall = time.perf_counter() - start
        lines = (result.run_dir / "history.jsonl").read_text().splitlines()
        epochs_rec = [r for r in map(json.loads, lines) if r["kind"] == "epoch" and r["epoch"] > 0]
        return {
            "train_loop_s": result.metrics["train_loop_s"], "wall_s": wall,
            "last_epoch_tokens_per_s": float(epochs_rec[-1]["tokens_per_s"]),  # each epoch's own rate
            "graphs": counters["stats"]["unique_graphs"], "macro_f1": result.metrics["test"]["macro_f1"],
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=["eager", "compiled"])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if args.side:
        print("RESULT " + json.dumps(one_side(args.side == "compiled", args.epochs)), flush=True)
        return
    sides = {}
    for side in ("eager", "compiled"):
        done = subprocess.run([sys.executable, __file__, "--side", side, "--epochs", str(args.epochs)],
                              capture_output=True, text=True)  # fmt: skip
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"{side} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        sides[side] = json.loads(lines[-1][len("RESULT ") :])
    eager, comp = sides["eager"], sides["compiled"]
    print(json.dumps({
        "benchmark": "compile_cpu", "task": f"drug-review rating, MiniLM, {args.epochs} epochs, batch 16",
        "eager_train_loop_s": round(eager["train_loop_s"], 1), "compiled_train_loop_s": round(comp["train_loop_s"], 1),
        "time_ratio": round(comp["train_loop_s"] / eager["train_loop_s"], 3),
        "eager_last_epoch_tokens_per_s": round(eager["last_epoch_tokens_per_s"]),
        "compiled_last_epoch_tokens_per_s": round(comp["last_epoch_tokens_per_s"]),
        "compiled_graphs": comp["graphs"], "eager_test_macro_f1": round(eager["macro_f1"], 4),
        "compiled_test_macro_f1": round(comp["macro_f1"], 4),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
