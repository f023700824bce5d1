"""setfit and zero-shot on a tiny sentence encoder (random BERT + sentence-transformers mean-pooling files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.predict import predict
from tunesmith.run import run
from tunesmith.strategies.setfit import make_pairs
from tunesmith.testing import make_sentence_encoder_files

runner = CliRunner()


@pytest.fixture(scope="module")
def encoder(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-encoder") / "m"
    shutil.copytree(tiny_model, out)
    return make_sentence_encoder_files(out)


def _recipe(base: dict[str, Any], encoder: Path, strategy: dict[str, Any], name: str) -> dict[str, Any]:
    return base | {"model": {"name": str(encoder), "max_length": 64}, "strategy": strategy,
                   "train": base["train"] | {"epochs": 1}, "output": base["output"] | {"name": name}}  # fmt: skip


def _predictions(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "predictions" / "test.jsonl").read_text().splitlines()]


def test_pairs_are_balanced_and_seeded() -> None:
    labels = [0, 0, 0, 1, 1, 2]
    pairs = make_pairs(labels, iterations=3, seed=0, cap=1000)
    assert pairs == make_pairs(labels, iterations=3, seed=0, cap=1000)
    positives = [p for p in pairs if p[2] == 1.0]
    assert all(labels[a] == labels[b] and a != b for a, b, _ in positives)
    assert all(labels[a] != labels[b] for a, b, t in pairs if t == 0.0)
    assert len(positives) == 3 * 5  # label 2 has a single example: no positive partner
    assert len(pairs) - len(positives) == 3 * 6


def test_setfit_tunes_the_encoder_and_saves_a_model_that_predicts_like_the_run(
    recipe_dict: dict[str, Any], encoder: Path
) -> None:
    result = run(recipe_from_dict(_recipe(recipe_dict, encoder, {"name": "setfit", "iterations": 1, "max_pairs": 64}, "sf"), "r"),
                 quiet=True)  # fmt: skip
    saved = load_file(str(result.run_dir / "model" / "model.safetensors"))
    start = load_file(str(encoder / "model.safetensors"))
    moved = [k for k in start if k.startswith("encoder.") and not torch.equal(start[k], saved["bert." + k])]
    assert moved, "the contrastive phase must change the encoder's weights"
    config = json.loads((result.run_dir / "model" / "config.json").read_text())
    assert config["tunesmith_pooling"] == {"mode": "mean", "normalize": True}
    rows = _predictions(result.run_dir)
    again = predict(result.run_dir, [r["text"] for r in rows[:8]], calibrated=False)
    for row, new in zip(rows, again, strict=False):  # the saved model mean-pools as the run did
        assert new["label"] == row["pred"]
        assert new["probs"][row["pred"]] == pytest.approx(max(row["probs"]), abs=1e-4)
    assert result.metrics["test"]["macro_f1"] is not None
    assert (result.run_dir / "report.html").is_file()


def test_zero_shot_trains_nothing_and_picks_the_most_similar_description(
    recipe_dict: dict[str, Any], encoder: Path
) -> None:
    descriptions = {"positive": "this medicine worked wonders", "negative": "awful side effects"}
    strategy = {"name": "zero-shot", "label_descriptions": descriptions}
    recipe = _recipe(recipe_dict, encoder, strategy, "zs") | {"eval": {"suite": []}}
    result = run(recipe_from_dict(recipe, "r"), quiet=True)
    assert result.metrics["steps"] == 0 and result.metrics["stop_reason"] == "zero-shot: no training"
    assert (result.run_dir / "history.jsonl").read_text() == ""
    start = load_file(str(encoder / "model.safetensors"))
    saved = load_file(str(result.run_dir / "model" / "model.safetensors"))
    assert all(torch.equal(start[k], saved["bert." + k]) for k in start if k.startswith("encoder."))
    # a description is most similar to itself: cos = 1, logit = scale
    out = predict(result.run_dir, [*descriptions.values(), "neutral"], calibrated=False)
    assert [o["label"] for o in out] == ["positive", "negative", "neutral"]
    assert len(_predictions(result.run_dir)) == 60 and "validation" in result.metrics


def _cli_fails(tmp_path: Path, recipe: dict[str, Any], *needles: str) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for needle in needles:
        assert needle in result.output
    assert not (Path(recipe["output"]["dir"]) / recipe["output"]["name"]).exists()


def test_setfit_on_a_model_that_is_not_a_sentence_encoder_fails_cleanly(
    tmp_path: Path, recipe_dict: dict[str, Any]
) -> None:
    _cli_fails(tmp_path, recipe_dict | {"strategy": {"name": "setfit"}}, "setfit needs a sentence encoder",
               "modules.json")  # fmt: skip


def test_zero_shot_with_a_description_of_an_unknown_label_fails_cleanly(
    tmp_path: Path, recipe_dict: dict[str, Any], encoder: Path
) -> None:
    strategy = {"name": "zero-shot", "label_descriptions": {"postive": "good"}}
    recipe = _recipe(recipe_dict, encoder, strategy, "bad")
    _cli_fails(tmp_path, recipe, "strategy.label_descriptions", "'postive'", "did you mean 'positive'")
