"""TensorBoard: event files under RUN_DIR/tensorboard (`tensorboard --logdir RUN_DIR/tensorboard`).

Step and epoch metrics while training; at the end the final validation / test metrics (`test/macro_f1`...),
the evaluation suite's numbers (`evaluation/...`), the number of findings per severity, and the findings as
text. `tunesmith evaluate` adds its numbers to the same directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tunesmith.findings import Finding
from tunesmith.tracking.common import (
    Tracker,
    evaluation_scalars,
    findings_markdown,
    metric_name,
    recipe_dict,
    result_scalars,
    scalars,
)

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from tunesmith.training.callbacks.base import TrainContext


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self._writer: SummaryWriter | None = None

    def on_train_start(self, ctx: TrainContext) -> None:
        if not ctx.accelerator.is_main_process:
            return
        from torch.utils.tensorboard import SummaryWriter

        log_dir = self.log_dir or Path(ctx.extra["run_dir"]) / "tensorboard"
        self._writer = SummaryWriter(log_dir=str(log_dir))
        config = yaml.safe_dump(recipe_dict(ctx.recipe), sort_keys=False)
        # Markdown code block (4-space indent) so TensorBoard's text plugin keeps the layout.
        self._writer.add_text("config", "\n".join("    " + line for line in config.splitlines()), ctx.step)

    def _log(self, kind: str, ctx: TrainContext, record: dict[str, Any]) -> None:
        if self._writer is None or not record:
            return
        step = int(record.get("step", ctx.step))
        for key, value in scalars(record).items():
            self._writer.add_scalar(metric_name(kind, key), value, step)

    def on_step_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        self._log("step", ctx, record)

    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        self._log("epoch", ctx, record)
        if self._writer is not None:
            self._writer.flush()

    def log_results(self, run_dir: Path, metrics: dict[str, Any], findings: list[Finding], step: int) -> None:
        if self._writer is None:
            return
        for name, value in result_scalars(metrics, findings).items():
            self._writer.add_scalar(name, value, step)
        self._writer.add_text("findings", findings_markdown(findings), step)
        self._close()

    def log_evaluation(
        self, run_dir: Path, summary: dict[str, Any], findings: list[Finding], step: int
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(
            log_dir=str(self.log_dir or run_dir / "tensorboard")
        )  # a new event file beside
        for name, value in evaluation_scalars(summary).items():
            writer.add_scalar(name, value, step)
        writer.add_text("evaluation/findings", findings_markdown(findings), step)
        writer.close()

    def abort(self, error: BaseException) -> None:
        self._close()  # what was logged until the failure stays readable

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
