"""Sequential fine-tuning on the real demo data with one encoder and two heads, with and without protection.

Task A: rating (3 classes) on the drug-review train set. Task B: condition, the five most frequent
conditions. B starts from A's fine-tuned model: its encoder goes on, a fresh 5-class head is put on it, and
A's head is kept aside; tunesmith finds that head in the starting checkpoint and scores the retain set (A's
training data) through it, which is what EWC's Fisher and replay's loss use. Task-A macro-F1 is measured here,
independently of tunesmith, on A's test set with A's head on top of each encoder: after A, after B without
protection, and after B with ewc, l2sp and replay (tunesmith's defaults, or --set); task-B macro-F1 for each.
Target: at least one method removes at least half of the forgetting while task-B macro-F1 stays within 0.03
of the unprotected run. model.max_length is 128 by default (--max-length 256 for the demo's setting).
Prints one JSON line per run, then a summary line.

    python benchmarks/forgetting.py
    python benchmarks/forgetting.py --methods none replay --set forgetting.replay_fraction=0.5
    python benchmarks/forgetting.py --quick     # the tiny random BERT on a few rows: a smoke test
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

EPOCHS_A, EPOCHS_B, LR = 3, 3, 1e-4
QUICK_ROWS = 150


def _tsv(path: Path, frame: Any, label: str) -> Path:
    frame[["review", label]].to_csv(path, sep="\t", index=False)
    return path


def _task_a_f1(encoder_dir: Path, head_model: Any, test: Path, tokenizer: Any, max_length: int) -> float:
    """Task-A macro-F1 of an encoder under A's head (the second head of the same encoder)."""
    import pandas as pd

    from tunesmith.evaluation.metrics import classification_metrics
    from tunesmith.export import load_trained

    model = load_trained(encoder_dir)
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    hf.classifier = head_model.classifier
    frame = pd.read_csv(test, sep="\t")
    labels = [head_model.config.label2id[v] for v in frame["rating"]]
    preds: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(frame), 32):
            texts = frame["review"].iloc[start : start + 32].tolist()
            batch = tokenizer(
                texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            preds += hf.eval()(**batch).logits.argmax(-1).tolist()
    names = [head_model.config.id2label[i] for i in range(len(head_model.config.id2label))]
    return float(classification_metrics(labels, preds, names)["macro_f1"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", nargs="*", default=["none", "ewc", "l2sp", "replay"])
    parser.add_argument("--set", nargs="*", default=[], help="extra recipe overrides for the B runs")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny random BERT, {QUICK_ROWS} rows, 1 epoch each"
    )
    args = parser.parse_args()

    from transformers import AutoModelForSequenceClassification

    from tunesmith.config.loader import apply_overrides, recipe_from_dict
    from tunesmith.data.demo import demo_table
    from tunesmith.models.loader import load_tokenizer
    from tunesmith.run import run
    from tunesmith.testing import make_tiny_bert

    tmp = Path(tempfile.mkdtemp(prefix="forgetting-bench-"))
    train, test = demo_table("train"), demo_table("test")
    top5 = train["condition"].value_counts().index[:5].tolist()
    a_train = train.head(QUICK_ROWS) if args.quick else train
    files = {"a_train": _tsv(tmp / "a_train.tsv", a_train, "rating"), "a_test": _tsv(tmp / "a_test.tsv", test, "rating"),
             "b_train": _tsv(tmp / "b_train.tsv", train[train["condition"].isin(top5)], "condition"),
             "b_test": _tsv(tmp / "b_test.tsv", test[test["condition"].isin(top5)], "condition")}  # fmt: skip
    model_name = str(make_tiny_bert(tmp / "tiny-bert")) if args.quick else "minilm"
    epochs_a, epochs_b = (1, 1) if args.quick else (EPOCHS_A, EPOCHS_B)

    def recipe(name: str, model: str, task: str, epochs: int, extra: list[str]) -> Any:
        label = "rating" if task == "a" else "condition"
        base = {"model": {"name": model, "max_length": args.max_length},
                "data": {"train": str(files[f"{task}_train"]), "test": str(files[f"{task}_test"]),
                         "text": "review", "label": label}, "output": {"dir": str(tmp / "runs"), "name": name}}  # fmt: skip
        overrides = [f"train.epochs={epochs}", f"train.lr={LR}", "train.class_weights=true", "audit.gate='off'",
                     "train.early_stopping.patience=null", *extra]  # fmt: skip
        return recipe_from_dict(apply_overrides(base, overrides))

    t0 = time.perf_counter()
    a = run(recipe("A", model_name, "a", epochs_a, []), quiet=True)
    a_dir = a.run_dir / "model"  # B starts here: A's encoder, and A's head as the retain head
    a_model = AutoModelForSequenceClassification.from_pretrained(a_dir).eval()
    tokenizer = load_tokenizer(a_dir)
    after_a = _task_a_f1(a_dir, a_model, files["a_test"], tokenizer, args.max_length)
    line: dict[str, Any] = {"benchmark": "forgetting", "quick": args.quick, "max_length": args.max_length,
                            "task_a_f1_after_a": round(after_a, 4), "a_wall_s": round(time.perf_counter() - t0, 1),
                            "runs": {}}  # fmt: skip
    print(
        json.dumps({"run": "A", "task_a_f1": line["task_a_f1_after_a"], "wall_s": line["a_wall_s"]}),
        flush=True,
    )
    for method in args.methods:
        extra = [
            f"forgetting.retain={files['a_train']}",
            "forgetting.label=rating",
            f"forgetting.method={method}",
            *args.set,
        ]
        start = time.perf_counter()
        b = run(recipe(f"B-{method}", str(a_dir), "b", epochs_b, extra), quiet=True)
        f = b.metrics["forgetting"]
        assert f["head"] == "starting model's head", f["head"]
        line["runs"][method] = {
            "task_a_f1": round(_task_a_f1(b.run_dir / "model", a_model, files["a_test"], tokenizer, args.max_length), 4),
            "task_b_f1": round(b.metrics["test"]["macro_f1"], 4), "retain_drop_measured": round(f["drop"], 4),
            "wall_s": round(time.perf_counter() - start, 1),
        }  # fmt: skip
        print(json.dumps({"run": f"B-{method}", **line["runs"][method]}), flush=True)
    runs = line["runs"]
    if "none" in runs:
        forgetting = after_a - runs["none"]["task_a_f1"]
        line["forgetting_unprotected"] = round(forgetting, 4)
        for method, r in runs.items():
            if method != "none":
                r["forgetting_removed"] = (
                    round((r["task_a_f1"] - runs["none"]["task_a_f1"]) / forgetting, 3)
                    if forgetting > 0
                    else None
                )
                r["task_b_gap"] = round(runs["none"]["task_b_f1"] - r["task_b_f1"], 4)
        line["target_met"] = any((r.get("forgetting_removed") or 0) >= 0.5 and r.get("task_b_gap", 1) <= 0.03
                                 for m, r in runs.items() if m != "none")  # fmt: skip
    line["overrides"] = args.set
    line["total_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
