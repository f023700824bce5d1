"""Heavily imbalanced data without class weights: the model predicts the majority class, the diagnosis says
so and recommends weighting the classes; applying that recommendation gets the minority classes back."""

from __future__ import annotations

from pathlib import Path

from watch_runs import findings, recipe, run_recipe

from conftest import toy_rows
from tunesmith.config.loader import apply_overrides
from tunesmith.report.html import patch_overrides


def test_imbalanced_data_collapses_and_the_fix_applies(tmp_path: Path, tiny_model: Path) -> None:
    config = recipe(
        tmp_path, tiny_model, toy_rows(200, seed=5, neutral_share=0.85), name="collapse",
        validation_rows=toy_rows(100, seed=6, neutral_share=0.85), epochs=6, lr=3e-3,
        early_stopping={"patience": None},
    )  # fmt: skip
    result = run_recipe(config)
    found = findings(result.run_dir)

    collapsed = found["training.collapsed_predictions"]
    assert collapsed.severity == "error"
    assert collapsed.evidence["predicted_class"] == "neutral"
    assert collapsed.evidence["predicted_share"] >= 0.9 > collapsed.evidence["true_share"]
    assert collapsed.config_patch is not None and collapsed.config_patch["train.class_weights"] is True
    assert "train.class_weights: true" in collapsed.recommendation
    assert "audit.class_imbalance" in found  # the data audit saw it coming
    assert collapsed.evidence["audit"] == ["audit.class_imbalance"]
    zero = found["training.zero_recall"]
    assert set(zero.evidence["classes"]) == {"negative", "positive"}

    # The recommendation, applied as the report prints it (command-line overrides), to the same recipe.
    overrides = patch_overrides(collapsed.config_patch).split()
    fixed = apply_overrides(config, overrides)
    fixed["output"]["name"] = "collapse-fixed"
    assert fixed["train"]["class_weights"] is True
    after = run_recipe(fixed)
    assert "training.collapsed_predictions" not in findings(after.run_dir)
    assert after.metrics["validation"]["macro_f1"] > result.metrics["validation"]["macro_f1"]
