"""The stages of a run that an LR range test needs (data, model, strategy, encoding), without training."""

from __future__ import annotations

from pathlib import Path

from accelerate.utils import set_seed

from tunesmith.config.schema import Recipe
from tunesmith.data.prepare import prepare_data
from tunesmith.models.loader import load_classifier
from tunesmith.outputs import resolve_run_dir
from tunesmith.strategies.registry import get_strategy
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
    from tunesmith.run import encode, make_accelerator, make_collate

    run_dir = resolve_run_dir(recipe.output)
    precision = resolve_precision(recipe.train.precision)
    strategy = get_strategy(recipe.strategy)
    _, bundle = prepare_data(recipe.data)
    set_seed(recipe.train.seed)
    model, tokenizer, _ = load_classifier(recipe.model.name, bundle.labels, seed=recipe.train.seed)
    model = strategy.prepare(model)
    accelerator = make_accelerator(precision)
    train_data = encode(bundle.train, tokenizer, recipe.model.max_length)
    result = range_test(
        recipe, model, strategy, train_data, make_collate(tokenizer), accelerator,
        steps=steps, start_lr=start_lr, end_lr=end_lr, method=method,
    )  # fmt: skip
    return result, run_dir
