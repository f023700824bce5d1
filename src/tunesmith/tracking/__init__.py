"""Experiment trackers: `report_to: [jsonl, tensorboard, mlflow]`. jsonl (history.jsonl) is the loop's own."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

from tunesmith.errors import UserError
from tunesmith.tracking.common import Tracker, flatten, metric_name, scalars
from tunesmith.tracking.mlflow_tracker import MLflowTracker
from tunesmith.tracking.tensorboard_tracker import TensorBoardTracker

__all__ = [
    "MLflowTracker", "TensorBoardTracker", "Tracker", "aborted_on_error", "flatten", "make_trackers",
    "metric_name", "scalars",
]  # fmt: skip

INSTALL_HINT = "pip install 'tunesmith[tracking]'"
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
KNOWN = ("jsonl", "tensorboard", "mlflow")


def make_trackers(report_to: list[str]) -> list[Tracker]:
    """One callback per tracker named in `report_to` (jsonl needs none: the loop writes history.jsonl)."""
    unknown = [name for name in report_to if name not in KNOWN]
    if unknown:
        raise UserError(f"`report_to` must list only {', '.join(KNOWN)}; got {', '.join(unknown)}")
    missing = [
        name for name in dict.fromkeys(report_to) if name in _PACKAGES and not _installed(_PACKAGES[name])
    ]
    if missing:
        names = " and ".join(repr(_PACKAGES[name]) for name in missing)
        raise UserError(
            f"report_to: {', '.join(missing)} needs the {names} package; install it with {INSTALL_HINT} "
            "or remove it from `report_to`"
        )
    trackers: list[Tracker] = []
    for name in dict.fromkeys(report_to):
        if name == "tensorboard":
            trackers.append(TensorBoardTracker())
        elif name == "mlflow":
            trackers.append(MLflowTracker())
    return trackers


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


@contextmanager
def aborted_on_error(trackers: list[Tracker]) -> Iterator[None]:
    """Trackers learn that the run failed (MLflow marks it FAILED, or KILLED on Ctrl-C), then it re-raises."""
    try:
        yield
    except BaseException as error:
        for tracker in trackers:
            tracker.abort(error)
        raise
