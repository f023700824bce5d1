"""Small HTML builders. Every data string goes through `esc`; callers pass markup only as `Markup`."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from typing import Any

import yaml


class Markup(str):
    """A string that is already HTML (built here from escaped parts) and must not be escaped again."""


def esc(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(fmt(value), quote=True))


def fmt(value: Any) -> str:
    """A value as a person reads it: floats to 4 significant digits, containers as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    if isinstance(value, dict | list):
        return json.dumps(clean_json(value), ensure_ascii=False)
    return str(value)


def clean_json(value: Any) -> Any:
    """JSON-safe copy: NaN/Inf become None (JSON has no such numbers; browsers' JSON.parse rejects them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def script_json(value: Any) -> Markup:
    """JSON safe to place inside <script type="application/json">: no `</script>` or `<!--` can appear."""
    text = json.dumps(clean_json(value), ensure_ascii=False, allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def tag(name: str, content: Any = "", **attrs: Any) -> Markup:
    rendered = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"'
        for key, value in attrs.items()
        if value is not None
    )
    return Markup(f"<{name}{rendered}>{esc(content)}</{name}>")


def join(parts: Iterable[Any]) -> Markup:
    return Markup("".join(esc(p) for p in parts))


def table(headers: list[str], rows: Iterable[list[Any]], cls: str | None = None) -> Markup:
    head = tag("tr", join(tag("th", h) for h in headers))
    body = join(tag("tr", join(tag("td", cell, class_=_num(cell)) for cell in row)) for row in rows)
    return tag("table", join([tag("thead", head), tag("tbody", body)]), class_=cls)


def _num(cell: Any) -> str | None:
    return "num" if isinstance(cell, int | float) and not isinstance(cell, bool) else None


def key_values(items: dict[str, Any], cls: str = "kv") -> Markup:
    rows = join(tag("tr", join([tag("th", k), tag("td", v, class_=_num(v))])) for k, v in items.items())
    return tag("table", tag("tbody", rows), class_=cls)


def section(section_id: str, title: str, body: Any, note: str | None = None) -> Markup:
    parts = [tag("h2", title)]
    if note:
        parts.append(tag("p", note, class_="note"))
    parts.append(body)
    return tag("section", join(parts), id=section_id)


def not_run(what: str) -> Markup:
    return tag("p", f"Not run: {what}", class_="not-run")


def plot(plot_id: str, height: int = 360) -> Markup:
    return tag("div", "", id=f"plot-{plot_id}", class_="plot", data_plot=plot_id, style=f"height:{height}px")


def patch_yaml(patch: dict[str, Any]) -> str:
    """Dotted keys -> the nested YAML a user pastes into the recipe."""
    nested: dict[str, Any] = {}
    for dotted, value in patch.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return yaml.safe_dump(nested, sort_keys=False, default_flow_style=False).rstrip()


def patch_overrides(patch: dict[str, Any]) -> str:
    """The same patch as `key=value` command-line overrides."""
    return " ".join(
        f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
        for key, value in patch.items()
    )
