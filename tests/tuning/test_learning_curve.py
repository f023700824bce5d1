"""Is there enough data? The power-law fit, the bootstrap, the finding, and the command on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.tuning.learning_curve import (
    analyse,
    data_size_finding,
    doubling_gain,
    fit_power_law,
    nested_subsets,
    power_law,
)

runner = CliRunner()


def test_the_fit_recovers_known_parameters() -> None:
    sizes = [50, 100, 200, 400, 800]
    scores = power_law(sizes, 0.85, 2.0, 0.6)
    a, b, c = fit_power_law(sizes, scores)  # type: ignore[misc]
    assert (a, b, c) == pytest.approx((0.85, 2.0, 0.6), rel=1e-3)
    noisy = scores + np.random.default_rng(0).normal(0, 0.002, len(sizes))
    fitted = fit_power_law(sizes, noisy)
    assert doubling_gain(fitted, 800) == pytest.approx(doubling_gain((0.85, 2.0, 0.6), 800), abs=0.01)


def test_subsets_are_nested_and_stratified() -> None:
    labels = [0] * 80 + [1] * 16 + [2] * 4
    subsets = nested_subsets(labels, (0.125, 0.25, 0.5), seed=3)
    for small, large in zip(subsets, subsets[1:], strict=False):
        assert set(small) <= set(large)
    counts = np.bincount(np.asarray(labels)[subsets[1]], minlength=3)
    assert counts.tolist() == [20, 4, 1]  # a quarter of each class, at least one row


def _predictions(y: np.ndarray, accuracies: list[float], seed: int) -> list[list[int]]:
    """Per size, predictions right on a given share of rows (wrong ones shifted to the next class)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    out = []
    for acc in accuracies:
        wrong = order[int(acc * len(y)) :]
        p = y.copy()
        p[wrong] = (p[wrong] + 1) % 3
        out.append(p.tolist())
    return out


def test_a_rising_curve_predicts_a_gain_and_a_flat_one_says_it_has_flattened() -> None:
    y = np.repeat([0, 1, 2], 200)
    sizes = [100, 200, 400, 800]
    rising = analyse(sizes, y.tolist(), _predictions(y, [0.45, 0.58, 0.68, 0.76], 0), ["a", "b", "c"],
                     n_boot=30)  # fmt: skip
    assert rising["gain_doubling"] > 0.03 and rising["ci95"][0] < rising["gain_doubling"] < rising["ci95"][1]
    finding = data_size_finding(rising)
    assert finding.id == "evaluation.data_size" and finding.title.startswith("doubling the data would add")
    assert "classes that would gain most" in finding.recommendation
    flat = analyse(sizes, y.tolist(), _predictions(y, [0.70, 0.75, 0.76, 0.762], 1), ["a", "b", "c"],
                   n_boot=30)  # fmt: skip
    assert flat["gain_doubling"] < 0.01
    finding = data_size_finding(flat)
    assert "has flattened" in finding.title and "label noise" in finding.recommendation


def test_the_command_runs_the_subsets_and_writes_the_finding(
    tmp_path: Path, recipe_dict: dict[str, Any]
) -> None:
    recipe = recipe_dict | {"eval": {"suite": []}, "train": recipe_dict["train"] | {"epochs": 1},
                            "audit": {"gate": "off"}}  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = runner.invoke(app, ["learning-curve", str(path)])
    assert result.exit_code == 0, result.output
    run_dir = Path(recipe["output"]["dir"]) / "toy"
    summary = json.loads((run_dir / "learning_curve.json").read_text())
    assert summary["sizes"][-1] == json.loads((run_dir / "metrics.json").read_text())["data"]["train"]
    assert summary["sizes"] == sorted(summary["sizes"]) and len(summary["sizes"]) == 4
    for fraction in ("0.125", "0.25", "0.5"):
        assert (run_dir / "learning_curve" / f"frac-{fraction}" / "metrics.json").is_file()
    findings = [f["id"] for f in json.loads((run_dir / "findings.json").read_text())]
    assert "evaluation.data_size" in findings
    html = (run_dir / "report.html").read_text()
    assert "Is there enough data?" in html and "plot-data-size" in html


def test_learning_curve_with_cv_fails_cleanly(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict | {"eval": {"cv": 3, "learning_curve": True}}))
    result = runner.invoke(app, ["run", str(path)])
    assert (
        result.exit_code == 2 and "eval.learning_curve" in result.output and "Traceback" not in result.output
    )
    assert not (tmp_path / "runs").exists()
