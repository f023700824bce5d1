"""Rich progress bars for training: loss, learning rate and tokens/s; silent under --quiet."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    def __init__(self, *, enabled: bool, steps_per_epoch: int, epochs: int) -> None:
        self.enabled = enabled
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self._task: Any = None

    def __enter__(self) -> TrainProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def start_epoch(self, epoch: int, done_steps: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(
            f"epoch {epoch + 1}/{self.epochs}", total=self.steps_per_epoch, completed=done_steps,
            loss="-", lr="-", tps="-",
        )  # fmt: skip

    def update(self, loss: float, lr: float, tokens_per_s: float) -> None:
        self._progress.update(self._task, loss=f"{loss:.4f}", lr=f"{lr:.2e}", tps=f"{tokens_per_s:,.0f}")

    def advance(self) -> None:
        self._progress.advance(self._task)

    def end_epoch(self, record: dict[str, Any], metric: str) -> None:
        if self.enabled:
            self.console.print(
                f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}  val loss {record['val_loss']:.4f}  "
                f"val {metric} {record[f'val_{metric}']:.4f}"
            )
