"""Experiment trackers: `report_to: [jsonl, tensorboard, mlflow]`. jsonl (history.jsonl) is the loop's own."""

from __future__ import annotations

import importlib.util

from tunesmith.errors import UserError
from tunesmith.tracking.common import flatten, metric_name, scalars
from tunesmith.tracking.mlflow_tracker import MLflowTracker
from tunesmith.tracking.tensorboard_tracker import TensorBoardTracker
from tunesmith.training.callbacks.base import Callback

__all__ = ["MLflowTracker", "TensorBoardTracker", "flatten", "make_trackers", "metric_name", "scalars"]

INSTALL_HINT = "pip install 'tunesmith[tracking]'"
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
KNOWN = ("jsonl", "tensorboard", "mlflow")


def make_trackers(report_to: list[str]) -> list[Callback]:
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
    trackers: list[Callback] = []
    for name in dict.fromkeys(report_to):
        if name == "tensorboard":
            trackers.append(TensorBoardTracker())
        elif name == "mlflow":
            trackers.append(MLflowTracker())
    return trackers


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None
