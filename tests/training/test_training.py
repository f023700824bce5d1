"""Behaviour of one run on the tiny model: loss falls, best weights restored, outputs loadable."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
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
        every, steps = recipe_dict["train"]["log_every"], result.metrics["steps"]
        # step 1, then every log_every steps
        assert [r["step"] for r in _records(result.run_dir, "step")] == sorted(
            {1, *range(every, steps + 1, every)}
        )


def test_schedule_shapes() -> None:
    """Each schedule's learning rate over 100 steps of a real optimizer: its shape, not only lr > 0."""
    from tunesmith.config.schema import TrainConfig
    from tunesmith.training.optim import make_scheduler

    def curve(schedule: str) -> list[float]:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        scheduler = make_scheduler(optimizer, TrainConfig(schedule=schedule, lr=1e-3, warmup_ratio=0.1), 100)
        out = []
        for _ in range(100):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    peak = 1e-3
    for schedule in ("linear", "cosine", "constant"):
        lrs = curve(schedule)
        assert lrs[:10] == sorted(lrs[:10]) and lrs[0] < peak / 5  # warm-up: 10 rising steps
        assert lrs[10] == pytest.approx(peak)
    linear, cosine, constant = curve("linear"), curve("cosine"), curve("constant")
    assert constant[10:] == pytest.approx([peak] * 90)  # flat after warm-up
    assert linear[55] == pytest.approx(peak * 0.5) and cosine[55] == pytest.approx(
        peak * 0.5
    )  # same midpoint
    assert cosine[40] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi / 3)))  # a third of the decay
    assert (
        linear[40] == pytest.approx(peak * 2 / 3) and cosine[78] < linear[78]
    )  # above linear early, below late  # above linear early, below it late
    assert all(a >= b for a, b in zip(cosine[10:], cosine[11:], strict=False)) and cosine[-1] < peak * 0.01
    one_cycle = curve("one-cycle")
    top = int(np.argmax(one_cycle))
    assert 5 <= top <= 15 and one_cycle[top] == pytest.approx(peak, rel=0.02)  # up to max_lr near 10%
    assert one_cycle[0] == pytest.approx(peak / 25)  # OneCycleLR's start: max_lr / div_factor
    assert one_cycle[-1] < peak / 1000  # annealed far below the start
    assert all(a <= b for a, b in zip(one_cycle[:top], one_cycle[1 : top + 1], strict=False))


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
    # Skipping drops exactly the poisoned step (the 5th); the rollback halves the lr for the rest of the run.
    recipe_dict["train"]["nan_policy"] = "stop"
    recipe_dict["output"]["name"] = "nan-clean"
    clean_steps = run(recipe_from_dict(recipe_dict), quiet=True).metrics["steps"]
    assert results["stop"].metrics["steps"] == 4  # stopped before the poisoned 5th step
    assert results["skip"].metrics["steps"] == clean_steps - 1
    skipped = [e for e in _records(results["skip"].run_dir, "event") if e["event"] == "nan_skip"]
    assert skipped[0]["step"] == 4 and "step 5" in skipped[0]["message"]
    assert results["rollback"].metrics["steps"] == clean_steps - 1
