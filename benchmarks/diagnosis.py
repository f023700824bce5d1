"""Provoked failures: does the right finding fire, and do the wrong ones stay quiet?

Each case plants one failure in a small, otherwise healthy text-classification run and records which
findings (data audit + training diagnosis) fire, at warning or error severity:

    healthy      nothing planted                               expected: none
    lr_high      train.lr = 1.0                                divergence / loss_above_start
    lr_low       train.lr = 1e-7                               flat_loss
    underfit     3 epochs at lr 2e-3 (healthy: 8 at 3e-3)       barely_fit / underfitting
    label_noise  30% of training labels flipped                audit.label_errors / training.label_errors
    leakage      25% of the test rows copied into train        audit.leakage
    collapse     85% majority class, no class weights          collapsed_predictions / zero_recall
    overfitting  96 training rows (25% flipped), 30 epochs    overfitting

Per failure (a set of finding ids): recall = share of that case's runs where one of its ids fired;
precision = of all runs where one of its ids fired, the share that were that case (a consequence is
allowed where it is one: a learning rate far too high or too low also leaves a model that predicts one
class, so collapse findings there are not counted as false). Data: synthetic 3-class texts (each label has
its own keywords among shared filler words), so the cases differ only in what was planted; the model is a
random BERT (hidden 32, 2 layers) with the packaged MiniLM tokenizer unless --model names another, and the
audit's label-error check embeds with the packaged MiniLM. Prints a table and one JSON line.

    nice -n 10 python benchmarks/diagnosis.py --seeds 2        # 16 runs, a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from tunesmith.config.loader import recipe_from_dict
from tunesmith.run import run
from tunesmith.testing import make_tiny_bert

WORDS = {
    "positive": ["great", "excellent", "wonderful", "helped", "love", "amazing", "relief", "best"],
    "negative": ["awful", "terrible", "worse", "pain", "hate", "useless", "nausea", "worst"],
    "neutral": ["okay", "average", "fine", "moderate", "unsure", "mixed", "some", "maybe"],
}
FILLER = ["the", "drug", "i", "took", "it", "for", "weeks", "and", "was", "my", "doctor", "said"]
FAILURES: dict[str, set[str]] = {
    "lr_high": {"training.divergence", "training.loss_above_start"},
    "lr_low": {"training.flat_loss"},
    "underfit": {"training.barely_fit", "training.underfitting"},
    "label_noise": {"audit.label_errors", "training.label_errors"},
    "leakage": {"audit.leakage"},
    "collapse": {"training.collapsed_predictions", "training.zero_recall"},
    "overfitting": {"training.overfitting"},
}
# findings that follow from the plant: a learning rate far off, or too little training, leaves a one-class
# model; the over-fitting case memorises 25% flipped labels (how a small noisy set over-fits), so label-error
# findings are right there
CONSEQUENCES = {"lr_high": {"collapse"}, "lr_low": {"collapse"}, "underfit": {"collapse"},
                "overfitting": {"label_noise"}}  # fmt: skip
CASES = ("healthy", *FAILURES)


def rows(n: int, rng: random.Random, shares: tuple[float, float, float]) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        label = rng.choices(["positive", "negative", "neutral"], weights=shares)[0]
        words = rng.choices(FILLER, k=rng.randint(4, 16)) + rng.choices(WORDS[label], k=rng.randint(2, 4))
        rng.shuffle(words)
        out.append((" ".join(words) + f" #{rng.randrange(10**6)}", label))
    return out


def write(path: Path, data: list[tuple[str, str]]) -> str:
    path.write_text("review\trating\n" + "".join(f"{t}\t{label}\n" for t, label in data))
    return str(path)


def case_recipe(case: str, seed: int, work: Path, model: str, label_errors: bool) -> dict[str, Any]:
    rng = random.Random(seed)
    shares = (0.85, 0.1, 0.05) if case == "collapse" else (0.4, 0.35, 0.25)
    train = rows(96 if case == "overfitting" else 240, rng, shares)
    validation, test = rows(90, rng, shares), rows(90, rng, shares)
    if case in ("label_noise", "overfitting"):  # memorised wrong labels are what over-fitting looks like here
        for i in rng.sample(range(len(train)), k=int((0.3 if case == "label_noise" else 0.25) * len(train))):
            text, label = train[i]
            train[i] = (text, rng.choice([x for x in WORDS if x != label]))
    if case == "leakage":
        train += rng.sample(test, k=len(test) // 4)
    d = work / f"{case}-{seed}"
    d.mkdir(parents=True)
    train_cfg: dict[str, Any] = {"epochs": 8, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "log_every": 2,
                                 "seed": seed, "class_weights": case != "collapse"}  # fmt: skip
    if case == "lr_high":
        train_cfg["lr"] = 1.0
    if case == "lr_low":
        train_cfg["lr"] = 1e-7
    if case == "underfit":  # learning, but stopped long before the loss came down
        train_cfg |= {"lr": 2e-3, "epochs": 3}
    if case == "collapse":
        train_cfg["lr"] = 3e-4
    if case == "overfitting":
        train_cfg |= {"epochs": 30, "lr": 2e-3, "early_stopping": {"patience": None}}
    return {
        "model": {"name": model, "max_length": 64},
        "data": {
            "train": write(d / "train.tsv", train),
            "validation": write(d / "validation.tsv", validation),
            "test": write(d / "test.tsv", test),
            "text": "review",
            "label": "rating",
        },  # fmt: skip
        "train": train_cfg,
        "audit": {"label_errors": label_errors},
        "eval": {"suite": []},
        "output": {"dir": str(d / "runs"), "name": case},
    }


def score(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    table = {}
    for failure, ids in FAILURES.items():
        fired = [r for r in results if ids & set(r["fired"])]
        own = [r for r in results if r["case"] == failure]
        allowed = [r for r in fired if r["case"] == failure or failure in CONSEQUENCES.get(r["case"], set())]
        table[failure] = {
            "recall": sum(1 for r in own if ids & set(r["fired"])) / len(own) if own else None,
            "precision": len(allowed) / len(fired) if fired else None,
            "fired_in": sorted({r["case"] for r in fired}),
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--model", default=None, help="a local model directory (default: a tiny random BERT)")
    parser.add_argument("--no-label-errors", action="store_true", help="skip the audit's MiniLM label check")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="tunesmith-diag-") as tmp:
        work = Path(tmp)
        model = args.model or str(make_tiny_bert(work / "tiny-bert"))
        for case in args.cases.split(","):
            for seed in range(args.seeds):
                recipe = recipe_from_dict(case_recipe(case, seed, work, model, not args.no_label_errors))
                result = run(recipe, quiet=True)
                fired = sorted({f.id for f in result.findings if f.severity != "info"})
                f1 = (result.metrics.get("test") or {}).get("macro_f1")
                results.append({"case": case, "seed": seed, "fired": fired, "test_macro_f1": f1})
                print(
                    f"{case:12s} seed {seed} (test macro-F1 {f1:.3f}): {', '.join(fired) or '-'}", flush=True
                )
    table = score(results)
    healthy = [r for r in results if r["case"] == "healthy"]
    print("\n| failure | expected finding | recall | precision | also fired in |\n|---|---|---|---|---|")
    for failure, row in table.items():
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        others = ", ".join(c for c in row["fired_in"] if c != failure) or "-"
        print(f"| {failure} | {' / '.join(sorted(FAILURES[failure]))} | {fmt(row['recall'])} | "
              f"{fmt(row['precision'])} | {others} |")  # fmt: skip
    print(json.dumps({
        "benchmark": "diagnosis", "seeds": args.seeds, "runs": len(results),
        "model": args.model or "tiny random BERT (hidden 32, 2 layers)", "per_failure": table,
        "healthy_runs_with_warnings": sum(1 for r in healthy if r["fired"]),
        "healthy_findings": sorted({f for r in healthy for f in r["fired"]}),
        "runs_detail": results, "wall_s": round(time.perf_counter() - start, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
