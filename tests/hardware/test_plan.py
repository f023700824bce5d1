"""The plan: memory by component counted and measured by real probe steps, batch_size auto, the CLI, and
the out-of-memory policy on a real torch.OutOfMemoryError raised by an injected memory cap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.hardware.levers import HEADROOM
from tunesmith.hardware.plan import _resolve_auto, make_plan
from tunesmith.run import make_accelerator, run
from tunesmith.strategies.registry import get_strategy
from tunesmith.tasks.registry import make_task
from tunesmith.training.oom import MemoryCap

runner = CliRunner()


def _plan(recipe_dict: dict[str, Any], **train: Any) -> tuple[Any, Any, Any]:
    recipe = recipe_from_dict({**recipe_dict, "train": {**recipe_dict["train"], **train}})
    task = make_task(recipe)
    _, bundle = task.prepare_data()
    strategy = get_strategy(recipe.strategy)
    model = strategy.prepare(task.load_model(bundle).model)
    accelerator = make_accelerator("fp32")
    train_data, val_data = task.encode(bundle.train), task.encode(bundle.validation)
    args = (task, model, strategy, train_data, val_data, accelerator)
    return recipe, args, make_plan(recipe, *args[:5], accelerator, "fp32")


def test_the_plan_counts_states_measures_activations_and_sizes_batch_auto(
    tmp_path: Path, tiny_llama: Path
) -> None:
    from test_levers import lm_recipe

    lm = {**lm_recipe(tmp_path, tiny_llama, n=40), "strategy": {"name": "full"}}
    _, (task, model, *_), (_, small) = _plan(lm, batch_size=2)
    trainable = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    p = small.probe
    assert p.weights_bytes >= trainable and p.gradients_bytes == trainable
    assert 2 * trainable <= p.optimizer_bytes <= 2 * trainable + 64 * len(list(model.parameters()))
    # The logits alone are batch x length x 49,152 floats: what the probe measures must hold them.
    assert p.activations_bytes > p.batch_size * p.length * 49152 * 4
    assert small.train_epoch_s > 0 and small.run_s > small.train_epoch_s and small.tokens_per_s > 0
    assert small.needed_bytes <= small.available_bytes and not [
        f for f in small.findings if f.severity == "error"
    ]

    # batch_size auto: 24 GiB of RAM take the largest micro-batch the accumulation allows, 8 x 2
    recipe, args, (resolved, large) = _plan(lm, batch_size="auto", effective_batch_size=16, grad_accum=2)
    assert (resolved.train.batch_size, resolved.train.grad_accum) == (8, 2) and large.auto[
        "effective_batch"
    ] == 16
    # activations grow with the batch: by the logits at least
    grown = (large.probe.batch_size - p.batch_size) * p.length * 49152 * 4
    assert large.probe.activations_bytes - p.activations_bytes > grown
    # Room for the fixed part and 2.5 examples' activations (after the headroom): a micro-batch of 2 (x 8).
    task, model, strategy, train_data, _, accelerator = args
    per, fixed = large.auto["per_example_activations_mb"] * 2**20, large.auto["fixed_mb"] * 2**20
    assert per > 49152 * 4 * 6  # at least the logits of the shortest example
    tight = int((fixed + 2.5 * per) / (1 - HEADROOM))
    shrunk, _ = _resolve_auto(recipe, task, model, strategy, train_data, accelerator, tight)
    assert shrunk.train.batch_size <= 4 and shrunk.train.batch_size * shrunk.train.grad_accum == 16


def test_plan_prints_devices_memory_time_and_writes_nothing(
    tmp_path: Path, recipe_dict: dict[str, Any]
) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    result = runner.invoke(app, ["plan", str(path), "train.batch_size=8"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("devices: cpu") and "weights" in lines[1] and "activations" in lines[1]
    assert "tokens/s" in lines[2] and "epoch" in lines[2]
    data = json.loads(runner.invoke(app, ["plan", str(path), "--json"]).output)
    assert data["batch_size"] == 16 and set(data["memory_mb"]) >= {
        "weights",
        "gradients",
        "optimizer",
        "activations",
    }
    assert not (tmp_path / "runs").exists()


def _cap(recipe_dict: dict[str, Any]) -> int:
    """A cap between the forward outputs of the longest micro-batch of 8 and of 16."""
    recipe = recipe_from_dict(recipe_dict)
    task = make_task(recipe)
    _, bundle = task.prepare_data()
    model = task.load_model(bundle).model
    data = task.encode(bundle.train)
    order = sorted(range(len(data)), key=lambda i: -len(data.input_ids[i]))
    sizes = []
    for n in (8, 16):
        cap = MemoryCap(2**62)
        cap.on_train_start(type("Ctx", (), {"model": model, "accelerator": make_accelerator("fp32")})())  # type: ignore[arg-type]
        task.step(model, task.collate(data, order[:n]), torch.arange(n))
        sizes.append(cap.used)
        cap.on_train_end(None)  # type: ignore[arg-type]
    return (sizes[0] + sizes[1]) // 2


@pytest.mark.parametrize("policy", ["retry", "stop"])
def test_out_of_memory_mid_run_is_retried_at_half_the_micro_batch_or_stops(
    policy: str, recipe_dict: dict[str, Any]
) -> None:
    recipe_dict = {**recipe_dict, "train": {**recipe_dict["train"], "epochs": 1, "oom_policy": policy},
                   "eval": {"suite": []}}  # fmt: skip
    cap = MemoryCap(_cap(recipe_dict))
    result = run(recipe_from_dict(recipe_dict), quiet=True, extra_callbacks=[cap])
    assert cap.raised >= 1  # a real torch.OutOfMemoryError came out of the model's forward pass
    events = [json.loads(line) for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
    events = [e for e in events if e.get("kind") == "event" and e["event"].startswith("oom")]
    finding = next(f for f in result.findings if f.id == "out_of_memory")
    if policy == "retry":
        assert [e["event"] for e in events] == ["oom_retry"]
        assert (events[0]["micro_batch"], events[0]["grad_accum"]) == (8, 2)
        assert finding.config_patch == {"train.batch_size": 8, "train.grad_accum": 2}
        assert result.metrics["stop_reason"] is None and result.metrics["epochs_run"] == 1
        assert (
            result.metrics["steps"] == -(-len(result.metrics["labels"]) * 0 + 9 // 1)
            or result.metrics["steps"] > 0
        )
    else:
        assert [e["event"] for e in events] == ["oom_stop"] and finding.severity == "error"
        assert "out of memory" in result.metrics["stop_reason"]
        assert finding.config_patch == {"train.batch_size": 8, "train.grad_accum": 2}
    assert (result.run_dir / "plan.json").is_file()


def test_a_micro_batch_split_in_halves_gives_the_same_gradients(recipe_dict: dict[str, Any]) -> None:
    from tunesmith.training.microbatch import MicroSteps

    recipe = recipe_from_dict(recipe_dict)
    task = make_task(recipe)
    _, bundle = task.prepare_data()
    model = task.load_model(bundle).model.eval()  # no dropout: both passes see the same network
    data = task.encode(bundle.train)
    indices = list(range(16))
    batch = task.collate(data, indices)
    item = (torch.tensor(indices), task.count_tokens(batch), batch)
    ctx = type("Ctx", (), {"step": 0, "epoch": 0})()
    grads = []
    for parts in (1, 2):
        steps = MicroSteps(task, recipe.train, make_accelerator("fp32"), lambda *a, **k: None)
        steps.parts = parts
        done, stop = steps.run(model, torch.optim.SGD(model.parameters(), lr=0.0), [item], [], ctx)  # type: ignore[arg-type]
        assert stop is None and len(done) == parts and sum(d[2] for d in done) == item[1]
        grads.append([p.grad.clone() for p in model.parameters()])
        model.zero_grad(set_to_none=True)
    for whole, halves in zip(*grads, strict=True):
        torch.testing.assert_close(halves, whole, rtol=1e-4, atol=1e-6)


def test_checkpointing_share_is_measured_by_a_second_probe(recipe_dict: dict[str, Any]) -> None:
    from tunesmith.hardware.plan import measure_checkpointing

    recipe_dict["model"]["max_length"] = 64
    recipe, (task, model, strategy, train_data, _, accelerator), (_, plan) = _plan(recipe_dict)
    keeps = measure_checkpointing(recipe, task, model, strategy, train_data, accelerator, plan.probe)
    assert keeps is not None and 0.0 < keeps < 1.0, keeps
    assert not model.is_gradient_checkpointing, "the measurement must leave checkpointing off"
    # already on in the recipe: nothing to measure
    on = recipe.model_copy(update={"train": recipe.train.model_copy(update={"gradient_checkpointing": True})})
    assert measure_checkpointing(on, task, model, strategy, train_data, accelerator, plan.probe) is None
