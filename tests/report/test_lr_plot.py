"""The learning-rate plot draws the recipe's schedule at every step (warmup visible), not only logged points."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "diagnosis"))
from scripted import make_run  # noqa: E402

from tunesmith.report.plots import lr_schedule, planned_lr  # noqa: E402


def test_schedule_at_every_step_shows_warmup_and_decay() -> None:
    run = make_run()  # steps logged every 10, 100 steps per epoch, 5 epochs, warmup 0.1, linear
    run.recipe["train"]["schedule"] = "linear"
    planned = planned_lr(run)
    assert planned is not None
    steps, lrs = planned
    assert steps[:10] == list(range(1, 11)) and steps[-1] == 500  # every step, to the end of the run
    peak = max(lrs)
    assert abs(peak - 5e-5) < 1e-9 and lrs[0] < 0.05 * peak  # warmup starts near zero
    assert lrs.index(peak) in range(45, 55)  # ... and peaks after 10% of 500 steps
    assert lrs[-1] < 0.01 * peak  # linear decay to zero
    spec = lr_schedule(run)
    assert spec is not None and spec["data"][0]["name"].startswith("schedule")
    assert len(spec["data"][1]["x"]) == 30  # the logged points stay, as markers


def test_without_a_recipe_only_the_logged_points_are_drawn() -> None:
    run = make_run()
    run.recipe = {}
    spec = lr_schedule(run)
    assert spec is not None and len(spec["data"]) == 1 and spec["data"][0]["name"] == "logged learning rate"
