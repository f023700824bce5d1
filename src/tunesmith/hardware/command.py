"""`tunesmith plan RECIPE [key=value ...]`: the run's plan stage on its own; nothing is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

RecipeArg = typer.Argument(..., help="recipe YAML file", show_default=False)
OverridesArg = typer.Argument(None, help="dotted overrides, e.g. train.batch_size=32 model.max_length=128")


def plan(
    recipe: Path = RecipeArg,
    overrides: list[str] = OverridesArg,
    as_json: bool = typer.Option(False, "--json", help="the whole plan as one JSON object"),
) -> None:
    """Will the run fit and how long will it take: devices, memory by component (measured by probe
    steps on the longest batch), time per epoch and for the run, and findings with config patches."""
    from accelerate.utils import set_seed

    from tunesmith.config.loader import load_recipe
    from tunesmith.data.augment import with_balance_setting
    from tunesmith.hardware.levers import check_levers, enable_gradient_checkpointing
    from tunesmith.hardware.plan import make_plan
    from tunesmith.outputs import resolve_run_dir
    from tunesmith.run import make_accelerator
    from tunesmith.strategies.registry import get_strategy
    from tunesmith.tasks.registry import make_task
    from tunesmith.training.precision import resolve_precision

    loaded_recipe = with_balance_setting(load_recipe(recipe, overrides or []))
    task = make_task(loaded_recipe)
    task.check_model()
    loaded_recipe = check_levers(loaded_recipe, resolve_run_dir(loaded_recipe.output), resume=False)
    precision = resolve_precision(loaded_recipe.train.precision)
    strategy = get_strategy(loaded_recipe.strategy)
    _, bundle = task.prepare_data()
    set_seed(loaded_recipe.train.seed)
    model = strategy.prepare(task.load_model(bundle).model)
    if loaded_recipe.train.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    accelerator = make_accelerator(precision)
    train_data, val_data = task.encode(bundle.train), task.encode(bundle.validation)
    _, result = make_plan(loaded_recipe, task, model, strategy, train_data, val_data, accelerator, precision)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        return
    for line in result.lines():
        typer.echo(line)
