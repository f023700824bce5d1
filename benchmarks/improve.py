"""`tunesmith improve` against `tunesmith tune` (Optuna TPE) at the same number of trainings, from stock settings.

On the demo task (packaged MiniLM, the drug-review data: by default all 600 train rows, a stratified 25% of
them held out for validation, and all 379 test rows). The start is the stock Hugging Face Trainer's
settings (lr 5e-5, 3 epochs, batch 8, no weight decay, no warmup, no class weights). improve runs the
stock recipe and follows its findings' config patches; tune searches the keys those patches touch
(train.lr, train.epochs up to the 12 improve can reach, train.class_weights, train.weight_decay,
model.dropout) with TPE for as many trials as improve used trainings. Both choose on the validation split;
reported: the test macro-F1 of the stock run, of improve's best recipe and of tune's best trial, for each
of --repeats validation splits (each with its own training and sampler seeds) and their means. Then each
method's final recipe (improve's best.yaml, TPE's best trial's parameters) is trained afresh on
--retrain-seeds seeds that neither saw, on the same split: the test score a user of that recipe gets,
without the luck of the one seed it was picked on. Prints one JSON line.

    python benchmarks/improve.py                                # the README figures (about 45 min a repeat here)
    python benchmarks/improve.py --quick                        # a check of the script (tiny BERT)
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tunesmith.config.loader import recipe_from_dict
from tunesmith.data.demo import demo_table
from tunesmith.tuning.space import base_data, trial_recipe

STOCK_TRAIN = {"lr": 5.0e-5, "epochs": 3, "batch_size": 8, "weight_decay": 0.0, "warmup_ratio": 0.0,
               "class_weights": False, "schedule": "linear"}  # fmt: skip
SPACE = {
    "train.lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True},
    "train.epochs": {"type": "int", "low": 1, "high": 12},  # improve can reach 12 (6 twice doubled)
    "train.class_weights": {"type": "categorical", "choices": [False, True]},
    "train.weight_decay": {"type": "categorical", "choices": [0.0, 0.1]},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
}


def subset(split: str, n: int, seed: int) -> pd.DataFrame:
    """A stratified sample of n rows of a demo split (every class keeps its share)."""
    frame = demo_table(split)
    share = min(1.0, n / len(frame))
    parts = [g.sample(frac=share, random_state=seed) for _, g in frame.groupby("rating")]
    return pd.concat(parts).sort_index()


def base_recipe(data_dir: Path, out: Path, args: argparse.Namespace, model: str) -> dict[str, Any]:
    files = {}
    for split, n in (("train", args.train_rows), ("test", args.test_rows)):
        files[split] = data_dir / f"{split}.tsv"
        subset(split, n, seed=0).to_csv(files[split], sep="\t", index=False)
    return {
        "model": {"name": model, "max_length": args.max_length},
        "data": {"train": str(files["train"]), "test": str(files["test"]), "text": "review", "label": "rating",
                 "validation_split": 0.25},
        "train": {**STOCK_TRAIN, "precision": args.precision, "early_stopping": {"patience": None}},
        # audit off: its patches (model.max_length 224 against truncation) would multiply the cost per run
        # on this machine; the patches tried are the training diagnosis' own
        "audit": {"gate": "off"},
        "eval": {"suite": []},
        "output": {"dir": str(out), "name": "stock"},
    }  # fmt: skip


def test_f1(run_dir: Path) -> float:
    return float(json.loads((run_dir / "metrics.json").read_text())["test"]["macro_f1"])


def retrain(recipe: dict[str, Any], out: Path, seeds: list[int]) -> list[float]:
    """Test macro-F1 of `recipe` trained afresh on each seed (same split): what a user of its best.yaml gets,
    without the luck of the seed it was picked on. Finished runs are reused."""
    from tunesmith.tuning.compare import run_unit

    scores = []
    for seed in seeds:
        data = json.loads(json.dumps(recipe))
        data["train"]["seed"] = seed
        data["output"] = {"dir": str(out), "name": f"seed-{seed}"}
        data["search"] = {}
        scores.append(test_f1(run_unit(recipe_from_dict(data, "retrain"), quiet=True, isolate=False)))
    return scores


def one_repeat(args: argparse.Namespace, out: Path, model: str, repeat: int) -> dict[str, Any]:
    """improve, then tune with as many trainings, on one validation split and seed set (`repeat`)."""
    from tunesmith.tuning import search
    from tunesmith.tuning.improve import improve

    out.mkdir(parents=True, exist_ok=True)
    base = base_recipe(out, out / "runs", args, model)
    base["data"]["seed"] = 42 + repeat  # a different stratified validation split per repetition
    base["train"]["seed"] = 42 + 10 * repeat  # improve's seeds are this and the next ones
    # improve's first baseline *is* the stock run (same recipe, same seed): its test score is the stock one
    start = time.perf_counter()
    report = improve(recipe_from_dict({**base, "output": {**base["output"], "name": "improve"}}, "improve"),
                     seeds=args.seeds, rounds=args.budget, budget=args.budget, source="stock")  # fmt: skip
    improve_s = time.perf_counter() - start

    trials = report["trainings"]  # the same number of trainings as improve used
    tune_data = {**base, "search": SPACE, "output": {**base["output"], "name": "tune"},
                 "tune": {"startup_trials": min(5, max(1, trials // 2)), "seed": repeat}}  # fmt: skip
    start = time.perf_counter()
    setup = search.setup(recipe_from_dict(tune_data, "tune"), "tune", trials, None)
    study = search.tune(setup, quiet=True)
    summary = search.write_outputs(setup, study)
    tune_s = time.perf_counter() - start
    tune_best = summary["best"]
    tune_test = test_f1(Path(tune_best["run_dir"])) if tune_best else None
    fresh: dict[str, Any] = {}
    if args.retrain_seeds and tune_best:
        seeds = [1000 + 10 * repeat + i for i in range(args.retrain_seeds)]  # seeds neither method saw
        improve_recipe = yaml.safe_load(Path(report["best"]["recipe"]).read_text())
        tune_recipe = trial_recipe(
            base_data(recipe_from_dict(base, "stock")), tune_best["params"], "tune best"
        )
        fresh = {"retrain_seeds": seeds,
                 "improve_retrained": retrain(improve_recipe, out / "retrain-improve", seeds),
                 "tune_tpe_retrained": retrain(tune_recipe.model_dump(mode="json"), out / "retrain-tune", seeds)}  # fmt: skip
        for key in ("improve_retrained", "tune_tpe_retrained"):
            fresh[f"{key}_test_macro_f1"] = round(sum(fresh[key]) / len(seeds), 4)
            fresh[key] = [round(v, 4) for v in fresh[key]]
    return {
        "repeat": repeat, "budget_trainings": trials,
        "stock_test_macro_f1": round(report["start"]["test_score"], 4),  # means over improve's seeds
        "improve_test_macro_f1": round(report["best"]["test_score"], 4),
        # the model improve hands over (its final recipe's best seed on validation), like TPE's best trial
        "improve_best_model_test_macro_f1": round(report["best"]["model"]["test_score"], 4),
        "tune_tpe_test_macro_f1": None if tune_test is None else round(tune_test, 4),
        "improve_val_macro_f1": round(report["best"]["score"], 4),
        "tune_tpe_val_macro_f1": None if not tune_best else round(tune_best["value"], 4),
        "improve_changes": [c["patch"] for c in report["chain"]], "improve_stop": report["stop_reason"],
        "improve_tried": [[r["round"], c["patch"], c["status"], c.get("gain") and round(c["gain"], 4)]
                          for r in report["rounds"] for c in r["candidates"]],
        # why improve stopped where it did: the gain it could not decide and the data that would decide it
        "improve_undecided": {k: report["undecided"]["evidence"][k] for k in ("patch", "gain", "half_width",
                              "validation_examples", "examples_needed")} if report["undecided"] else None,
        "tune_best_params": tune_best["params"] if tune_best else None,
        "improve_s": round(improve_s, 1), "tune_s": round(tune_s, 1), **fresh,
    }  # fmt: skip


def mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return round(sum(values) / len(values), 4) if values else None


def at_least(rows: list[dict[str, Any]], ours: str, theirs: str) -> int:
    """Repetitions where improve's `ours` is at least TPE's `theirs` (those without TPE's not counted)."""
    return sum(1 for r in rows if r.get(theirs) is not None and r[ours] >= r[theirs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny random BERT: checks the script")
    parser.add_argument("--budget", type=int, default=12, help="trainings for each of improve and tune")
    parser.add_argument("--seeds", type=int, default=2, help="improve: seeds per recipe")
    parser.add_argument(
        "--repeats", type=int, default=3, help="validation splits (and seeds) to average over"
    )
    parser.add_argument("--train-rows", type=int, default=600, help="the demo train split has 600")
    parser.add_argument("--test-rows", type=int, default=379, help="the demo test split has 379")
    parser.add_argument("--retrain-seeds", type=int, default=3,
                        help="train each method's final recipe afresh on this many new seeds (0: skip)")  # fmt: skip
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", default=None, help="runs directory (default: a temporary one)")
    args = parser.parse_args()
    if args.retrain_seeds < 0:
        parser.error(f"--retrain-seeds: must be 0 (skip) or more; got {args.retrain_seeds}")
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        model = "minilm"
        if args.quick:
            from tunesmith.testing import make_tiny_bert

            model = str(make_tiny_bert(out / "tiny-bert"))
            args.budget, args.seeds, args.repeats, args.train_rows, args.test_rows = 3, 1, 1, 120, 60
            args.retrain_seeds = min(args.retrain_seeds, 1)
        rows = [one_repeat(args, out / f"repeat-{r}", model, r) for r in range(args.repeats)]

    keys = ("stock_test_macro_f1", "improve_test_macro_f1", "improve_best_model_test_macro_f1", "tune_tpe_test_macro_f1",
            "improve_val_macro_f1", "tune_tpe_val_macro_f1")  # fmt: skip
    if args.retrain_seeds:
        keys += ("improve_retrained_test_macro_f1", "tune_tpe_retrained_test_macro_f1")
    ahead = at_least(rows, "improve_test_macro_f1", "tune_tpe_test_macro_f1")
    model_ahead = at_least(rows, "improve_best_model_test_macro_f1", "tune_tpe_test_macro_f1")
    retrained_ahead = at_least(rows, "improve_retrained_test_macro_f1", "tune_tpe_retrained_test_macro_f1")
    print(json.dumps({
        "benchmark": "improve", "quick": args.quick, "model": "tiny-bert" if args.quick else "minilm",
        "data": f"demo: {args.train_rows} train rows (25% held out for validation, a different stratified "
                f"split per repeat), {args.test_rows} test", "max_length": args.max_length,
        "precision": args.precision, "start": STOCK_TRAIN, "budget": args.budget, "improve_seeds": args.seeds,
        "repeats": args.repeats, **{f"mean_{k}": mean(rows, k) for k in keys},
        "improve_at_least_tpe_on_test": f"{ahead}/{len(rows)}",
        "improve_best_model_at_least_tpe_on_test": f"{model_ahead}/{len(rows)}",
        "improve_at_least_tpe_retrained": f"{retrained_ahead}/{len(rows)}" if args.retrain_seeds else None,
        "per_repeat": rows,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
