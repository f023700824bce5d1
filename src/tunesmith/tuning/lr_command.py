"""The stages of a run that an LR range test needs (data, model, strategy, encoding), without training."""

from __future__ import annotations

from pathlib import Path

from accelerate.utils import set_seed

from tunesmith.config.schema import Recipe
from tunesmith.hardware.levers import is_auto
from tunesmith.outputs import resolve_run_dir
from tunesmith.strategies.registry import get_strategy
from tunesmith.tasks.registry import make_task
from tunesmith.training.precision import resolve_precision
from tunesmith.tuning.lr_auto import END_LR, START_LR, range_test
from tunesmith.tuning.lr_finder import LRFindResult, Method


def sweep_recipe(
    recipe: Recipe,
    *,
    steps: int | None = None,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    method: Method = "auto",
) -> tuple[LRFindResult, Path]:
    """Run the range test on the recipe's model, strategy and training data; return it and the run dir."""
    from tunesmith.run import make_accelerator

    run_dir = resolve_run_dir(recipe.output)
    precision = resolve_precision(recipe.train.precision)
    task = make_task(recipe)
    strategy = get_strategy(recipe.strategy)
    _, bundle = task.prepare_data()
    set_seed(recipe.train.seed)
    model = strategy.prepare(task.load_model(bundle).model)
    accelerator = make_accelerator(precision)
    train_data = task.encode(bundle.train)
    if is_auto(recipe.train):  # the sweep trains at the micro-batch the run would pick
        from tunesmith.hardware.plan import make_plan

        recipe, _ = make_plan(recipe, task, model, strategy, train_data, None, accelerator, precision)
    result = range_test(
        recipe, model, strategy, task, train_data, accelerator,
        steps=steps, start_lr=start_lr, end_lr=end_lr, method=method,
    )  # fmt: skip
    return result, run_dir
