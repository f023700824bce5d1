"""Strategies inside real (tiny) runs: caches, schedules, exact resume, saved adapters, predict and export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification
from typer.testing import CliRunner

from conftest import toy_rows, write_tsv
from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.errors import UserError
from tunesmith.export import export_model
from tunesmith.models.loader import load_classifier
from tunesmith.predict import predict
from tunesmith.run import run
from tunesmith.strategies.blocks import find_blocks, unwrap_hf
from tunesmith.testing import make_tiny_bert
from tunesmith.training.callbacks.base import Callback, TrainContext
from tunesmith.training.checkpoint import latest_checkpoint


class CountCalls(Callback):
    """Counts, per epoch, the forward calls of backbone submodules that only run when really computing."""

    name = "count_calls"

    def __init__(self) -> None:
        self.per_epoch: list[dict[str, int]] = []
        self.now: dict[str, int] = {}

    def on_train_start(self, ctx: TrainContext) -> None:
        blocks = find_blocks(unwrap_hf(ctx.accelerator.unwrap_model(ctx.model)))
        watched = {"embeddings": blocks.backbone.embeddings}
        watched |= {f"layer{i}": layer.attention for i, layer in enumerate(blocks.layers)}
        for key, module in watched.items():
            self.now[key] = 0
            module.register_forward_hook(lambda *_a, key=key: self.now.__setitem__(key, self.now[key] + 1))

    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        self.per_epoch.append(dict(self.now))
        self.now = dict.fromkeys(self.now, 0)


def _recipe(
    recipe_dict: dict[str, Any], name: str, strategy: dict[str, Any], epochs: int = 3, **train: Any
) -> Any:
    recipe_dict = json.loads(json.dumps(recipe_dict))
    recipe_dict["strategy"] = strategy
    recipe_dict["output"]["name"] = name
    recipe_dict["train"].update(epochs=epochs, early_stopping={"patience": None}, **train)
    return recipe_from_dict(recipe_dict)


def test_frozen_backbone_is_bit_identical_and_its_features_are_cached(
    recipe_dict: dict[str, Any], tmp_path: Path, tiny_model: Path
) -> None:
    strategy = {"name": "frozen", "cache_dir": str(tmp_path / "features")}
    counter = CountCalls()
    result = run(_recipe(recipe_dict, "frozen", strategy, lr=1e-2), quiet=True, extra_callbacks=[counter])
    first, *later = [c["embeddings"] for c in counter.per_epoch]
    assert first > 0 and later == [0, 0], "from the second epoch the backbone must not run"
    assert result.metrics["trainable_params"] == 99
    start, _tok, _dir = load_classifier(str(tiny_model), ["negative", "neutral", "positive"], seed=0)
    trained = AutoModelForSequenceClassification.from_pretrained(result.run_dir / "model")
    for key, value in start.bert.state_dict().items():
        assert torch.equal(value, trained.bert.state_dict()[key]), key
    assert not torch.equal(start.classifier.weight, trained.classifier.weight)

    # The same model and data in a new run: every feature comes from the disk cache.
    counter = CountCalls()
    run(_recipe(recipe_dict, "frozen-again", strategy), quiet=True, extra_callbacks=[counter])
    assert [c["embeddings"] for c in counter.per_epoch] == [0, 0, 0]

    # New data: its new texts miss the cache (and only in the first epoch).
    changed = json.loads(json.dumps(recipe_dict))
    changed["data"]["train"] = str(write_tsv(tmp_path / "other.tsv", toy_rows(160, seed=9)))
    counter = CountCalls()
    run(_recipe(changed, "frozen-new-data", strategy), quiet=True, extra_callbacks=[counter])
    first, *later = [c["embeddings"] for c in counter.per_epoch]
    assert first > 0 and later == [0, 0]

    # Another model (other weights): the old features are never used.
    changed["model"]["name"] = str(make_tiny_bert(tmp_path / "tiny-seed1", seed=1))
    counter = CountCalls()
    run(_recipe(changed, "frozen-new-model", strategy), quiet=True, extra_callbacks=[counter])
    assert counter.per_epoch[0]["embeddings"] > 0
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 2


@pytest.mark.parametrize("cache_mb", [2048.0, 0.0])
def test_progressive_caches_frozen_blocks_and_records_the_schedule(
    recipe_dict: dict[str, Any], cache_mb: float
) -> None:
    counter = CountCalls()
    strategy = {"name": "progressive", "every": 2, "cache_mb": cache_mb}
    result = run(
        _recipe(recipe_dict, "progressive", strategy, epochs=4), quiet=True, extra_callbacks=[counter]
    )
    layer0 = [c["layer0"] for c in counter.per_epoch]
    layer1 = [c["layer1"] for c in counter.per_epoch]
    # Epochs 1-2 train the head on cached layer-1 outputs; epochs 3-4 train layer 1 on cached layer-0 outputs.
    # With memory for them, layer 0's outputs were kept from epoch 1, so it never runs again; without, the
    # thaw after epoch 2 makes it run once more (epoch 3) to fill the cache.
    assert layer0[0] > 0 and layer0[1] == 0 and layer0[3] == 0
    assert (layer0[2] == 0) if cache_mb else (layer0[2] > 0)
    assert layer1[0] > 0 and layer1[1] == 0 and layer1[2] > 0 and layer1[3] > 0
    epochs = [json.loads(line) for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
    epochs = [e for e in epochs if e["kind"] == "epoch" and e["epoch"] > 0]
    assert [e["thawed_blocks"] for e in epochs] == [0, 0, 1, 1]
    assert epochs[0]["trainable_params"] < epochs[-1]["trainable_params"]
    # The optimizer starts with the head's two groups; layer 1's two join when it thaws after epoch 2.
    assert [e["param_groups"] for e in epochs] == [2, 2, 4, 4]
    assert (epochs[0]["prefix_cache_mb"] > epochs[-1]["prefix_cache_mb"] > 0) == bool(cache_mb)


class Interrupt(Callback):
    name = "interrupt"

    def on_step_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        if ctx.step == ctx.steps_per_epoch + 2:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("strategy", "exact"),
    [({"name": "progressive", "every": 1, "cache": False}, True), ({"name": "progressive", "every": 1}, False),
     ({"name": "lora", "r": 4}, True)],
    ids=["progressive-no-cache", "progressive", "lora"],
)  # fmt: skip
def test_resume_continues(recipe_dict: dict[str, Any], strategy: dict[str, Any], exact: bool) -> None:
    """Cut in epoch 2 and resumed from the epoch-1 checkpoint: for progressive, the optimizer must regain the
    parameter groups of the block that thawed after epoch 1 before the saved state loads into it. With its
    block cache, the resumed run recomputes block outputs the uninterrupted run had cached from epoch 1, in
    other batches (other padding): equal to float rounding, not bit for bit."""
    whole = run(_recipe(recipe_dict, "whole", strategy), quiet=True)
    with pytest.raises(KeyboardInterrupt):
        run(_recipe(recipe_dict, "cut", strategy), quiet=True, extra_callbacks=[Interrupt()])
    resumed = run(_recipe(recipe_dict, "cut", strategy), quiet=True, resume=True)
    # The last checkpoint holds the last step's weights (model/ holds the best epoch's, maybe from before the cut).
    a, b = (load_file(str(latest_checkpoint(r.run_dir) / "model.safetensors")) for r in (whole, resumed))
    assert a.keys() == b.keys()
    assert any("lora_" in k for k in a) == (strategy["name"] == "lora")
    if exact:
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert whole.metrics["test"] == resumed.metrics["test"]
    else:
        assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
        assert whole.metrics["test"]["macro_f1"] == pytest.approx(
            resumed.metrics["test"]["macro_f1"], abs=0.02
        )
    history = [json.loads(line) for line in (resumed.run_dir / "history.jsonl").read_text().splitlines()]
    if strategy["name"] == "progressive":
        assert [e["param_groups"] for e in history if e["kind"] == "epoch" and e["epoch"] > 0] == [2, 4, 6]


@pytest.mark.parametrize("name", ["lora", "ia3"])
def test_peft_adapter_is_saved_on_its_own_and_predicts(name: str, recipe_dict: dict[str, Any]) -> None:
    result = run(_recipe(recipe_dict, name, {"name": name}, epochs=2, lr=5e-3), quiet=True)
    model_dir = result.run_dir / "model"
    assert {"adapter_config.json", "adapter_model.safetensors", "labels.json", "README.md"} <= {
        p.name for p in model_dir.iterdir()
    }
    assert not (model_dir / "model.safetensors").exists()
    assert result.metrics["trainable_pct"] < 1.0
    # predict on the run directory gives the probabilities the run itself recorded (raw: before the
    # evaluation suite's temperature, which predict applies by default).
    recorded = [
        json.loads(line) for line in (result.run_dir / "predictions/test.jsonl").read_text().splitlines()
    ][:3]
    predicted = predict(result.run_dir, [r["text"] for r in recorded], calibrated=False)
    for rec, pred in zip(recorded, predicted, strict=True):
        assert pred["label"] == rec["pred"]
        assert [pred["probs"][label] for label in ("negative", "neutral", "positive")] == pytest.approx(
            rec["probs"], abs=1e-4
        )


def test_prompt_tuning_and_adapter_runs_predict_and_refuse_to_merge(
    recipe_dict: dict[str, Any], tmp_path: Path
) -> None:
    for name in ("prompt-tuning", "adapter"):
        result = run(_recipe(recipe_dict, name, {"name": name}, epochs=1, lr=5e-3), quiet=True)
        recorded = json.loads((result.run_dir / "predictions/test.jsonl").read_text().splitlines()[0])
        pred = predict(result.run_dir, [recorded["text"]], calibrated=False)[0]
        assert [pred["probs"][label] for label in ("negative", "neutral", "positive")] == pytest.approx(
            recorded["probs"], abs=1e-4
        )
        with pytest.raises(UserError, match="--merge: "):
            export_model(result.run_dir, tmp_path / f"{name}-merged", merge=True)
        cli = CliRunner().invoke(
            app, ["export", str(result.run_dir), "--merge", "--out", str(tmp_path / "x")]
        )
        assert cli.exit_code == 2, cli.output  # whatever the message, a refused merge exits 2
        assert "cannot be folded" in cli.output or "no weight" in cli.output
        copied = export_model(result.run_dir, tmp_path / f"{name}-copy", merge=False)
        assert (copied / "adapter_model.safetensors").is_file()
