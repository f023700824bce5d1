"""`eval.cv: K`: stratified folds over train + validation, one real run per fold, mean ± std."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

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
        held_out = run_dir / "folds" / "data" / f"fold-{fold}-validation.jsonl"
        assert len(held_out.read_text().splitlines()) == len(cv["fold_indices"][fold])
    assert "outputs:" in result.output
