"""Self-contained HTML pages for tuning results (lr_find.html, tune.html, compare.html) and the plot specs
shared with the run report's Tuning section. plotly.js is inlined once; the pages load nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.fileio import write_text_atomic
from tunesmith.report.html import Markup, esc, join, script_json, tag
from tunesmith.report.plots import BASE_LAYOUT, GRID
from tunesmith.report.render import BOOT, CSP
from tunesmith.report.style import CSS

Spec = dict[str, Any]


def layout(title: str, x_title: str, y_title: str, *, x_log: bool = False, **extra: Any) -> dict[str, Any]:
    xaxis = {**GRID, "title": {"text": x_title}, **({"type": "log"} if x_log else {})}
    return {**BASE_LAYOUT, "title": {"text": title, "x": 0, "font": {"size": 14}}, "xaxis": xaxis,
            "yaxis": {**GRID, "title": {"text": y_title}}, "hovermode": "closest", **extra}  # fmt: skip


def lr_find_spec(data: dict[str, Any]) -> Spec:
    """The range-test curve: raw and smoothed loss against the learning rate (log axis), picks marked."""
    traces: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "markers", "name": "loss (batch)", "x": data["lrs"], "y": data["losses"],
         "marker": {"size": 4, "color": "#93c5fd"}},
        {"type": "scatter", "mode": "lines", "name": "smoothed", "x": data["lrs"], "y": data["smoothed"],
         "line": {"color": "#2563eb", "width": 2}},
    ]  # fmt: skip
    colors = {"valley": "#16a34a", "steep": "#ea580c", "minimum": "#7c3aed", "rise": "#0891b2"}
    shapes = []
    for name, lr in data["candidates"].items():
        chosen = " (suggestion)" if name == data["method"] else ""
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": lr,
                "x1": lr,
                "y0": 0,
                "y1": 1,
                "line": {"color": colors.get(name, "#dc2626"), "dash": "solid" if chosen else "dot"},
            }
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{name}: {lr:.2e}{chosen}",
                "x": [lr],
                "y": [min(data["smoothed"])],
                "marker": {"color": colors.get(name, "#dc2626"), "size": 9},
            }
        )
    # fmt: skip
    return {"data": traces, "layout": layout("LR range test", "learning rate", "training loss", x_log=True,
                                             shapes=shapes)}  # fmt: skip


def inline_plot(plot_id: str, spec: Spec, height: int = 360) -> Markup:
    """A plot inside the run report: drawn once the report's plotly.js (loaded at the end) is there."""
    div = tag("div", "", id=f"plot-{plot_id}", class_="plot", style=f"height:{height}px")
    script = (
        "document.addEventListener('DOMContentLoaded', function () {"
        f"var s = {script_json(spec)}; var d = document.getElementById('plot-{plot_id}');"
        "if (window.Plotly && d) { Plotly.newPlot(d, s.data, s.layout, {responsive: true, displaylogo: false}); }"
        "});"
    )
    return join([div, Markup(f"<script>{script}</script>")])


def page(title: str, body: list[Any], specs: dict[str, Spec]) -> str:
    """A whole page: `body` markup with `<div data-plot=ID>` placeholders filled from `specs`."""
    from plotly.offline import get_plotlyjs

    head = join([
        Markup('<meta charset="utf-8">'),
        Markup('<meta name="viewport" content="width=device-width, initial-scale=1">'),
        Markup(f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'),
        tag("title", title), Markup(f"<style>{CSS}</style>"),
    ])  # fmt: skip
    scripts = join([
        Markup(f"<script>{get_plotlyjs()}</script>"),
        Markup(f'<script type="application/json" id="plot-specs">{script_json(specs)}</script>'),
        Markup(f"<script>{BOOT}</script>"),
    ])  # fmt: skip
    main = join(
        [
            tag("header", tag("h1", title)),
            tag("main", join(body)),
            tag("footer", "Written by tunesmith. Self-contained: opens offline, loads nothing."),
            scripts,
        ]
    )
    # fmt: skip
    return f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head><body>{main}</body></html>\n'


def write_page(target: Path, text: str) -> Path:
    return write_text_atomic(target, text)
