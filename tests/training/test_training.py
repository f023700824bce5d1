"""Behaviour of one run on the tiny model: loss falls, best weights restored, outputs loadable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoModelForSequenceClassification

from tunesmith.config.loader import recipe_from_dict
from tunesmith.run import run


def _records(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_run_trains_and_writes_every_output(recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"]["epochs"] = 8
    result = run(recipe_from_dict(recipe_dict), quiet=True)
    run_dir = result.run_dir
    start, *epochs = _records(run_dir, "epoch")
    assert [e["epoch"] for e in epochs] == list(range(1, 9))
    # eval.on_start: validation before the first step, as epoch 0 (no training keys: nothing trained yet)
    assert start["epoch"] == 0 and start["step"] == 0 and "train_loss" not in start
    assert start["val_loss"] > epochs[-1]["val_loss"]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    steps = _records(run_dir, "step")
    assert steps and all({"loss", "lr", "tokens_per_s", "grad_norm"} <= s.keys() for s in steps)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["labels"] == ["negative", "neutral", "positive"]
    assert metrics["test"]["macro_f1"] > 0.5, "separable toy data should be learned"
    assert len(metrics["test"]["confusion_matrix"]) == 3
    assert set(metrics["validation"]["per_class"]) == {"negative", "neutral", "positive"}
    # The final validation metric is the best epoch's: the best weights were restored.
    best = max(e["val_macro_f1"] for e in epochs)
    assert metrics["validation"]["macro_f1"] == pytest.approx(best, abs=1e-6)
    assert metrics["best_epoch"] == 1 + [e["val_macro_f1"] for e in epochs].index(best)
    for name in ("config.yaml", "predictions/validation.jsonl", "predictions/test.jsonl", "model/README.md",
                 "model/labels.json", "model/model.safetensors"):  # fmt: skip
        assert (run_dir / name).is_file(), name
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "model")
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}


def test_early_stopping_says_why(recipe_dict: dict[str, Any]) -> None:
    # A learning rate of ~0 cannot improve anything after the first epoch: patience 1 stops at epoch 2.
    recipe_dict["train"].update(epochs=6, lr=1e-12, early_stopping={"patience": 1, "min_delta": 0.01})
    result = run(recipe_from_dict(recipe_dict), quiet=True)
    assert result.metrics["epochs_run"] == 2
    assert "early stopping" in result.metrics["stop_reason"]
    events = _records(result.run_dir, "event")
    assert any(e["event"] == "early_stop" for e in events)


def test_class_weights_and_schedules_run(recipe_dict: dict[str, Any]) -> None:
    for schedule in ("cosine", "one-cycle", "constant"):
        recipe_dict["train"].update(epochs=1, class_weights=True, schedule=schedule, grad_accum=2)
        recipe_dict["output"]["name"] = f"toy-{schedule}"
        result = run(recipe_from_dict(recipe_dict), quiet=True)
        lrs = [s["lr"] for s in _records(result.run_dir, "step")]
        assert lrs and all(lr > 0 for lr in lrs)


def test_nan_policies(recipe_dict: dict[str, Any]) -> None:
    from tunesmith.training.callbacks.base import Callback, TrainContext

    class PoisonOnce(Callback):
        """Makes the logits of the 5th training forward pass NaN, so that one loss is not finite."""

        name = "poison"

        def on_train_start(self, ctx: TrainContext) -> None:
            calls = {"n": 0}

            def hook(module: Any, args: Any, output: Any) -> Any:
                if module.training:
                    calls["n"] += 1
                    if calls["n"] == 5:
                        output.logits = output.logits * float("nan")
                return output

            ctx.model.register_forward_hook(hook)

    recipe_dict["train"]["epochs"] = 1
    events = {}
    results = {}
    for policy in ("stop", "skip", "rollback"):
        recipe_dict["train"]["nan_policy"] = policy
        recipe_dict["output"]["name"] = f"nan-{policy}"
        results[policy] = run(recipe_from_dict(recipe_dict), quiet=True, extra_callbacks=[PoisonOnce()])
        events[policy] = [e["event"] for e in _records(results[policy].run_dir, "event")]
    assert "nan_stop" in events["stop"] and "non-finite" in results["stop"].metrics["stop_reason"]
    assert events["skip"].count("nan_skip") == 1 and results["skip"].metrics["stop_reason"] is None
    assert (
        events["rollback"].count("nan_rollback") == 1 and results["rollback"].metrics["stop_reason"] is None
    )
    # Skipping drops one optimizer step; the rollback halves the learning rate for the rest of the run.
    full_steps = results["stop"].metrics["steps"]
    assert results["skip"].metrics["steps"] == results["rollback"].metrics["steps"] > full_steps
