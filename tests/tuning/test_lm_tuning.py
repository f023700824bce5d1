"""`tune` and `compare` on a causal-lm recipe (tiny Llama): perplexity is minimised end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from conftest import lm_text
from tunesmith.cli import app
from tunesmith.config.loader import load_recipe


@pytest.fixture()
def lm_recipe_file(tmp_path: Path, tiny_llama: Path) -> Path:
    rng = random.Random(0)
    for name, n in (("train", 16), ("test", 4)):
        rows = [{"text": lm_text(rng, 6, 12)} for _ in range(n)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe: dict[str, Any] = {
        "task": "causal-lm", "model": {"name": str(tiny_llama), "max_length": 24},
        "data": {"train": str(tmp_path / "train.jsonl"), "test": str(tmp_path / "test.jsonl")},
        "train": {"epochs": 1, "batch_size": 8, "lr": 5e-3, "precision": "fp32"},
        "eval": {"samples": 0}, "audit": {"gate": "off"}, "output": {"dir": str(tmp_path / "runs"), "name": "lm"},
        "search": {"train.lr": {"type": "categorical", "choices": [1e-6, 3e-2]}},
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_tune_minimises_validation_perplexity(lm_recipe_file: Path) -> None:
    result = CliRunner().invoke(app, ["tune", str(lm_recipe_file), "--trials", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    root = lm_recipe_file.parent / "runs" / "lm"
    study = optuna.load_study(study_name="lm", storage=f"sqlite:///{root / 'study.db'}")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 and study.best_value == min(t.value for t in done)
    best = load_recipe(root / "best.yaml")  # runnable as written, still a causal-lm recipe
    assert best.task == "causal-lm" and best.train.lr == study.best_params["train.lr"]


def test_compare_ranks_lower_perplexity_first(lm_recipe_file: Path) -> None:
    args = [
        "compare",
        str(lm_recipe_file),
        "-v",
        "train.lr=1e-6",
        "-v",
        "train.lr=3e-2",
        "--seeds",
        "1",
        "--quiet",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((lm_recipe_file.parent / "runs/lm/compare/compare.json").read_text())
    means = [row["mean"] for row in report["leaderboard"]]
    assert report["metric"] == "perplexity" and means == sorted(means)
    assert report["pairs"][0]["decided_by"] == "paired"  # no class predictions: compared across runs
