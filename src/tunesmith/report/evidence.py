"""A finding's evidence as a person reads it: example rows as a table, numbers with their unit, lists compact.

No JSON dumps: a list of row dicts becomes a table (row, text excerpt, label, the other split's row, scores),
a list of values a short comma list, a flat dict `key: value` pairs; shares read as percentages, seconds,
megabytes and ratios carry their unit.
"""

from __future__ import annotations

import math
from typing import Any

from tunesmith.report.html import Markup, join, table, tag

TEXT_CHARS = 160
LIST_ITEMS = 12
HEADERS = {"row": "row", "text": "text", "label": "label", "near_row": "other row", "near_text": "other text",
           "other_row": "other split's row", "other_text": "other text", "other_split": "other split"}  # fmt: skip


def number(key: str, value: float) -> str:
    """`value` with the unit its key implies."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    k = key.lower()
    if ("share" in k or k.endswith("_rate")) and abs(value) <= 1:
        return f"{100 * value:.3g}%"
    if k.endswith("_s") or k.endswith("time_s"):
        return f"{value:.3g} s"
    if k.endswith("_mb"):
        return f"{value:,.0f} MB"
    if k.endswith(("_over_start", "_over_chance", "_vs_typical", "ratio")) and "update_ratio" not in k:
        return f"{value:.3g}×"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def scalar(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return number(key, value)
    text = " ".join(str(value).split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def compact(key: str, values: list[Any]) -> str:
    shown = ", ".join(scalar(key, v) for v in values[:LIST_ITEMS])
    return shown + (f" (+{len(values) - LIST_ITEMS} more)" if len(values) > LIST_ITEMS else "")


def rows_table(items: list[dict[str, Any]]) -> Markup:
    keys = list(dict.fromkeys(k for item in items for k in item))
    keys.sort(key=lambda k: list(HEADERS).index(k) if k in HEADERS else len(HEADERS))
    headers = [HEADERS.get(k, k.replace("_", " ")) for k in keys]
    body = [[_cell(k, item.get(k)) for k in keys] for item in items]
    return table(headers, body, cls="evidence-rows")


def _cell(key: str, value: Any) -> Any:
    if isinstance(value, list):
        return compact(key, value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {scalar(k, v)}" for k, v in value.items())
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and key in ("row", "near_row", "other_row")
    ):
        return value  # right-aligned, no unit
    return scalar(key, value)


def evidence_view(evidence: dict[str, Any]) -> Markup:
    """Key/value table of the scalars and short lists, then one table per list of row dicts."""
    pairs, tables = [], []
    for key, value in evidence.items():
        name = key.replace("_", " ")
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.append(join([tag("div", name, class_="label"), rows_table(value)]))
        elif isinstance(value, list):
            pairs.append([name, compact(key, value)])
        elif isinstance(value, dict):
            pairs.append([name, ", ".join(f"{k}: {scalar(k, v) if not isinstance(v, list | dict) else _cell(k, v)}"
                                          for k, v in value.items())])  # fmt: skip
        else:
            pairs.append([name, scalar(key, value)])
    kv = tag("table", tag("tbody", join(tag("tr", join([tag("th", k), tag("td", v)])) for k, v in pairs)),
             class_="kv") if pairs else Markup("")  # fmt: skip
    return join([kv, *tables])
