"""The embedded default on the real packaged MiniLM (marked slow: `make test-slow`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from tunesmith.config.loader import apply_overrides, recipe_from_dict
from tunesmith.demo import DEMO_RECIPE
from tunesmith.models.loader import load_classifier
from tunesmith.run import run

pytestmark = pytest.mark.slow


def test_minilm_loads_from_site_packages_with_a_fresh_labelled_head() -> None:
    model, tokenizer, model_dir = load_classifier("minilm", ["negative", "neutral", "positive"], seed=0)
    assert "site-packages" in str(model_dir) and (model_dir / "model.safetensors").is_file()
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    logits = model(**tokenizer(["works well"], return_tensors="pt")).logits
    assert logits.shape == (1, 3) and torch.isfinite(logits).all()


def test_demo_recipe_trains_and_the_output_loads_with_plain_transformers(tmp_path: Path) -> None:
    # One epoch at the default lr predicts the majority class only (macro-F1 0.264, what the diagnosis
    # flags); the change that diagnosis recommends (class weights, lr 1.5e-4) learns within two.
    overrides = ["train.epochs=2", "model.max_length=64", "audit.label_errors=false", "train.class_weights=true",
                 "train.lr=1.5e-4", f"output.dir={tmp_path}", "train.precision=fp32"]  # fmt: skip
    result = run(recipe_from_dict(apply_overrides(DEMO_RECIPE, overrides)), quiet=True)
    m = result.metrics
    assert m["data"]["train"] + m["data"]["validation"] == 600 and m["data"]["test"] == 379
    assert isinstance(m["data"]["validation"], int) and m["data"]["validation_note"].startswith(
        "a stratified"
    )
    # A collapsed model (the majority class, 65% of the test split) scores macro-F1 0.26: demand real learning.
    print("slow demo metrics:", m["test"]["macro_f1"], m["test"]["accuracy"])
    assert (
        m["test"]["macro_f1"] > 0.30
    )  # 0.338 measured (accuracy 0.496: class weights trade accuracy for recall)
    predicted = [json.loads(line)["pred"] for line in (result.run_dir / "predictions/test.jsonl").open()]
    assert len(set(predicted)) >= 2 and max(map(predicted.count, set(predicted))) < 0.9 * len(predicted)
    model = AutoModelForSequenceClassification.from_pretrained(result.run_dir / "model")
    assert set(model.config.label2id) == {"negative", "neutral", "positive"}
    assert (result.run_dir / "report.html").is_file() and (result.run_dir / "audit.json").is_file()
