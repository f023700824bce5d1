"""`tunesmith compare` and its statistics: a planted clearly-worse variant is flagged as significantly
worse, two identical variants are not, and the recommendation weighs significance against cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.tuning.compare_stats import UnitRun, VariantRuns, analyse
from tunesmith.tuning.stats import holm, mcnemar, paired_test


def _variant(label: str, accuracy: float, params: int, seconds: float, seed: int) -> VariantRuns:
    rng = np.random.default_rng(seed)
    y = np.random.default_rng(0).integers(0, 3, 200)  # the same test set for every variant
    runs = []
    for s in range(3):
        right = rng.random(200) < accuracy
        pred = np.where(right, y, (y + 1 + rng.integers(0, 2, 200)) % 3)
        runs.append(UnitRun(f"seed {s}", float(np.mean(pred == y)), y, pred, seconds, None))
    return VariantRuns(label, runs, trainable_params=params)


def test_statistics_flag_the_worse_and_recommend_the_cheaper_tie() -> None:
    full = _variant("full", 0.85, 1000, 40.0, seed=1)
    lora = _variant("lora", 0.85, 10, 10.0, seed=2)  # as good as full, far cheaper
    broken = _variant("broken", 0.35, 1000, 40.0, seed=3)
    result = analyse([full, lora, broken], "accuracy", 3)
    pairs = {frozenset((p["a"], p["b"])): p for p in result["pairs"]}
    assert pairs[frozenset(("full", "broken"))]["significant"]
    assert pairs[frozenset(("lora", "broken"))]["better"] == "lora"
    assert not pairs[frozenset(("full", "lora"))]["significant"]
    assert result["leaderboard"][-1]["variant"] == "broken"
    for row in result["leaderboard"]:
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert result["recommendation"]["variant"] == "lora"
    assert "not significantly better" in result["recommendation"]["text"]
    assert "4.0x the training time" in result["recommendation"]["text"]


def test_tests_edge_cases() -> None:
    same = np.array([True, False, True, True])
    assert mcnemar(same, same).p_value == 1.0
    assert paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]).p_value == 1.0
    assert paired_test([0.9, 0.9, 0.9], [0.5, 0.5, 0.5]).test == "sign"  # zero variance: no t
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_compare_command_flags_planted_worse_not_identical(
    tmp_path: Path, recipe_dict: dict[str, Any]
) -> None:
    recipe_dict["train"].update(epochs=2, batch_size=8, lr=1e-2)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    args = ["compare", str(path), "--variant", "train.lr=1e-2", "--variant", "train.lr=1e-9",
            "--variant", "train.lr=1e-2", "--seeds", "2", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    root = tmp_path / "runs" / "toy" / "compare"
    report = json.loads((root / "compare.json").read_text())
    pairs = {(p["a"], p["b"]): p for p in report["pairs"]}
    planted = pairs[("train.lr=1e-2", "train.lr=1e-9")]
    assert planted["significant"] and planted["better"] == "train.lr=1e-2", planted
    identical = pairs[("train.lr=1e-2", "train.lr=1e-2 #2")]
    assert not identical["significant"] and identical["p_holm"] == 1.0
    assert {p["decided_by"] for p in report["pairs"]} == {"bootstrap"}
    assert all("p_holm" in p["mcnemar"] and "p_holm" in p["paired"] for p in report["pairs"])
    # identical splits and seeds: the same test rows, and each variant ran both seeds
    assert report["seeds"] == [42, 43] and all(r["runs"] == 2 for r in report["leaderboard"])
    assert all(r["trainable_params"] and r["train_time_s"] > 0 for r in report["leaderboard"])
    assert report["leaderboard"][-1]["variant"] == "train.lr=1e-9"
    # the recommendation names a good variant, never the planted bad one
    assert "Recommended: train.lr=1e-2" in result.output and "Recommended: train.lr=1e-9" not in result.output
    page = (root / "compare.html").read_text()
    assert 'id="leaderboard"' in page and "Plotly" in page
    for row in report["leaderboard"]:  # the page shows this comparison's own rows, not a template
        assert row["variant"] in page, row
    # a second invocation reuses the finished runs (an interrupted comparison continues)
    stamp = (root / "v0" / "seed-42" / "metrics.json").stat().st_mtime_ns
    again = CliRunner().invoke(app, [*args[:4], "--variant", "train.lr=1e-9", "--seeds", "1", "--quiet"])
    assert again.exit_code == 0, again.output
    assert (root / "v0" / "seed-42" / "metrics.json").stat().st_mtime_ns == stamp


def test_compare_needs_two_variants(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    result = CliRunner().invoke(app, ["compare", str(path), "--variant", "train.lr=1e-3"])
    assert result.exit_code == 2 and "at least two" in result.output
    result = CliRunner().invoke(app, ["compare", str(path), "-v", "train.lr=1e-3", "-v", "train.lrr=1"])
    assert result.exit_code == 2 and "train.lrr" in result.output and "Traceback" not in result.output
