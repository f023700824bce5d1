"""`tunesmith improve`: a planted too-low learning rate is fixed by the lr finding's patch (accepted only
because it is significantly better), the budget of trainings holds, and a rerun after a crash reuses
the finished runs and reaches the same decisions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from tunesmith.cli import app


def _recipe(tmp_path: Path, recipe_dict: dict[str, Any]) -> Path:
    # 3.3e-3 is far too low for the tiny random BERT in 3 epochs: it predicts one class. The collapsed-
    # predictions / flat-loss findings propose train.lr 3x higher, where it learns the toy keywords.
    recipe_dict["train"].update(epochs=3, batch_size=8, lr=3.3e-3)
    recipe_dict["data"]["validation_split"] = 0.3
    recipe_dict["eval"]["suite"] = []
    recipe_dict["audit"]["gate"] = "off"  # its findings' patches are tried too; here only training's matter
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    return path


def _unit_dirs(root: Path) -> dict[str, float]:
    return {
        str(p.parent.relative_to(root)): p.stat().st_mtime for p in root.glob("runs/*/seed-*/metrics.json")
    }


def test_improve_accepts_the_lr_patch_within_budget_and_reuses_runs(
    tmp_path: Path, recipe_dict: dict[str, Any]
) -> None:
    path = _recipe(tmp_path, recipe_dict)
    args = ["improve", str(path), "--seeds", "1", "--budget", "2", "--rounds", "2", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    root = tmp_path / "runs" / "toy" / "improve"
    report = json.loads((root / "improve.json").read_text())
    assert len(report["chain"]) == 1
    accepted = report["chain"][0]
    assert set(accepted["patch"]) == {"train.lr"} and accepted["patch"]["train.lr"] > 3.3e-3
    assert {f["id"] for f in accepted["findings"]} & {"training.collapsed_predictions", "training.flat_loss"}
    assert accepted["gain"] > 0.1 and accepted["ci"][0] > 0 and accepted["p_holm"] < 0.05
    assert report["best"]["score"] > report["start"]["score"] + 0.1
    # the budget: the baseline and one variant, then no room for round 2
    assert report["trainings"] == 2 and len(_unit_dirs(root)) == 2
    for unit in root.glob("runs/*/seed-*"):  # finished units keep their model, not their checkpoints
        assert (unit / "model").is_dir() and not (unit / "checkpoints").exists()
    assert "budget" in report["stop_reason"] and len(report["rounds"]) == 1
    best = yaml.safe_load((root / "best.yaml").read_text())
    assert best["train"]["lr"] == accepted["patch"]["train.lr"]
    html = (root / "improve.html").read_text()
    assert "Accepted changes" in html and "training.collapsed_predictions" in html

    # A crash: the variant never finished and the outputs were not written. The rerun trains only it.
    before = _unit_dirs(root)
    shutil.rmtree(root / "runs" / accepted["key"])
    for name in ("improve.json", "improve.html", "best.yaml"):
        (root / name).unlink()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    again = json.loads((root / "improve.json").read_text())
    after = _unit_dirs(root)
    baseline = f"runs/{report['start']['key']}/seed-42"
    assert after[baseline] == before[baseline]  # reused, not retrained
    assert after[f"runs/{accepted['key']}/seed-42"] > before[baseline]
    assert again["chain"][0]["patch"] == accepted["patch"] and again["trainings"] == 2
    assert again["best"]["score"] == report["best"]["score"]


def test_improve_bad_input_is_one_line_exit_2(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    path = _recipe(tmp_path, recipe_dict)
    result = CliRunner().invoke(app, ["improve", str(path), "--seeds", "2", "--budget", "3"])
    assert result.exit_code == 2 and "--budget" in result.output and "Traceback" not in result.output
    # the audit gate stops the baseline: the test file repeats the training rows (leakage is an error)
    recipe_dict["data"]["test"] = recipe_dict["data"]["train"]
    recipe_dict["audit"]["gate"] = "error"
    path.write_text(yaml.safe_dump(recipe_dict))
    result = CliRunner().invoke(app, ["improve", str(path), "--seeds", "1", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "audit" in result.output.lower()
    assert not (tmp_path / "runs").exists()
