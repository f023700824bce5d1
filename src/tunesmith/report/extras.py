"""Sections that later evaluation features fill: slices, calibration, robustness, latency, forgetting, tuning.

A feature provides its data as a top-level key of metrics.json named after the section (e.g.
`metrics["calibration"]`), or as `RUN_DIR/evaluation/<name>.json`; the generic renderer shows it as tables.
A feature that wants its own rendering registers it: `register_section("calibration", render)` where
`render(data: RunData) -> str | None` returns an HTML fragment (escape every data string with
`tunesmith.report.html.esc`) or None when there is nothing to show.
"""

from __future__ import annotations

import json
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
    "forgetting": "Forgetting",
    "tuning": "Tuning",
}
_WHAT = {
    "slices": "per-group metrics (evaluation slices)",
    "calibration": "calibration (evaluation)",
    "robustness": "robustness checks (evaluation)",
    "latency": "latency benchmark (evaluation)",
    "forgetting": "forgetting measurement on a retain set",
    "tuning": "lr range test / hyper-parameter search",
}
RENDERERS: dict[str, SectionRenderer] = {}


def register_section(name: str, render: SectionRenderer) -> None:
    if name not in EXTRA_SECTIONS:
        raise ValueError(f"`name` must be one of {', '.join(EXTRA_SECTIONS)}; got {name!r}")
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
