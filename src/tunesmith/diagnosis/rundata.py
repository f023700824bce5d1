"""`RunData`: everything a run directory holds, read once (diagnosis rules and the report both use it)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from tunesmith.errors import UserError
from tunesmith.findings import Finding

RUN_FILES = ("config.yaml", "history.jsonl", "metrics.json")


@dataclass
class RunData:
    history: list[dict[str, Any]] = field(default_factory=list)  # history.jsonl records in order
    metrics: dict[str, Any] = field(default_factory=dict)  # metrics.json
    predictions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # split -> prediction rows
    audit: dict[str, Any] | None = None  # audit.json as written by the data doctor
    recipe: dict[str, Any] = field(default_factory=dict)  # config.yaml
    run_dir: Path | None = None

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [r for r in self.history if r.get("kind") == "step"]

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """Training epochs (1, 2, ...): the validation before the first step (epoch 0) is not one of them."""
        return [r for r in self.history if r.get("kind") == "epoch" and r.get("epoch") != 0]

    @property
    def initial(self) -> dict[str, Any] | None:
        """The validation before the first optimizer step (`"epoch": 0`), when the run recorded one."""
        return next((r for r in self.history if r.get("kind") == "epoch" and r.get("epoch") == 0), None)

    @property
    def curve_epochs(self) -> list[dict[str, Any]]:
        """Epoch records for learning curves: the initial validation (epoch 0) first, when present."""
        return [r for r in self.history if r.get("kind") == "epoch"]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r for r in self.history if r.get("kind") == "event"]

    @property
    def audit_findings(self) -> list[Finding]:
        return [Finding.from_dict(f) for f in (self.audit or {}).get("findings", [])]

    @property
    def labels(self) -> list[str]:
        return list(self.metrics.get("labels") or [])

    def setting(self, dotted: str, default: Any = None) -> Any:
        """A recipe value by dotted key (`train.lr`), or `default` when the recipe lacks it."""
        node: Any = self.recipe
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_run(run_dir: Path) -> RunData:
    """Read a run directory; missing optional files give empty fields, unreadable files a UserError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"`RUN_DIR` must be a tunesmith run directory; got {run_dir} (not a directory)")
    if not any((run_dir / name).is_file() for name in RUN_FILES):
        raise UserError(
            f"`RUN_DIR` must be a tunesmith run directory holding {', '.join(RUN_FILES)}; "
            f"got {run_dir}, which has none of them"
        )
    predictions = {}
    for split in ("validation", "test"):
        path = run_dir / "predictions" / f"{split}.jsonl"
        if path.is_file():
            predictions[split] = _read_jsonl(path)
    recipe = _read(run_dir / "config.yaml", yaml.safe_load) or {}
    return RunData(
        history=_read_jsonl(run_dir / "history.jsonl"),
        metrics=_read(run_dir / "metrics.json", json.loads) or {},
        predictions=predictions,
        audit=_read(run_dir / "audit.json", json.loads),
        recipe=recipe if isinstance(recipe, dict) else {},
        run_dir=run_dir,
    )


def _read(path: Path, parse: Any) -> Any:
    if not path.is_file():
        return None
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(
            f"{path} is not valid {path.suffix[1:].upper()}: {error}; re-run or restore it"
        ) from error


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as error:
                # A run killed mid-write leaves a torn last line: keep what was complete.
                if not handle.readline() and not line.endswith("\n"):
                    break
                raise UserError(f"{path} line {number} is not valid JSON: {error}") from error
    return records
