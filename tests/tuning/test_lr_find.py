"""LR range test on the tiny model: a suggestion inside the sweep, the model and optimizer left as they were,
`train.lr: auto` in a run, and the `tunesmith lr-find` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.data.batching import LengthBucketBatcher
from tunesmith.run import run
from tunesmith.strategies.registry import get_strategy
from tunesmith.tasks.registry import make_task
from tunesmith.training.optim import make_optimizer
from tunesmith.tuning.lr_finder import descent_is_significant, find_lr, noise_sd, pick, smooth, suggest


def _setup(recipe_dict: dict[str, Any]) -> tuple[Any, ...]:
    recipe = recipe_from_dict(recipe_dict)
    task = make_task(recipe)
    _, bundle = task.prepare_data()
    model = get_strategy(recipe.strategy).prepare(task.load_model(bundle).model)
    data = task.encode(bundle.train)
    batcher = LengthBucketBatcher(data.lengths, 16, seed=0)

    def batches() -> Any:
        for ids in batcher.batches(0):
            yield task.collate(data, ids)

    def loss_fn(net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return F.cross_entropy(net(**inputs).logits, batch["labels"])

    return recipe, model, batches, loss_fn


def test_sweep_suggests_inside_and_restores_model_and_optimizer(recipe_dict: dict[str, Any]) -> None:
    recipe, model, batches, loss_fn = _setup(recipe_dict)
    optimizer = make_optimizer(get_strategy(recipe.strategy).param_groups(model, recipe.train), recipe.train)
    for batch in list(batches())[:2]:  # real AdamW moments and step counts to restore
        loss_fn(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()  # the mode is restored too
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    saved_state = {k: {n: t.clone() for n, t in s.items()} for k, s in opt_state["state"].items()}
    saved_groups = [{k: v for k, v in g.items()} for g in opt_state["param_groups"]]
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)

    result = find_lr(model, optimizer, batches, loss_fn, start_lr=1e-6, end_lr=1.0, steps=40)

    assert torch.equal(torch.rand(3), expected_draw), "the global RNG must be restored"
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), f"weight {key} changed"
    after = optimizer.state_dict()
    assert after["param_groups"] == saved_groups
    for key, state in saved_state.items():
        for name, tensor in state.items():
            assert torch.equal(after["state"][key][name], tensor), f"optimizer state {key}.{name} changed"
    assert all(p.grad is None for p in model.parameters())
    # The suggestion lies inside the sweep, where the smoothed loss is lower than at the start.
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    assert set(result.candidates) == {"valley", "steep", "minimum", "rise"}
    assert result.method in ("valley", "rise") and result.suggestion == result.candidates[result.method]
    # The pick is the one the recorded curve implies, whichever branch this sweep takes...
    noise = noise_sd(result.losses, result.smoothed)
    assert result.candidates == pytest.approx(suggest(result.lrs, result.smoothed, noise))
    significant = descent_is_significant(result.smoothed, noise)
    assert (result.method, result.suggestion) == pick("auto", result.candidates, significant)

    # ...and each pick has its defining property on this very curve.
    def at(lr: float) -> int:
        return int(np.argmin(np.abs(np.log(result.lrs) - np.log(lr))))

    valley = at(result.candidates["valley"])
    assert valley <= int(np.argmin(result.smoothed))  # on the descent, never past the minimum
    rise = at(10 * result.candidates["rise"])  # a tenth of where the loss climbs above its start
    assert rise == len(result.lrs) - 1 or result.smoothed[rise] > result.smoothed[0]
    if significant:
        assert result.smoothed[valley] < result.smoothed[0]
    assert 20 <= len(result.lrs) <= 40


def test_suggest_on_a_textbook_curve() -> None:
    lrs = np.geomspace(1e-6, 1.0, 61)
    x = np.log10(lrs)  # flat until 1e-4, falls until 1e-2, then diverges
    loss = np.where(x < -4, 1.0, np.where(x < -2, 1.0 - 0.4 * (x + 4), 0.2 + 3.0 * (x + 2) ** 2))
    picks = suggest(lrs, smooth(loss).tolist())
    assert 1e-4 < picks["valley"] < 1e-2
    assert 1e-4 < picks["steep"] < 1e-2
    assert picks["minimum"] == pytest.approx(lrs[int(np.argmin(smooth(loss)))] / 10)
    assert descent_is_significant(smooth(loss).tolist(), noise_sd(loss.tolist(), smooth(loss).tolist()))
    assert pick("auto", picks, True) == ("valley", picks["valley"])


def test_auto_takes_rise_when_the_descent_is_within_the_noise() -> None:
    """A pre-trained model's sweep: flat up to batch noise (SD 0.01) until 6.3e-4, then the loss climbs.

    The valley of such a curve is the valley of the noise (it moves by decades with the seed); auto takes
    a tenth of where the loss climbs instead, which stays put."""
    lrs = np.geomspace(1e-7, 1.0, 40)
    x = np.log10(lrs)
    for seed in range(6):
        noise_draw = np.random.default_rng(seed).normal(0, 0.01, lrs.size)
        loss = 1.1 + noise_draw - 0.004 * ((x > -4.5) & (x < -3.3)) + np.where(x > -3.2, 0.3 * (x + 3.2), 0)
        curve = smooth(loss)
        noise = noise_sd(loss.tolist(), curve.tolist())
        assert 0.005 < noise < 0.015  # the planted SD, seen around the smoothed curve
        assert not descent_is_significant(curve.tolist(), noise)
        picks = suggest(lrs, curve.tolist(), noise)
        lowest = int(np.argmin(curve))
        climbs = lrs[lowest + int(np.flatnonzero(curve[lowest:] > curve[0] + 2 * noise)[0])]
        assert pick("auto", picks, False) == ("rise", pytest.approx(climbs / 10))
        assert 3e-5 < picks["rise"] < 1e-4  # about a tenth of 6.3e-4, whatever the noise
        assert pick("valley", picks, False) == ("valley", picks["valley"])  # asked for explicitly: kept


def test_auto_lr_run_equals_a_run_with_the_suggestion(recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"].update(epochs=2, lr="auto")
    auto = run(recipe_from_dict(recipe_dict), quiet=True)
    found = json.loads((auto.run_dir / "lr_find.json").read_text())
    config = yaml.safe_load((auto.run_dir / "config.yaml").read_text())
    assert config["train"]["lr"] == found["suggestion"]  # the value used is recorded, runnable
    assert found["used_for"] == "train.lr: auto"
    report = (auto.run_dir / "report.html").read_text()
    assert "LR range test" in report and "plot-lr-find" in report
    # The sweep leaves no trace: training matches a run given the suggested learning rate.
    recipe_dict["train"]["lr"] = found["suggestion"]
    recipe_dict["output"]["name"] = "manual"
    manual = run(recipe_from_dict(recipe_dict), quiet=True)
    assert manual.metrics["validation"]["loss"] == pytest.approx(auto.metrics["validation"]["loss"], rel=1e-6)


def test_lr_find_command(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    result = CliRunner().invoke(app, ["lr-find", str(path), "train.batch_size=8", "--steps", "25"])
    assert result.exit_code == 0, result.output
    assert "suggested train.lr:" in result.output
    saved = json.loads((tmp_path / "runs" / "toy" / "lr_find.json").read_text())
    assert len(saved["lrs"]) <= 25 and saved["lrs"][0] <= saved["suggestion"] <= saved["lrs"][-1]
    assert "Plotly" in (tmp_path / "runs" / "toy" / "lr_find.html").read_text()
    bad = CliRunner().invoke(app, ["lr-find", str(path), "--start-lr", "1", "--end-lr", "0.1"])
    assert bad.exit_code == 2 and "start_lr" in bad.output and "Traceback" not in bad.output
