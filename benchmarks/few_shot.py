"""Few-shot: zero-shot, setfit, full fine-tuning and frozen on the same tiny subsets of the demo data.

For k = 8, 16, 32, 64 training examples per class (neutral has only 54 rows in the demo train split: at 64
it gives what is left after validation), three seeds each. Every method of a (k, seed) cell sees the same
training rows, the same validation rows (8 per class, drawn from the rest of the train split: few-shot means
little validation data too) and the same fixed test subsample (the first `--test-rows` rows of the test
split, 150 by default, to keep the whole benchmark near 20 minutes on 2 loaded cores). Real MiniLM, fp32,
model.max_length 64, audit and evaluation suite off. Settings (the same for every k):

- zero-shot: the label names as descriptions, no training;
- setfit: 5 pair iterations (at most 240 pairs), encoder lr 2e-5 for one epoch, logistic head, then
  3 head epochs at lr 1e-4;
- full: every weight, lr 5e-5, 8 epochs, batch 8, early stopping on validation macro-F1 (patience 3);
- frozen: the head on the cached [CLS] pooler features, lr 1e-3, 30 epochs, batch 8.

Prints one JSON line: settings, test macro-F1 per method and k (mean, std, per seed), wall time per
method, and the target (setfit beats full at 8 and 16 per class).

    nice -n 10 python benchmarks/few_shot.py
    python benchmarks/few_shot.py --ks 8 --seeds 1 --test-rows 40   # a smoke test
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

METHODS: dict[str, dict[str, Any]] = {
    "zero-shot": {"strategy": {"name": "zero-shot"}, "train": {"epochs": 1}},
    "setfit": {"strategy": {"name": "setfit", "iterations": 5, "max_pairs": 240},
               "train": {"epochs": 3, "lr": 1e-4, "batch_size": 8}},
    "full": {"strategy": {"name": "full"}, "train": {"epochs": 8, "lr": 5e-5, "batch_size": 8}},
    "frozen": {"strategy": {"name": "frozen"}, "train": {"epochs": 30, "lr": 1e-3, "batch_size": 8}},
}  # fmt: skip
VAL_PER_CLASS = 8


def subsets(k: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) rows of the demo train split: k (or what is left) per class, 8 per class."""
    from tunesmith.data.demo import demo_table

    table = demo_table("train")
    train, val = [], []
    for _, rows in table.groupby("rating"):
        shuffled = rows.sample(frac=1.0, random_state=seed)
        val.append(shuffled.iloc[:VAL_PER_CLASS])
        train.append(shuffled.iloc[VAL_PER_CLASS : VAL_PER_CLASS + k])
    return pd.concat(train), pd.concat(val)


def one_run(method: str, files: dict[str, Path], out: Path, name: str, seed: int, max_length: int) -> float:
    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.run import run

    spec = METHODS[method]
    recipe = {
        "model": {"name": "minilm", "max_length": max_length},
        "data": {"train": str(files["train"]), "validation": str(files["validation"]), "test": str(files["test"]),
                 "text": "review", "label": "rating"},
        "strategy": spec["strategy"],
        "train": {"batch_size": 8, "precision": "fp32", "seed": seed, "early_stopping": {"patience": 3},
                  **spec["train"]},
        "audit": {"gate": "off"}, "eval": {"suite": []},
        "output": {"dir": str(out), "name": name},
    }  # fmt: skip
    result = run(recipe_from_dict(recipe, "few_shot"), quiet=True)
    return float(result.metrics["test"]["macro_f1"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-rows", type=int, default=150)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    from tunesmith.data.demo import demo_table

    scores: dict[str, dict[int, list[float]]] = {m: {k: [] for k in args.ks} for m in args.methods}
    seconds = dict.fromkeys(args.methods, 0.0)
    counts: dict[int, dict[str, int]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="few-shot-") as tmp:
        root = Path(tmp)
        test_file = root / "test.tsv"
        demo_table("test").head(args.test_rows).to_csv(test_file, sep="\t", index=False)
        for k in args.ks:
            for seed in range(args.seeds):
                train, val = subsets(k, seed)
                counts[k] = {str(c): int(v) for c, v in train["rating"].value_counts().items()}
                files = {"train": root / f"train-{k}-{seed}.tsv", "validation": root / f"val-{k}-{seed}.tsv",
                         "test": test_file}  # fmt: skip
                train.to_csv(files["train"], sep="\t", index=False)
                val.to_csv(files["validation"], sep="\t", index=False)
                for method in args.methods:
                    t0 = time.perf_counter()
                    f1 = one_run(method, files, root / "runs", f"{method}-{k}-{seed}", seed, args.max_length)
                    seconds[method] += time.perf_counter() - t0
                    scores[method][k].append(round(f1, 4))
                    # one progress line per run on stderr, so a cut-short benchmark still says something
                    print(
                        json.dumps(
                            {
                                "k": k,
                                "seed": seed,
                                "method": method,
                                "test_macro_f1": round(f1, 4),
                                "s": round(time.perf_counter() - t0, 1),
                            }
                        ),
                        file=sys.stderr,
                        flush=True,
                    )
    summary = {
        m: {str(k): {"mean": round(statistics.mean(v), 4),
                     "std": round(statistics.stdev(v), 4) if len(v) > 1 else 0.0, "seeds": v}
            for k, v in per_k.items()}
        for m, per_k in scores.items()
    }  # fmt: skip
    target = {
        f"setfit_beats_full_at_{k}": summary["setfit"][str(k)]["mean"] > summary["full"][str(k)]["mean"]
        for k in (8, 16)
        if "setfit" in summary and "full" in summary and str(k) in summary["setfit"]
    }
    print(json.dumps({
        "benchmark": "few_shot", "model": "minilm", "data": "demo drug reviews", "metric": "test macro_f1",
        "ks": args.ks, "seeds": args.seeds, "test_rows": args.test_rows, "validation_per_class": VAL_PER_CLASS,
        "max_length": args.max_length, "train_counts": counts, "settings": METHODS, "macro_f1": summary,
        "seconds": {m: round(s, 1) for m, s in seconds.items()}, "total_s": round(time.perf_counter() - started, 1),
        **target,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
