"""The `search:` space of a recipe: checked against the schema, sampled by Optuna, enumerated for grid search."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import optuna

from tunesmith.config.loader import apply_overrides, recipe_from_dict
from tunesmith.config.schema import Recipe, SearchParam
from tunesmith.errors import UserError
from tunesmith.strategies.registry import get_strategy
from tunesmith.tasks.registry import make_task

_RESERVED = ("search", "tune", "output")


def base_data(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data, without its search space (trials and best.yaml are plain runs)."""
    data = recipe.model_dump(mode="json")
    data["search"] = {}
    return data


def override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: the loader parses it back to the same value


def trial_recipe(base: dict[str, Any], params: dict[str, Any], source: str, **output: str) -> Recipe:
    data = apply_overrides(base, [override(k, v) for k, v in params.items()])
    data["output"] = {**data["output"], **output}
    return recipe_from_dict(data, source)


def check_space(recipe: Recipe, source: str) -> dict[str, SearchParam]:
    """Every key must name a recipe setting, and every end of its range must give a valid recipe."""
    space = dict(recipe.search)
    if not space:
        raise UserError(
            f"{source}: the recipe has no search: section; add one, e.g. search: {{train.lr: {{type: float, "
            "low: 1.0e-5, high: 1.0e-3, log: true}}"
        )
    base = base_data(recipe)
    for key, spec in space.items():
        if key.split(".")[0] in _RESERVED:
            raise UserError(f"{source}: search.{key}: {key.split('.')[0]}.* cannot be searched; search model, "
                            "data, strategy, train or eval settings")  # fmt: skip
        for value in _probe_values(spec):
            try:
                probe = trial_recipe(base, {key: value}, source)
                get_strategy(probe.strategy)  # checks the options too
                make_task(probe).check_model()  # e.g. model.num_layers against the model's blocks
            except UserError as exc:
                problem = "; ".join(str(exc).splitlines()).replace(f"override '{override(key, value)}': ", "")
                raise UserError(
                    f"{source}: search.{key}: the value {value!r} is not valid there: {problem}"
                ) from None
    return space


def _probe_values(spec: SearchParam) -> list[Any]:
    if spec.type == "categorical":
        return list(spec.choices or [])
    assert spec.low is not None and spec.high is not None
    if spec.type == "int":
        return [int(spec.low), int(spec.high)]
    return [float(spec.low), float(spec.high)]


def suggest(trial: optuna.Trial, key: str, spec: SearchParam) -> Any:
    if spec.type == "categorical":
        return trial.suggest_categorical(key, list(spec.choices or []))
    assert spec.low is not None and spec.high is not None
    if spec.type == "int":
        step = int(spec.step) if spec.step else 1
        return trial.suggest_int(key, int(spec.low), int(spec.high), step=step, log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, step=spec.step, log=spec.log)


def grid(space: dict[str, SearchParam], points: int) -> dict[str, list[Any]]:
    """Values per key for the grid sampler: choices, every `step`, or `points` values (log-spaced if log)."""
    values: dict[str, list[Any]] = {}
    for key, spec in space.items():
        if spec.type == "categorical":
            values[key] = list(spec.choices or [])
            continue
        assert spec.low is not None and spec.high is not None
        low, high = spec.low, spec.high
        if spec.step:
            span = np.arange(low, high + spec.step / 2, spec.step)
        elif spec.log:
            span = np.geomspace(low, high, points)
        else:
            span = np.linspace(low, high, points)
        if spec.type == "int":
            values[key] = sorted({int(round(v)) for v in span})
        else:
            values[key] = [float(f"{v:.6g}") for v in span]
    return values


def grid_size(values: dict[str, list[Any]]) -> int:
    return math.prod(len(v) for v in values.values())


def grid_points(values: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(values)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values.values())]
