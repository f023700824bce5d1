"""What every tracker logs: the numeric values of history records under stable metric names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.findings import Finding
from tunesmith.training.callbacks.base import Callback

# Bookkeeping fields of a record, not metrics.
_SKIP = {"kind", "step", "epoch"}


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """Numeric values of a history record (bools and bookkeeping fields left out)."""
    return {
        key: float(value)
        for key, value in record.items()
        if key not in _SKIP and isinstance(value, int | float) and not isinstance(value, bool)
    }


def metric_name(kind: str, key: str) -> str:
    """`loss` -> `train/loss` (steps), `val_loss` -> `epoch/val_loss`; `grad_norm/block.0` stays."""
    if kind == "epoch":
        return f"epoch/{key}"
    return key if "/" in key else f"train/{key}"


# metrics.json sections logged as final results, under `<section>/<metric>` (e.g. `test/macro_f1`).
RESULT_SECTIONS = ("validation", "test", "forgetting")


def result_scalars(metrics: dict[str, Any], findings: list[Finding]) -> dict[str, float]:
    """The run's final numbers: each result section's scalars and the number of findings per severity."""
    values = {
        f"{section}/{key}": value
        for section in RESULT_SECTIONS
        for key, value in scalars(metrics.get(section) or {}).items()
    }
    for severity in ("error", "warning", "info"):
        values[f"findings/{severity}"] = float(sum(f.severity == severity for f in findings))
    return values | evaluation_scalars(metrics.get("evaluation") or {})


def evaluation_scalars(summary: dict[str, Any]) -> dict[str, float]:
    """The evaluation suite's headline numbers (metrics.json `evaluation`) as `evaluation/<check>/<path>`,
    e.g. `evaluation/calibration/ece`, `evaluation/robustness/flip_rate/typo`."""
    values: dict[str, float] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{name}/{key}")
        elif isinstance(node, int | float) and not isinstance(node, bool):
            values[name] = float(node)

    walk(summary.get("checks") or {}, "evaluation")
    return values


def findings_markdown(findings: list[Finding]) -> str:
    """Findings as a Markdown list, for trackers that show text."""
    if not findings:
        return "No findings."
    return "\n".join(f"- **{f.severity}** `{f.id}`: {f.title}" for f in findings)


class Tracker(Callback):
    """A training callback that also records the run's final results, or that the run failed.

    The run calls `log_results` once the best weights are evaluated and the report is written, and `abort`
    when training or evaluation raises; a tracker stays open between the end of training and either call.
    """

    def log_results(self, run_dir: Path, metrics: dict[str, Any], findings: list[Finding], step: int) -> None:
        """Final metrics, findings and output files; then the tracker closes."""

    def abort(self, error: BaseException) -> None:
        """The run failed (or was interrupted): close, recording why where the tracker can."""

    def log_evaluation(
        self, run_dir: Path, summary: dict[str, Any], findings: list[Finding], step: int
    ) -> None:
        """`tunesmith evaluate` on a finished run: its suite numbers and files, into the run's own store."""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested recipe dict -> dotted keys with string values (lists and None rendered as text)."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def recipe_dict(recipe: Any) -> dict[str, Any]:
    if hasattr(recipe, "model_dump"):
        return dict(recipe.model_dump(mode="json"))
    return dict(recipe) if isinstance(recipe, dict) else {}
