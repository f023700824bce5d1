"""`tunesmith compare`: several variants of a recipe on identical splits and seeds, with statistics.

Every variant runs once per seed (train.seed = the recipe's seed, +1, +2, ...; data.seed and so the
validation split and the folds are shared), optionally cross-validated (--cv K). Each run is a real
tunesmith run in runs/<name>/compare/v<i>/seed-<s>/. Scores are taken on the test split when the recipe
has one, else on the validation split (with --cv: on each held-out fold). A run whose directory already
holds a finished run of the same recipe is reused, so an interrupted comparison continues.

Outputs: runs/<name>/compare/compare.json and compare.html; the command prints the leaderboard.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tunesmith.config.loader import load_recipe, recipe_to_yaml
from tunesmith.config.schema import Recipe
from tunesmith.errors import UserError
from tunesmith.outputs import resolve_run_dir, write_json
from tunesmith.tasks.registry import make_task
from tunesmith.training.checkpoint import discard_checkpoints
from tunesmith.tuning.compare_stats import UnitRun, VariantRuns, analyse

log = logging.getLogger(__name__)


@dataclass
class Variant:
    label: str
    overrides: list[str]
    recipe: Recipe


def parse_variants(recipe_path: Path, base_overrides: list[str], specs: list[str]) -> list[Variant]:
    """Each --variant is one or more space-separated overrides; every variant is validated up front."""
    if len(specs) < 2:
        raise UserError(
            "--variant: give at least two, e.g. --variant strategy.name=frozen --variant strategy.name=full"
        )
    variants: list[Variant] = []
    seen: dict[str, int] = {}
    for spec in specs:
        overrides = spec.split()
        if not overrides:
            raise UserError(
                "--variant: empty; write key=value overrides, e.g. --variant 'strategy.name=lora'"
            )
        label = " ".join(overrides)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} #{seen[label]}"
        recipe = load_recipe(recipe_path, [*base_overrides, *overrides])
        make_task(recipe).check_model()  # a variant the model cannot take fails before any variant trains
        variants.append(Variant(label, overrides, recipe))
    return variants


def unit_recipe(variant: Recipe, seed: int, cv: int | None, root: Path, index: int) -> Recipe:
    data = variant.model_dump(mode="json")
    data["train"]["seed"] = seed
    if cv is not None:
        data["eval"]["cv"] = cv
    data["output"] = {"dir": str(root / f"v{index}"), "name": f"seed-{seed}"}
    data["search"] = {}
    from tunesmith.config.loader import recipe_from_dict

    return recipe_from_dict(data, f"compare variant {index}")


def _isolated(recipe: Recipe) -> None:
    from tunesmith.run import run

    logging.basicConfig(level=logging.WARNING)
    run(recipe, overwrite=True, quiet=True)


def run_unit(recipe: Recipe, *, quiet: bool, isolate: bool) -> Path:
    """Run (or reuse) one unit; isolate=True runs it in a fresh process so its peak memory is its own."""
    from tunesmith.run import run

    run_dir = resolve_run_dir(recipe.output)
    config = run_dir / "config.yaml"
    if (run_dir / "metrics.json").is_file() and config.is_file() and _same_recipe(config, recipe):
        log.info("compare: reusing %s", run_dir)
        return run_dir
    if isolate:
        process = multiprocessing.get_context("spawn").Process(target=_isolated, args=(recipe,))
        process.start()
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(
                f"the run in {run_dir} failed in its own process (exit code {process.exitcode})"
            )
    else:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        run(recipe, overwrite=True, quiet=quiet)
    discard_checkpoints(run_dir)  # a finished unit is reused from metrics.json, never resumed
    return run_dir


def _same_recipe(config: Path, recipe: Recipe) -> bool:
    import yaml

    saved = yaml.safe_load(config.read_text(encoding="utf-8"))
    current = yaml.safe_load(recipe_to_yaml(recipe))
    if current["train"]["lr"] == "auto":  # the run recorded the learning rate its range test picked
        saved["train"]["lr"] = "auto"
    return bool(saved == current)


def _read_predictions(path: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ids = {name: i for i, name in enumerate(labels)}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return (np.array([ids[r["label"]] for r in rows], dtype=np.int64),
            np.array([ids[r["pred"]] for r in rows], dtype=np.int64))  # fmt: skip


def _peak_memory(run_dir: Path) -> float | None:
    path = run_dir / "history.jsonl"
    if not path.is_file():
        return None
    values = [
        json.loads(line).get("peak_memory_mb") for line in path.read_text().splitlines() if line.strip()
    ]
    finite = [float(v) for v in values if isinstance(v, int | float)]
    return max(finite) if finite else None


def collect(run_dir: Path, seed: int, metric: str, split: str) -> tuple[list[UnitRun], dict[str, Any]]:
    """The scored runs of one unit: the run itself, or each fold of a cross-validated run."""
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    labels = list(metrics["labels"])
    if metrics.get("cv"):
        cv = json.loads((run_dir / "cv.json").read_text(encoding="utf-8"))
        dirs = [(f"seed {seed} fold {f['fold']}", Path(f["run_dir"])) for f in cv["folds"]]
    else:
        dirs = [(f"seed {seed}", run_dir)]
    runs = []
    for key, directory in dirs:
        m = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
        if labels:
            y_true, y_pred = _read_predictions(directory / "predictions" / f"{split}.jsonl", labels)
        else:  # a language model: no class predictions; runs are compared on their scores across seeds
            y_true = y_pred = np.zeros(0, dtype=np.int64)
        runs.append(UnitRun(key, float(m[split][metric]), y_true, y_pred, float(m.get("train_time_s") or 0.0),
                            _peak_memory(directory)))  # fmt: skip
    return runs, metrics


def compare(
    variants: list[Variant], *, seeds: int = 3, cv: int | None = None, quiet: bool = False,
    isolate: bool = False, method: Literal["t", "wilcoxon"] = "t", alpha: float = 0.05,
) -> dict[str, Any]:  # fmt: skip
    """Run every variant on every seed (and fold), then the statistics; write compare.json / .html."""
    from tunesmith.tuning.compare_page import render_compare_page

    if seeds < 1:
        raise UserError(f"--seeds: must be at least 1; got {seeds}")
    if cv is not None and not 2 <= cv <= 20:
        raise UserError(f"--cv: must be between 2 and 20; got {cv}")
    base = variants[0].recipe
    root = resolve_run_dir(base.output) / "compare"
    metric = base.eval.metric
    split = "test" if base.data.test else "validation"
    seed_list = [base.train.seed + i for i in range(seeds)]
    units = [
        (i, v, s, unit_recipe(v.recipe, s, cv, root, i)) for i, v in enumerate(variants) for s in seed_list
    ]
    results: list[VariantRuns] = [VariantRuns(v.label, []) for v in variants]
    num_classes = 0
    for n, (i, variant, seed, recipe) in enumerate(units, start=1):
        log.info("compare: run %d of %d: %s, seed %d", n, len(units), variant.label, seed)
        run_dir = run_unit(recipe, quiet=quiet, isolate=isolate)
        runs, metrics = collect(run_dir, seed, metric, split)
        results[i].runs += runs
        results[i].trainable_params = metrics.get("trainable_params")
        results[i].total_params = metrics.get("total_params")
        num_classes = len(metrics["labels"])
    analysis = analyse(results, metric, num_classes, method=method, alpha=alpha)
    memory = (
        "peak per run (each in its own process)"
        if isolate
        else "CUDA peak per run"
        if torch.cuda.is_available()
        else "peak RSS of this process so far (runs share the process; use --isolate for per-variant peaks)"
    )
    # fmt: skip
    report = {
        "recipe_name": base.output.name, "metric": metric, "split": split, "seeds": seed_list, "cv": cv,
        "variants": [{"label": v.label, "overrides": v.overrides, "index": i} for i, v in enumerate(variants)],
        "memory_note": memory, "runs_dir": str(root), **analysis,
    }  # fmt: skip
    write_json(root / "compare.json", report)
    render_compare_page(root / "compare.html", report)
    return report
