"""`eval.cv: K`: stratified K-fold cross-validation, each fold a real tunesmith run, metrics as mean ± std.

Train and validation (a file, or the held-out part of train) are merged and cut into K stratified folds
(seeded by data.seed, so every variant and seed of a comparison sees the same folds). Fold k trains on
the other K-1 folds and validates on fold k, which also picks its best epoch; the test file, when there
is one, is scored by every fold. Note that choosing the best epoch on the held-out fold makes the fold
scores slightly optimistic; the test scores are not.

Layout: RUN_DIR/cv.json and metrics.json (mean, std and per-fold values), RUN_DIR/folds/data/ (the fold
files), RUN_DIR/folds/fold-<k>/ (one run each, with its own report).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from tunesmith.config.loader import recipe_from_dict, recipe_to_yaml
from tunesmith.config.schema import Recipe
from tunesmith.data.prepare import prepare_data
from tunesmith.data.types import DataBundle
from tunesmith.outputs import check_run_dir, holds_run, resolve_run_dir, write_json
from tunesmith.training.callbacks.base import Callback
from tunesmith.training.checkpoint import discard_checkpoints
from tunesmith.tuning.stats import mean_std

log = logging.getLogger(__name__)
CV_FILE = "cv.json"
METRICS = ("accuracy", "macro_f1", "weighted_f1", "loss")


def fold_indices(labels: list[int], k: int, seed: int) -> tuple[list[np.ndarray], bool]:
    """Held-out positions of each fold; stratified unless a class has fewer than k examples."""
    positions = np.arange(len(labels))
    counts = np.bincount(np.asarray(labels))
    stratified = bool(counts[counts > 0].min() >= k)
    splitter = (StratifiedKFold if stratified else KFold)(n_splits=k, shuffle=True, random_state=seed % 2**32)
    return [np.sort(held) for _, held in splitter.split(positions, labels)], stratified


def _write_rows(
    path: Path, recipe: Recipe, bundle: DataBundle, pool: dict[str, Any], indices: np.ndarray
) -> None:
    """JSON lines under the recipe's own column names, so its test file is read the same way."""
    cfg = recipe.data
    lines = []
    for i in indices:
        row = {cfg.text: pool["texts"][i], cfg.label: bundle.labels[pool["labels"][i]]}
        if cfg.group is not None and pool["groups"] is not None:
            row[cfg.group] = pool["groups"][i]
        lines.append(json.dumps(row, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def fold_recipes(recipe: Recipe, run_dir: Path) -> tuple[list[Recipe], dict[str, Any]]:
    """Write the fold files and return one recipe per fold, plus how the folds were made."""
    k = int(recipe.eval.cv or 0)
    _, bundle = prepare_data(recipe.data)
    parts = (bundle.train, bundle.validation)
    pool: dict[str, Any] = {
        "texts": [t for s in parts for t in s.texts],
        "labels": [y for s in parts for y in s.labels],
        "groups": None
        if any(s.groups is None for s in parts)
        else [g for s in parts for g in s.groups or []],
    }
    # fmt: skip
    folds, stratified = fold_indices(pool["labels"], k, recipe.data.seed)
    data_dir = run_dir / "folds" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    base = recipe.model_dump(mode="json")
    recipes = []
    for i, held in enumerate(folds):
        train_idx = np.setdiff1d(np.arange(len(pool["labels"])), held)
        train_path, val_path = data_dir / f"fold-{i}-train.jsonl", data_dir / f"fold-{i}-validation.jsonl"
        _write_rows(train_path, recipe, bundle, pool, train_idx)
        _write_rows(val_path, recipe, bundle, pool, held)
        data = {**base["data"], "train": str(train_path), "validation": str(val_path)}
        fold = {**base, "data": data, "eval": {**base["eval"], "cv": None},
                "output": {"dir": str(run_dir / "folds"), "name": f"fold-{i}"}}  # fmt: skip
        recipes.append(recipe_from_dict(fold, f"cross-validation fold {i}"))
    info = {"k": k, "stratified": stratified, "seed": recipe.data.seed, "rows": len(pool["labels"]),
            "validation_source": bundle.notes.get("validation_source"),
            "fold_indices": [held.tolist() for held in folds]}  # fmt: skip
    return recipes, info


def summarise(folds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """mean, std (sample) and per-fold values of every split metric, keyed like validation_macro_f1."""
    out: dict[str, dict[str, Any]] = {}
    for split in ("validation", "test"):
        for metric in METRICS:
            values = [
                float(f[split][metric]) for f in folds if f.get(split) and f[split].get(metric) is not None
            ]
            if values:
                mean, std = mean_std(values)
                out[f"{split}_{metric}"] = {"mean": mean, "std": std, "values": values}
    return out


def run_cv(
    recipe: Recipe,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    extra_callbacks: list[Callback] | None = None,
) -> Any:
    """K fold runs, then cv.json and metrics.json with mean ± std; returns a RunResult for the whole."""
    from tunesmith.run import RunResult, run

    run_dir = resolve_run_dir(recipe.output)
    check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    recipes, info = fold_recipes(recipe, run_dir)
    (run_dir / "config.yaml").write_text(recipe_to_yaml(recipe))
    folds: list[dict[str, Any]] = []
    for i, fold_recipe in enumerate(recipes):
        fold_dir = resolve_run_dir(fold_recipe.output)
        metrics_path = fold_dir / "metrics.json"
        if resume and metrics_path.is_file():  # finished before the interruption
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        else:
            log.info("cross-validation: fold %d of %d", i + 1, len(recipes))
            again = resume and holds_run(fold_dir)
            metrics = run(fold_recipe, resume=again, overwrite=not again, quiet=quiet,
                          extra_callbacks=extra_callbacks).metrics  # fmt: skip
        discard_checkpoints(fold_dir)  # a finished fold is reused from metrics.json, never resumed
        folds.append({"fold": i, "run_dir": str(fold_dir), **metrics})
    summary = summarise(folds)
    cv = {**info, "summary": summary,
          "folds": [{k: f.get(k) for k in ("fold", "run_dir", "best_epoch", "train_time_s", "validation", "test")}
                    for f in folds]}  # fmt: skip
    write_json(run_dir / CV_FILE, cv)
    first = folds[0]
    means = {split: {m: summary[f"{split}_{m}"]["mean"] for m in METRICS if f"{split}_{m}" in summary}
             for split in ("validation", "test")}  # fmt: skip
    metrics = {
        "labels": first.get("labels"), "best_epoch": [f.get("best_epoch") for f in folds],
        "epochs_run": [f.get("epochs_run") for f in folds], "stop_reason": None,
        "trainable_params": first.get("trainable_params"), "total_params": first.get("total_params"),
        "trainable_pct": first.get("trainable_pct"), "precision": first.get("precision"),
        "train_time_s": sum(float(f.get("train_time_s") or 0.0) for f in folds),
        "validation": means["validation"] or None, "test": means["test"] or None,
        "cv": {"k": info["k"], "stratified": info["stratified"], "summary": summary},
    }  # fmt: skip
    write_json(run_dir / "metrics.json", metrics)
    metric = recipe.eval.metric
    for split in ("validation", "test"):
        if f"{split}_{metric}" in summary:
            s = summary[f"{split}_{metric}"]
            log.info(
                "cross-validation (%d folds): %s %s %.4f ± %.4f",
                info["k"],
                split,
                metric,
                s["mean"],
                s["std"],
            )
    return RunResult(run_dir=run_dir, metrics=metrics, outcome=None, findings=[])
