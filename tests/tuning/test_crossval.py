"""`eval.cv: K`: stratified folds over train + validation, one real run per fold, mean ± std."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from kill_resume import complete_steps, finish, kill_when, run_cli, strip_timing, write_recipes
from tunesmith.cli import app
from tunesmith.tuning.crossval import fold_indices


def test_folds_are_stratified_disjoint_and_complete() -> None:
    labels = [0] * 30 + [1] * 12 + [2] * 6
    folds, stratified = fold_indices(labels, 3, seed=7)
    assert stratified
    joined = np.concatenate(folds)
    assert sorted(joined.tolist()) == list(range(len(labels)))
    for held in folds:
        assert Counter(labels[i] for i in held) == {0: 10, 1: 4, 2: 2}
    again, _ = fold_indices(labels, 3, seed=7)  # seeded: every variant of a comparison gets the same folds
    assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))
    _, fallback = fold_indices([0] * 10 + [1], 3, seed=0)
    assert not fallback  # a class smaller than K: plain K-fold


def test_cv_run_reports_mean_and_std(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"]["epochs"] = 1
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    result = CliRunner().invoke(app, ["run", str(path), "eval.cv=3", "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "toy"
    cv = json.loads((run_dir / "cv.json").read_text())
    assert cv["k"] == 3 and cv["stratified"] and cv["rows"] == 160
    assert sorted(i for fold in cv["fold_indices"] for i in fold) == list(range(160))
    summary = cv["summary"]["validation_macro_f1"]
    assert len(summary["values"]) == 3
    assert summary["mean"] == pytest.approx(np.mean(summary["values"]))
    assert summary["std"] == pytest.approx(np.std(summary["values"], ddof=1))
    assert len(cv["summary"]["test_accuracy"]["values"]) == 3  # the test file is scored by every fold
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["cv"]["summary"]["validation_macro_f1"]["mean"] == summary["mean"]
    for fold in range(3):
        fold_dir = run_dir / "folds" / f"fold-{fold}"
        fold_metrics = json.loads((fold_dir / "metrics.json").read_text())
        assert fold_metrics["validation"]["macro_f1"] == summary["values"][fold]
        # a finished fold keeps its model, not its checkpoints (reused from metrics.json, never resumed)
        assert (fold_dir / "model").is_dir() and not (fold_dir / "checkpoints").exists()
        held_out = run_dir / "folds" / "data" / f"fold-{fold}-validation.jsonl"
        assert len(held_out.read_text().splitlines()) == len(cv["fold_indices"][fold])
    assert "outputs:" in result.output


def test_killed_cv_run_resumes_to_the_same_result(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    """SIGKILL inside fold 1 (fold 0 finished): --resume reuses fold 0, continues fold 1 from its checkpoint
    and runs fold 2; weights, cv.json and metrics.json equal an uninterrupted run's."""
    recipe_dict["train"].update(epochs=2, checkpoint_every=2, keep_checkpoints=3)
    recipe_dict["eval"]["cv"] = 3
    paths = write_recipes(tmp_path, recipe_dict, ("reference", "killed"))
    ref_dir, run_dir = tmp_path / "runs" / "reference", tmp_path / "runs" / "killed"
    finish(run_cli(paths["reference"]))
    proc = run_cli(paths["killed"])
    kill_when(proc, lambda: 2 in complete_steps(run_dir / "folds" / "fold-1"))
    assert (run_dir / "folds" / "fold-0" / "metrics.json").is_file()
    assert not (run_dir / "folds" / "fold-1" / "metrics.json").exists()
    first_fold = (run_dir / "folds" / "fold-0" / "metrics.json").stat().st_mtime
    first_step = (run_dir / "folds" / "fold-1" / "history.jsonl").read_text().splitlines()[1]
    assert '"time_s"' in first_step
    finish(run_cli(paths["killed"], "--resume"))
    assert (run_dir / "folds" / "fold-0" / "metrics.json").stat().st_mtime == first_fold  # reused
    # continued, not restarted: fold 1's first step record, wall-clock time included, is the one it wrote
    assert (run_dir / "folds" / "fold-1" / "history.jsonl").read_text().splitlines()[1] == first_step
    for fold in range(3):
        ref = load_file(str(ref_dir / "folds" / f"fold-{fold}" / "model" / "model.safetensors"))
        got = load_file(str(run_dir / "folds" / f"fold-{fold}" / "model" / "model.safetensors"))
        assert ref.keys() == got.keys() and all(ref[k].equal(got[k]) for k in ref), f"fold {fold} differs"
    for name in ("cv.json", "metrics.json"):
        ref_json, got_json = (json.loads((d / name).read_text()) for d in (ref_dir, run_dir))
        assert _without_run_dirs(strip_timing(got_json)) == _without_run_dirs(strip_timing(ref_json))


def _without_run_dirs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_run_dirs(v) for k, v in value.items() if k != "run_dir"}
    if isinstance(value, list):
        return [_without_run_dirs(v) for v in value]
    return value
