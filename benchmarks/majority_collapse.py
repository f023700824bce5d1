"""The real case of the training doctor: stock Hugging Face defaults collapse to the majority class.

Runs tunesmith on the demo task (packaged MiniLM, drug-review data) with the stock defaults of the
foundation benchmark: lr 5e-5, 3 epochs, batch 16, weight decay 0.01, 10% warmup, max length 256, no
class weights, no early stopping. The diagnosis should flag collapsed predictions (one class predicted for
almost every example) with a recommended recipe change. That change is read from the finding's
config_patch (nothing is hard-coded here), applied to the same recipe as command-line overrides, and the
run repeated. Prints one JSON line: both runs' test macro-F1 and accuracy, their finding ids, the change.
Exit status 1 when the first run raised no collapse finding.

    python benchmarks/majority_collapse.py                  # the real case (2 MiniLM runs; minutes)
    python benchmarks/majority_collapse.py --quick          # a check of the script: tiny random BERT
    python benchmarks/majority_collapse.py --model PATH --epochs 1 --limit 200
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

from tunesmith.config.loader import apply_overrides, recipe_from_dict
from tunesmith.demo import DEMO_RECIPE
from tunesmith.findings import Finding
from tunesmith.report.html import patch_overrides
from tunesmith.run import run

COLLAPSE = "training.collapsed_predictions"
STOCK = {"train.epochs": 3, "train.batch_size": 16, "train.lr": 5e-5, "train.weight_decay": 0.01,
         "train.warmup_ratio": 0.1, "train.class_weights": "false", "train.early_stopping.patience": "null",
         "model.max_length": 256, "train.seed": 42}  # fmt: skip


def base_recipe(out_dir: Path, model: str | None, epochs: int | None, limit: int | None) -> dict[str, Any]:
    overrides = [f"{k}={v}" for k, v in STOCK.items()] + [f"output.dir={out_dir}"]
    if model:
        overrides.append(f"model.name={model}")
    if epochs:
        overrides.append(f"train.epochs={epochs}")
    recipe = apply_overrides(DEMO_RECIPE, overrides)
    if limit:  # a seeded sample of the demo rows, written next to the runs
        recipe["data"].update(_sample_demo(out_dir / "data", limit))
    return recipe


def _sample_demo(data_dir: Path, limit: int) -> dict[str, str]:
    from tunesmith.data.demo import demo_table

    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", limit), ("test", max(limit // 3, 30))):
        table = demo_table(split)
        path = data_dir / f"{split}.tsv"
        table.sample(n=min(n, len(table)), random_state=0).to_csv(path, sep="\t", index=False)
        paths[split] = str(path)
    return paths


def one_run(recipe: dict[str, Any], name: str) -> tuple[dict[str, Any], list[Finding]]:
    recipe = apply_overrides(recipe, [f"output.name={name}"])
    start = time.perf_counter()
    result = run(recipe_from_dict(recipe, "benchmark"), overwrite=True, quiet=True)
    m = result.metrics
    split = "test" if m.get("test") else "validation"
    summary = {"split": split, "macro_f1": round(m[split]["macro_f1"], 4), "accuracy": round(m[split]["accuracy"], 4),
               "findings": [f.id for f in result.findings], "time_s": round(time.perf_counter() - start, 1),
               "run_dir": str(result.run_dir)}  # fmt: skip
    return summary, result.findings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model name or local directory (default: the demo recipe's, minilm)")
    parser.add_argument("--epochs", type=int, help="override the stock 3 epochs (for a quick check)")
    parser.add_argument("--limit", type=int, help="train on a seeded sample of this many demo rows")
    parser.add_argument("--quick", action="store_true", help="tiny random BERT, 1 epoch, 200 rows")
    parser.add_argument("--out", type=Path, help="run directory parent (default: a temporary directory)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="tunesmith-collapse-") as tmp:
        out = args.out or Path(tmp)
        model, epochs, limit = args.model, args.epochs, args.limit
        if args.quick:
            import torch

            from tunesmith.testing import make_tiny_bert

            torch.set_num_threads(1)  # a model this small only loses time to threads on a busy machine
            model = model or str(make_tiny_bert(out / "tiny-bert"))
            epochs, limit = epochs or 1, limit or 200
        base = base_recipe(out, model, epochs, limit)
        if args.quick:
            base["audit"] = {"label_errors": False}  # the confident-learning check embeds with MiniLM

        before, found = one_run(base, "stock-defaults")
        collapse = next((f for f in found if f.id == COLLAPSE), None)
        line: dict[str, Any] = {
            "benchmark": "majority_collapse", "model": base["model"] if isinstance(base["model"], str)
            else base["model"]["name"], "stock_settings": STOCK, "limit": limit, "python": platform.python_version(),
            "stock": before, "flagged": collapse is not None,
        }  # fmt: skip
        if collapse is None or not collapse.config_patch:
            print(json.dumps(line))
            raise SystemExit(1)
        overrides = patch_overrides(collapse.config_patch).split()  # as the report prints the change
        after, _ = one_run(apply_overrides(base, overrides), "recommended")
        line.update(
            finding=collapse.id, finding_title=collapse.title, recommended_change=collapse.config_patch,
            recommended_overrides=overrides, recommended=after,
            macro_f1_gain=round(after["macro_f1"] - before["macro_f1"], 4),
        )  # fmt: skip
        print(json.dumps(line))


if __name__ == "__main__":
    main()
