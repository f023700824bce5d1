"""The suite as a stage of `tunesmith run`: summary in metrics.json, a bad slice column never loses the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tunesmith.config.loader import recipe_from_dict
from tunesmith.run import run


def test_a_run_evaluates_and_an_unknown_slice_column_is_a_finding(recipe_dict: dict[str, Any]) -> None:
    recipe_dict["eval"] = {"suite": ["slices", "calibration"], "slices": ["condition", "conditon"]}
    result = run(recipe_from_dict(recipe_dict, "test"), quiet=True)
    unknown = [f for f in result.findings if f.id == "evaluation.unknown_slice"]
    assert len(unknown) == 1 and "conditon" in unknown[0].title
    slices = json.loads((result.run_dir / "evaluation" / "slices.json").read_text())
    assert set(slices["columns"]) == {"condition", "text length"}
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert set(metrics["evaluation"]["checks"]) == {"slices", "calibration"}
    assert (result.run_dir / "model" / "calibration.json").is_file()


def test_the_suite_reuses_the_final_evaluation_and_agrees_with_predicting_again(
    recipe_dict: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunesmith.evaluation.suite import predictor
    from tunesmith.evaluation.suite.command import evaluate_run

    predicted: list[str] = []
    original = predictor.text_predictor

    def counting(*args: Any, **kwargs: Any) -> Any:
        predict = original(*args, **kwargs)
        return lambda texts: (predicted.extend(texts), predict(texts))[1]

    monkeypatch.setattr(predictor, "text_predictor", counting)
    recipe_dict["eval"] = {"suite": ["slices", "calibration"]}
    recipe_dict["train"]["precision"] = "fp32"
    result = run(recipe_from_dict(recipe_dict, "test"), quiet=True)
    assert predicted == []  # test and validation probabilities came from the run's final evaluation
    evaluate_run(result.run_dir, out=tmp_path / "again")  # predicts both sets afresh
    assert predicted
    for name in ("slices", "calibration"):
        during = json.loads((result.run_dir / "evaluation" / f"{name}.json").read_text())
        again = json.loads((tmp_path / "again" / f"{name}.json").read_text())
        for key in ("seconds", "saved"):  # timing, and where the temperature was written
            during.pop(key, None), again.pop(key, None)
        assert json.dumps(during, sort_keys=True) == json.dumps(again, sort_keys=True)
