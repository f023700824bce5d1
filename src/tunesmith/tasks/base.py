"""The task interface: everything the spine (loop, checkpoints, callbacks, tuning, report) may ask of a task.

A task is what makes a run text classification or causal language modelling: which columns the data must
hold, how examples become tensors, what the loss of a batch is, how a split is evaluated, which model and
head are loaded and what is saved. The loop never looks inside a batch or a model output; it calls these
methods in a fixed order:

    task = make_task(recipe)           # one instance per run
    task.check_recipe()                # options that belong to another task are refused (UserError)
    tables, bundle = task.prepare_data()
    loaded = task.load_model(bundle)   # binds the tokenizer and labels that encode / collate use
    data = task.encode(split)          # per split -> Encoded
    task.start_training(train, device) # loss weights from the training split
    sums = task.new_sums(len(train), device)
    per micro-batch: out = task.step(model, task.collate(data, indices), index)
                     task.accumulate(sums, out, keep)   # on the device: no host sync per micro-batch
    per epoch:       task.train_metrics(sums)           # the one read of the sums
                     task.evaluate(model, val, ...)     # metrics + per-example losses
    at the end:      task.evaluate(...), task.write_predictions(...), task.save(...)

Adding a task means one module that subclasses `Task` and one line in `tunesmith.tasks.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from tunesmith.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from tunesmith.audit.report import AuditReport
    from tunesmith.config.schema import Recipe
    from tunesmith.data.types import DataBundle, Split, Table
    from tunesmith.findings import Finding
    from tunesmith.training.callbacks.base import Callback


@dataclass
class Encoded:
    """A split ready for batching: token ids per example (unpadded) and one target per example.

    The target is whatever the task's collate understands: a class id (-1 where unknown) for
    classification, a list of token labels for language modelling.
    """

    input_ids: list[list[int]]
    labels: list[Any]
    extra: dict[str, list[Any]] = field(default_factory=dict)  # other per-example fields (e.g. positions)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


# (token ids per example, targets per example) -> a padded batch of CPU tensors
Collate = Callable[[list[list[int]], list[Any]], dict[str, torch.Tensor]]


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: Any
    model_dir: Path


@dataclass
class StepOutput:
    """One micro-batch's forward pass: the task loss and device tensors for the training metrics."""

    loss: torch.Tensor  # scalar: what the optimizer minimises (before callbacks' extra terms)
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Evaluation:
    """One split evaluated: JSON-ready metrics, per-example losses and per-example outputs (predictions)."""

    metrics: dict[str, Any]
    losses: np.ndarray
    outputs: Any = None


def _unbound(*_: Any) -> dict[str, torch.Tensor]:
    raise RuntimeError("Task.load_model() binds the collate function; call it first")


class Task:
    name: ClassVar[str] = ""
    # eval.metric values this task computes -> whether higher is better
    metrics: ClassVar[dict[str, bool]] = {}
    default_metric: ClassVar[str] = "loss"
    # metric columns of the terminal summary table: (metrics key, column title)
    summary_columns: ClassVar[tuple[tuple[str, str], ...]] = ()
    # whether the spine's forgetting control (tunesmith.forgetting: retain head, ewc / l2sp / replay) applies
    uses_forgetting_control: ClassVar[bool] = True

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.tokenizer: Any = None
        self.collate_fn: Collate = _unbound  # set by load_model: (token ids, targets) -> batch

    # ---- recipe and data ----
    def check_recipe(self) -> None:
        """Raise UserError for settings this task cannot honour (named key, valid value)."""

    def check_metric(self, hint: str = "") -> None:
        """eval.metric must be one this task computes; `hint` is appended to the message."""
        metric = self.recipe.eval.metric
        if metric not in self.metrics:
            raise UserError(
                f"eval.metric: {metric} is not a {self.name} metric; use one of {', '.join(self.metrics)}{hint}."
            )

    def check_model(self) -> None:
        """Options that depend on the model (its position limit, blocks, module names), against its config,
        before anything heavy runs; UserError names the key and the model's own limit."""

    def prepare_data(self) -> tuple[dict[str, Table], DataBundle]:
        raise NotImplementedError

    def audit(self, tables: dict[str, Table], tokenizer: Any, balance: str | None) -> AuditReport:
        """The data doctor over the run's data (run.py's first stage; tables from prepare_data)."""
        from tunesmith.audit import run_audit

        recipe = self.recipe
        return run_audit(
            tables, recipe.audit, tokenizer=tokenizer, max_length=recipe.model.max_length, balance=balance
        )

    # ---- model ----
    def load_model(self, bundle: DataBundle) -> LoadedModel:
        raise NotImplementedError

    def encode(self, split: Split) -> Encoded:
        raise NotImplementedError

    def collate(self, data: Encoded, indices: list[int]) -> dict[str, torch.Tensor]:
        """The batch of examples `indices` of `data`, as CPU tensors (what the model's forward takes)."""
        return self.collate_fn([data.input_ids[i] for i in indices], [data.labels[i] for i in indices])

    def count_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        """Real (unpadded) tokens of a collated CPU batch: what tokens/s counts."""
        return int(batch["attention_mask"].sum())

    # ---- training ----
    def on_start(self, model: torch.nn.Module) -> None:
        """Measure the starting model (before training, and before a resume loads a checkpoint)."""

    def callbacks(self, model: torch.nn.Module) -> list[Callback]:
        """The task's own training callbacks, built on the starting weights (e.g. causal-lm's forgetting
        control, when the spine's `uses_forgetting_control` does not apply)."""
        return []

    def start_training(self, train: Encoded, device: torch.device) -> None:
        """Called once before the first step (e.g. loss weights from the training split)."""

    def new_sums(self, n_train: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Device accumulators for one epoch's training metrics."""
        return {}

    def step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], index: torch.Tensor) -> StepOutput:
        raise NotImplementedError

    def accumulate(self, sums: dict[str, torch.Tensor], out: StepOutput, keep: torch.Tensor) -> None:
        """Add one micro-batch's stats to the sums where `keep` (a device bool: the loss was finite)."""

    def train_metrics(self, sums: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The epoch's training metrics from the sums (reads the device once)."""
        return {}

    def epoch_end(self, run_dir: Path, epoch: int, sums: dict[str, torch.Tensor]) -> None:
        """Per-example training records of the epoch (main process), e.g. training dynamics."""

    # ---- evaluation and outputs ----
    def evaluate(
        self, model: torch.nn.Module, data: Encoded, *, batch_size: int, device: torch.device
    ) -> Evaluation:
        raise NotImplementedError

    def write_predictions(self, run_dir: Path, split: Split, evaluation: Evaluation) -> None:
        """Per-example records of a final evaluation (RUN_DIR/predictions/<split>.jsonl)."""

    def finish(self, run_dir: Path, model: torch.nn.Module) -> tuple[dict[str, Any], list[Finding]]:
        """Task-specific end of the run (main process, best weights loaded, model/ saved): keys merged into
        metrics.json, and findings (e.g. the evaluation suite's)."""
        return {}, []

    def save(self, run_dir: Path, model: torch.nn.Module, metrics: dict[str, Any]) -> Path:
        raise NotImplementedError

    def headline(self, metrics: dict[str, Any]) -> str:
        return ", ".join(f"{k} {metrics[k]:.4f}" for k, _ in self.summary_columns if k in metrics)

    def higher_is_better(self, metric: str) -> bool:
        return self.metrics.get(metric, False)
