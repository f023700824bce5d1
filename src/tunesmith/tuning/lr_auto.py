"""The LR range test wired to a recipe: `train.lr: auto` in a run, and `tunesmith lr-find`.

The sweep trains the run's own model (after the strategy prepared it) through the strategy's parameter
groups, on the run's length-bucketed training batches, for about one epoch of steps (at least
`MIN_STEPS`, at most `MAX_STEPS`); `find_lr` puts weights, optimizer and RNG states back afterwards. The
curve is saved as RUN_DIR/lr_find.json and drawn in the report's Tuning section.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from tunesmith.config.schema import Recipe
from tunesmith.data.batching import LengthBucketBatcher
from tunesmith.errors import UserError
from tunesmith.outputs import write_json
from tunesmith.strategies.base import Strategy
from tunesmith.tasks.base import Encoded, Task
from tunesmith.training.optim import make_optimizer
from tunesmith.tuning.lr_finder import LRFindResult, Method, find_lr

log = logging.getLogger(__name__)

LR_FIND_FILE = "lr_find.json"
START_LR, END_LR = 1e-7, 1.0
MIN_STEPS, MAX_STEPS = 20, 100
_PLACEHOLDER_LR = 1e-3  # the groups' lr ratios are kept; their absolute value is swept


def sweep_steps(batches_per_epoch: int) -> int:
    """About one epoch of steps: fewer than MIN_STEPS points make no curve, more than MAX_STEPS add nothing."""
    return max(MIN_STEPS, min(MAX_STEPS, batches_per_epoch))


def range_test(
    recipe: Recipe,
    model: torch.nn.Module,
    strategy: Strategy,
    task: Task,
    train_data: Encoded,
    accelerator: Accelerator,
    *,
    steps: int | None = None,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    method: Method = "auto",
) -> LRFindResult:
    """Sweep the learning rate on `model` (left exactly as it was) and return the curve and suggestion."""
    cfg = recipe.train.model_copy(update={"lr": _PLACEHOLDER_LR})
    model.to(accelerator.device)
    optimizer = make_optimizer(strategy.param_groups(model, cfg), cfg)
    batcher = LengthBucketBatcher(train_data.lengths, cfg.batch_size, seed=cfg.seed, shuffle=True)
    steps = steps if steps is not None else sweep_steps(len(batcher))
    task.start_training(train_data, accelerator.device)  # the run's own loss (class weights included)
    epoch = [0]

    def batches() -> Iterator[dict[str, torch.Tensor]]:
        order = batcher.batches(epoch[0])
        epoch[0] += 1
        for indices in order:
            batch = task.collate(train_data, indices)
            yield {k: v.to(accelerator.device) for k, v in batch.items()}

    def loss_fn(net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with accelerator.autocast():
            return task.step(net, batch, torch.arange(len(batch["input_ids"]))).loss

    try:
        return find_lr(
            model, optimizer, batches, loss_fn, start_lr=start_lr, end_lr=end_lr, steps=steps,
            base_lr=_PLACEHOLDER_LR, grad_clip=cfg.grad_clip, method=method,
        )  # fmt: skip
    except ValueError as exc:  # bad sweep settings from the command line
        raise UserError(f"lr-find: {exc}") from exc


def save_result(run_dir: Path, result: LRFindResult, *, used_for: str) -> Path:
    path = run_dir / LR_FIND_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, {**result.to_dict(), "used_for": used_for})
    return path


def recorded_lr(run_dir: Path, recipe: Recipe) -> Recipe:
    """A resumed `lr: auto` run keeps the learning rate its range test picked (RUN_DIR/lr_find.json)."""
    path = run_dir / LR_FIND_FILE
    if recipe.train.lr != "auto" or not path.is_file():
        return recipe
    suggestion = float(json.loads(path.read_text(encoding="utf-8"))["suggestion"])
    return with_lr(recipe, suggestion)


def with_lr(recipe: Recipe, lr: float) -> Recipe:
    return recipe.model_copy(update={"train": recipe.train.model_copy(update={"lr": lr})})


def resolve_auto_lr(
    recipe: Recipe,
    run_dir: Path,
    model: torch.nn.Module,
    strategy: Strategy,
    task: Task,
    train_data: Encoded,
    accelerator: Accelerator,
) -> Recipe:
    """`train.lr: auto` -> the range test's suggestion (saved with its curve in RUN_DIR/lr_find.json)."""
    if recipe.train.lr != "auto":
        return recipe
    result = range_test(recipe, model, strategy, task, train_data, accelerator)
    if accelerator.is_main_process:
        save_result(run_dir, result, used_for="train.lr: auto")
    log.info(
        "lr range test: %d steps from %.0e to %.0e (%s); train.lr = %.3g (%s)",
        len(result.lrs), result.start_lr, result.end_lr, result.stop_reason, result.suggestion, result.method,
    )  # fmt: skip
    return with_lr(recipe, result.suggestion)


def summary(result: LRFindResult | dict[str, Any]) -> dict[str, Any]:
    data = result.to_dict() if isinstance(result, LRFindResult) else result
    return {
        "suggestion": data["suggestion"], "method": data["method"], "steps": len(data["lrs"]),
        "swept": f"{data['lrs'][0]:.1e} .. {data['lrs'][-1]:.1e}", "stop_reason": data["stop_reason"],
        **{f"{k} pick": v for k, v in data["candidates"].items()},
    }  # fmt: skip
