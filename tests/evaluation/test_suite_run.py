"""The suite as a stage of `tunesmith run`: summary in metrics.json, a bad slice column never loses the run."""

from __future__ import annotations

import json
from typing import Any

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
