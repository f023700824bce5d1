"""The run report's Tuning section: the LR range test curve, cross-validation and the study a trial is in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith.diagnosis.rundata import RunData
from tunesmith.report.html import join, key_values, table, tag
from tunesmith.tuning.pages import inline_plot, lr_find_spec

CV_FILE = "cv.json"


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except ValueError:
        return None


def render(data: RunData) -> str | None:
    if data.run_dir is None:
        return None
    parts: list[Any] = []
    lr_find = _read(data.run_dir / "lr_find.json")
    if lr_find:
        from tunesmith.tuning.lr_auto import summary

        parts += [tag("h3", "LR range test"),
                  tag("p", f"{lr_find.get('used_for', 'lr-find')}: suggestion {lr_find['suggestion']:.3g} "
                      f"({lr_find['method']}; by default the valley, or rise when the loss shows no descent "
                      "beyond its noise: see `tunesmith lr-find --help`)."),
                  key_values(summary(lr_find)), inline_plot("lr-find", lr_find_spec(lr_find))]  # fmt: skip
    cv = _read(data.run_dir / CV_FILE)
    if cv:
        rows = [[k, v["mean"], v["std"], ", ".join(f"{x:.4g}" for x in v["values"])]
                for k, v in cv["summary"].items()]  # fmt: skip
        parts += [
            tag("h3", f"Cross-validation ({cv['k']} folds)"),
            table(["metric", "mean", "std", "folds"], rows),
        ]
    study = _read(data.run_dir.parent.parent / "tune.json") if data.run_dir.parent.name == "trials" else None
    if study:
        parts += [
            tag("h3", "Hyper-parameter search"),
            tag(
                "p",
                f"This run is trial {data.run_dir.name} of study {study.get('study')}; "
                f"trials table and optimisation history: {data.run_dir.parent.parent / 'tune.html'}",
            ),
        ]
        # fmt: skip
    return str(join(parts)) if parts else None
