"""A synthetic but complete run directory in the formats the training loop writes (for report tests).

3 epochs of 20 optimizer steps, logged every 2 steps with GradientMonitor keys (update ratios every 10),
validation and test predictions, an audit, metrics and findings. Some strings carry HTML to prove escaping.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

LABELS = ["negative", "neutral", "positive"]
LAYERS = ["embeddings", "block.0", "block.1", "block.2", "block.3", "head"]
HOSTILE = '<script>window.__xss = "script"</script> & </textarea><img src=x onerror="window.__xss = 1">'
REVIEWS = [
    "This medication worked wonders for my migraines, no side effects at all.",
    "Made me dizzy and nauseous for the first week, then it got a bit better.",
    "I have been taking it for 3 months. It is okay, nothing special.",
    "Terrible. My anxiety got worse and I could not sleep &#039;at all&#039;.",
    "Helped with the pain but the weight gain was hard to accept.",
    "Life changing! I wish my doctor had prescribed it years ago.",
    "No effect whatsoever after six weeks; switching to something else.",
    "Mild headaches at first, but overall my blood pressure is finally under control.",
]
GROUPS = ["Depression", "Pain", "Birth Control", "Anxiety", None]

RECIPE_YAML = """\
task: text-classification
model:
  name: minilm
  max_length: 256
data:
  train: data/train.tsv
  validation: null
  test: data/test.tsv
  text: review
  label: rating
  group: condition   # <b>not bold</b>
  validation_split: 0.15
  seed: 42
strategy:
  name: full
train:
  epochs: 3
  batch_size: 16
  lr: 5.0e-05
  weight_decay: 0.01
  warmup_ratio: 0.1
  schedule: linear
  grad_clip: 1.0
  grad_accum: 1
  class_weights: false
  precision: bf16
  seed: 42
  log_every: 2
  monitor_every: 10
  nan_policy: rollback
  max_rollbacks: 3
eval:
  metric: macro_f1
  batch_size: 64
output:
  dir: runs
  name: drug-reviews
report_to: [jsonl]
"""


def _history(rng: random.Random) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    steps_per_epoch, total = 20, 60
    for step in range(2, total + 1, 2):
        warm = min(1.0, step / 6)
        lr = 5e-5 * warm * (1 - max(0, step - 6) / (total - 6)) if step > 6 else 5e-5 * warm
        loss = 0.55 + 0.55 * math.exp(-step / 18) + rng.uniform(-0.04, 0.04)
        record: dict[str, Any] = {
            "kind": "step", "step": step, "epoch": round(step / steps_per_epoch, 4), "loss": loss, "lr": lr,
            "grad_norm": 2.5 * math.exp(-step / 40) + rng.uniform(0, 0.3), "tokens_per_s": 5000 + rng.uniform(-300, 300),
            "time_s": step * 0.62,
        }  # fmt: skip
        for depth, layer in enumerate(LAYERS):
            record[f"grad_norm/{layer}"] = (
                (0.08 + 0.12 * depth) * math.exp(-step / 60) * rng.uniform(0.8, 1.25)
            )
        if step % 10 == 0:
            for depth, layer in enumerate(LAYERS):
                record[f"update_ratio/{layer}"] = (6e-4 + 2e-4 * depth) * (lr / 5e-5 + 0.05)
        records.append(record)
        if step == 28:
            records.append({"kind": "event", "step": 29, "event": "nan_skip",
                            "message": "loss was nan at step 29: batch skipped"})  # fmt: skip
        if step % steps_per_epoch == 0:
            epoch = step // steps_per_epoch
            records.append({
                "kind": "epoch", "step": step, "epoch": epoch, "train_loss": 0.98 - 0.17 * epoch,
                "train_accuracy": 0.55 + 0.09 * epoch, "train_macro_f1": 0.33 + 0.08 * epoch,
                "val_loss": 0.86 - 0.04 * epoch, "val_accuracy": 0.6 + 0.03 * epoch,
                "val_macro_f1": 0.38 + 0.04 * epoch, "val_weighted_f1": 0.55 + 0.03 * epoch,
                "lr": lr, "time_s": step * 0.62, "tokens_per_s": 5050.0, "peak_memory_mb": 910.5,
                "val_loss_se": 0.031,
            })  # fmt: skip
            records.append({"kind": "event", "step": step, "event": "new_best",
                            "message": f"epoch {epoch}: val_macro_f1 {0.38 + 0.04 * epoch:.4f} is the best so far"})  # fmt: skip
    return records


def _predictions(rng: random.Random, n: int) -> list[dict[str, Any]]:
    rows = []
    for row in range(n):
        label = rng.choices(LABELS, weights=[0.25, 0.12, 0.63])[0]
        # The model never predicts "neutral": its recall is 0 (a finding the report shows).
        pred = label if label != "neutral" and rng.random() < 0.75 else rng.choice(["negative", "positive"])
        probs = [rng.uniform(0.02, 0.2) for _ in LABELS]
        probs[LABELS.index(pred)] = rng.uniform(0.5, 0.97)
        total = sum(probs)
        text = HOSTILE if row == 3 else rng.choice(REVIEWS) + (" " + rng.choice(REVIEWS)) * rng.randint(0, 3)
        group = "<i>Pain</i>" if row == 5 else rng.choice(GROUPS)
        rows.append({"row": row, "text": text, "label": label, "pred": pred,
                     "probs": [p / total for p in probs], "group": group})  # fmt: skip
    return rows


def _metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    index = {label: i for i, label in enumerate(LABELS)}
    matrix = [[0] * len(LABELS) for _ in LABELS]
    for r in rows:
        matrix[index[r["label"]]][index[r["pred"]]] += 1
    per_class, n = {}, len(rows)
    for i, label in enumerate(LABELS):
        support, predicted, tp = sum(matrix[i]), sum(row[i] for row in matrix), matrix[i][i]
        p, r = (tp / predicted if predicted else 0.0), (tp / support if support else 0.0)
        per_class[label] = {
            "precision": p,
            "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "support": support,
        }
    out: dict[str, Any] = {"loss": 0.74, "accuracy": sum(matrix[i][i] for i in range(len(LABELS))) / n}
    for name in ("precision", "recall", "f1"):
        out[f"macro_{name}"] = sum(c[name] for c in per_class.values()) / len(LABELS)
        out[f"weighted_{name}"] = sum(c[name] * c["support"] for c in per_class.values()) / n
    out["per_class"], out["confusion_matrix"] = per_class, matrix
    return out


def _audit() -> dict[str, Any]:
    return {
        "findings": [
            {"id": "audit.train_test_overlap", "stage": "audit", "severity": "error",
             "title": "12 test reviews also appear in the training data", "evidence": {"overlapping_rows": 12},
             "rows": [4, 17, 33, 58, 71, 90, 102, 140, 151, 160, 171, 190], "recommendation":
             "Drop the overlapping rows from the test set so test metrics measure unseen data.",
             "config_patch": None},
            {"id": "audit.html_entities", "stage": "audit", "severity": "warning",
             "title": "HTML entities such as &#039; in 71% of texts", "evidence": {"share": 0.71, "example": HOSTILE},
             "rows": None, "recommendation": "Unescape entities before training.", "config_patch": None},
        ],
        "stats": {"rows": 600, "classes": {"negative": 150, "neutral": 72, "positive": 378}, "mean_chars": 412.5},
    }  # fmt: skip


def write_fake_evaluation(run_dir: Path, rows: list[dict[str, Any]], train: list[dict[str, Any]]) -> None:
    """evaluation/<check>.json as the suite writes them: the real checks on a stand-in predictor for the
    pure ones (slices, calibration, baseline, robustness), written-out results for latency and explanations."""
    import numpy as np

    from tunesmith.config.schema import EvalConfig
    from tunesmith.evaluation.suite.context import Context, EvalSet
    from tunesmith.evaluation.suite.predictor import ModelHandle
    from tunesmith.outputs import write_json

    def stand_in(texts: list[str]) -> np.ndarray:  # deterministic "model": a function of the text
        rng = np.random.default_rng([sum(map(ord, t)) for t in texts] or [0])
        return rng.dirichlet([1.0] * len(LABELS), size=len(texts))

    def to_set(name: str, items: list[dict[str, Any]]) -> EvalSet:
        return EvalSet(name, [r["text"] for r in items], np.asarray([LABELS.index(r["label"]) for r in items]),
                       [r["row"] for r in items], {"condition": [str(r["group"]) for r in items]})  # fmt: skip

    (run_dir / "model").mkdir(exist_ok=True)
    ctx = Context(run_dir=run_dir, cfg=EvalConfig(min_slice_rows=10), handle=ModelHandle(stand_in, LABELS),
                  eval_set=to_set("test", rows), validation=to_set("validation", train), train=to_set("train", train),
                  group_column="condition")  # fmt: skip
    from tunesmith.evaluation.suite import baseline, calibration, robustness, slices

    for name, check in (
        ("slices", slices.check_slices),
        ("calibration", calibration.check_calibration),
        ("baseline", baseline.check_baseline),
        ("robustness", robustness.check_robustness),
    ):
        write_json(run_dir / "evaluation" / f"{name}.json", check(ctx)[0])
    variant = {"p50_ms": 12.0, "p95_ms": 15.0, "p99_ms": 18.0, "throughput": {"1": 80.0, "8": 210.0, "32": 260.0},
               "size_mb": 86.7, "macro_f1": 0.71, "agreement": 1.0}  # fmt: skip
    write_json(run_dir / "evaluation" / "latency.json", {
        "device": "cpu", "split": "test", "n": len(rows), "peak_memory_mb": 900.0,
        "variants": [{"name": "pytorch-fp32", **variant}, {"name": "onnx-int8", **variant, "p50_ms": 4.0, "macro_f1": 0.70}],
        "anchor": {"name": "transformers.pipeline", "p50_ms": 14.0, "p95_ms": 17.0, "p99_ms": 20.0},
    })  # fmt: skip
    write_json(run_dir / "evaluation" / "explanations.json", {
        "method": "LayerIntegratedGradients on the input embeddings", "baseline": "pad tokens", "steps": 20,
        "explained": 4, "max_convergence_delta": 0.01,
        "faithfulness": {"k": 3, "examples": 4, "top_k_drop": 0.3, "random_k_drop": 0.05, "faithful": True},
        "top_tokens": {"positive": [{"token": "great", "mean_attribution": 0.4, "count": 9, "artifact": None},
                                    {"token": "&", "mean_attribution": 0.3, "count": 5, "artifact": "markup or entity fragment"}],
                       "negative": [{"token": HOSTILE, "mean_attribution": 0.2, "count": 3, "artifact": None}]},
        "examples": [{"row": 3, "kind": "wrong", "label": "negative", "pred": "positive", "confidence": 0.93,
                      "tokens": ["never", "recognised", HOSTILE], "scores": [0.5, -0.2, 0.1]}],
    })  # fmt: skip


def write_fake_run(
    run_dir: Path, *, findings: bool = True, test: bool = True, seed: int = 0, evaluation: bool = False
) -> Path:
    """Write every file of a finished run under `run_dir` (and, with `evaluation`, the suite's) and return it."""
    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(RECIPE_YAML, encoding="utf-8")
    history = _history(rng)
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")
    predictions = {"validation": _predictions(rng, 90)}
    if test:
        predictions["test"] = _predictions(rng, 120)
    (run_dir / "predictions").mkdir(exist_ok=True)
    for split, rows in predictions.items():
        text = "".join(json.dumps(r) + "\n" for r in rows)
        (run_dir / "predictions" / f"{split}.jsonl").write_text(text, encoding="utf-8")
    metrics = {
        "labels": LABELS, "best_epoch": 3, "epochs_run": 3, "stop_reason": None, "precision": "bf16",
        "trainable_params": 22_714_371, "total_params": 22_714_371, "train_time_s": 37.2,
        "validation": _metrics(predictions["validation"]),
        "test": _metrics(predictions["test"]) if test else None,
    }  # fmt: skip
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    (run_dir / "audit.json").write_text(json.dumps(_audit(), indent=2), encoding="utf-8")
    if evaluation and test:
        write_fake_evaluation(run_dir, predictions["test"], predictions["validation"])
    if findings:
        from tunesmith.diagnosis import diagnose

        found = [f.to_dict() for f in diagnose(run_dir)]
        (run_dir / "findings.json").write_text(json.dumps(found, indent=2), encoding="utf-8")
    return run_dir
