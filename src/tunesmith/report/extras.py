"""Sections that later evaluation features fill: slices, calibration, robustness, latency, forgetting, tuning.

A feature provides its data as a top-level key of metrics.json named after the section (e.g.
`metrics["calibration"]`), or as `RUN_DIR/evaluation/<name>.json`; the generic renderer shows it as tables.
A feature that wants its own rendering registers it: `register_section("calibration", render)` where
`render(data: RunData) -> str | None` returns an HTML fragment (escape every data string with
`tunesmith.report.html.esc`) or None when there is nothing to show. A feature with a section of its own
(e.g. a trials comparison) registers a new name with a title: `register_section("trials", render,
title="Trials")`; it is placed after the built-in sections, in registration order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tunesmith.diagnosis.rundata import RunData
from tunesmith.report.html import Markup, join, key_values, not_run, section, table, tag

SectionRenderer = Callable[[RunData], str | None]
EXTRA_SECTIONS: dict[str, str] = {
    "slices": "Slices and fairness",
    "calibration": "Calibration",
    "robustness": "Robustness",
    "latency": "Latency and throughput",
    "explanations": "Explanations",
    "baseline": "Baseline",
    "forgetting": "Forgetting",
    "tuning": "Tuning",
}
_WHAT = {
    "slices": "per-group metrics (evaluation slices)",
    "calibration": "calibration (evaluation)",
    "robustness": "robustness checks (evaluation)",
    "latency": "latency benchmark (evaluation)",
    "explanations": "token attributions (evaluation)",
    "baseline": "TF-IDF + logistic-regression baseline (evaluation)",
    "forgetting": "forgetting measurement on a retain set",
    "tuning": "lr range test / hyper-parameter search",
}
RENDERERS: dict[str, SectionRenderer] = {}
RESERVED = {"verdict", "config", "audit", "learning-curves", "lr-schedule", "events", "gradient-flow", "per-class",
            "errors", "dynamics"}  # fmt: skip


def register_section(name: str, render: SectionRenderer, title: str | None = None) -> None:
    """Render section `name` with `render`; a name that is not built in needs a `title` (and becomes one)."""
    if name not in EXTRA_SECTIONS:
        if title is None:
            raise ValueError(
                f"`name` must be one of {', '.join(EXTRA_SECTIONS)}, or pass title= to add a new section; "
                f"got {name!r}"
            )
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name) or name in RESERVED:
            raise ValueError(
                f"`name` must be lowercase letters, digits and '-', not a core section; got {name!r}"
            )
        EXTRA_SECTIONS[name] = title
        _WHAT.setdefault(name, title.lower())
    elif title is not None:
        EXTRA_SECTIONS[name] = title
    RENDERERS[name] = render


def extra_data(data: RunData, name: str) -> Any:
    if data.metrics.get(name) is not None:
        return data.metrics[name]
    path = data.run_dir / "evaluation" / f"{name}.json" if data.run_dir else None
    if path is not None and path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return None


def render_extra(data: RunData, name: str) -> Markup:
    title = EXTRA_SECTIONS[name]
    custom = RENDERERS.get(name)
    if custom is not None:
        fragment = custom(data)
        return section(name, title, Markup(fragment) if fragment else not_run(_WHAT[name]))
    value = extra_data(data, name)
    if value is None or value == {} or value == []:
        return section(name, title, not_run(_WHAT[name]))
    return section(name, title, generic(value))


def generic(value: Any, depth: int = 0) -> Markup:
    """Lists of flat dicts as tables, dicts of dicts as one table row per key, other dicts as key/value."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        headers = list(dict.fromkeys(k for v in value for k in v))
        return table(headers, [[v.get(h) for h in headers] for v in value])
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()) and depth < 2:
        inner = list(value.values())
        if all(not any(isinstance(x, dict | list) for x in v.values()) for v in inner):
            headers = list(dict.fromkeys(k for v in inner for k in v))
            return table(["", *headers], [[k, *[v.get(h) for h in headers]] for k, v in value.items()])
        return join(join([tag("h3", k), generic(v, depth + 1)]) for k, v in value.items())
    if isinstance(value, dict):
        return key_values(value)
    return tag("pre", json.dumps(value, indent=2, default=str))
