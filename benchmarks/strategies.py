"""Every strategy on the demo task with the real MiniLM, 5 epochs each, in one run: the cost of each choice.

Each strategy trains in its own process (so peak memory, max RSS, is its own) with the demo recipe (batch
16, class-weighted loss, max length 256, precision auto, no early stopping); full and
discriminative share the demo learning rate, the other strategies use their suggested one (`tunesmith
strategies`). Prints one JSON line: per strategy wall time, training time, peak memory, trainable parameters
and test macro-F1, and the targets: frozen total time <= 0.2x full; progressive <= 0.7x full with macro-F1
within 0.02 of full.

    python benchmarks/strategies.py                  # all strategies
    python benchmarks/strategies.py --only full frozen
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

EPOCHS, DEMO_LR = 5, 1e-4
ORDER = ["full", "frozen", "discriminative", "progressive", "lora", "ia3", "prompt-tuning", "adapter"]


def one(name: str, out_dir: str) -> dict[str, Any]:
    from tunesmith.config.loader import apply_overrides, recipe_from_dict
    from tunesmith.demo import DEMO_RECIPE
    from tunesmith.run import run
    from tunesmith.strategies.registry import STRATEGIES

    lr = DEMO_LR if name in {"full", "discriminative"} else STRATEGIES[name].recommended_lr
    overrides = [f"strategy.name={name}", f"train.epochs={EPOCHS}", f"train.lr={lr}", f"output.dir={out_dir}",
                 f"output.name={name}", "audit.gate='off'", "train.early_stopping.patience=null"]  # fmt: skip
    recipe = recipe_from_dict(apply_overrides(DEMO_RECIPE, overrides))
    start = time.perf_counter()
    result = run(recipe, quiet=True)
    m = result.metrics
    return {
        "strategy": name, "lr": lr, "wall_s": round(time.perf_counter() - start, 1), "train_s": round(m["train_time_s"], 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "trainable_params": m["trainable_params"],
        "trainable_pct": round(m["trainable_pct"], 3), "test_macro_f1": round(m["test"]["macro_f1"], 4),
        "precision": m["precision"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=ORDER)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.out)))
        return
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as out:  # a fresh feature cache too: frozen pays for its features
        for name in args.only:
            proc = subprocess.run(
                [sys.executable, __file__, "--one", name, "--out", out], capture_output=True, text=True
            )
            if proc.returncode:
                sys.stderr.write(proc.stderr[-3000:])
                results[name] = {"error": proc.returncode}
                continue
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(results[name]), file=sys.stderr)
    line: dict[str, Any] = {"benchmark": "strategies", "epochs": EPOCHS, "strategies": results}
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
    print(json.dumps(line))


if __name__ == "__main__":
    main()
