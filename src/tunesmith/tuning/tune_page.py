"""tune.html: the trials table and the optimisation history of a study, from tune.json's content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.report.html import join, key_values, plot, section, table, tag
from tunesmith.tuning.pages import Spec, layout, page, write_page

STATE_COLORS = {"complete": "#2563eb", "pruned": "#9ca3af", "fail": "#dc2626", "running": "#f59e0b",
                "waiting": "#f59e0b"}  # fmt: skip


def history_spec(summary: dict[str, Any]) -> Spec:
    """Objective per trial (pruned trials at their last reported value) and the running best."""
    maximize = summary["direction"] == "maximize"
    traces: list[dict[str, Any]] = []
    for state, color in STATE_COLORS.items():
        rows = [t for t in summary["trials"] if t["state"] == state]
        xs, ys = [], []
        for t in rows:
            value = t["value"] if t["value"] is not None else _last(t["intermediate"])
            if value is not None:
                xs.append(t["number"])
                ys.append(value)
        if xs:
            traces.append({"type": "scatter", "mode": "markers", "name": state, "x": xs, "y": ys,
                           "marker": {"color": color, "size": 8}})  # fmt: skip
    best_x, best_y, best = [], [], None
    for t in sorted(summary["trials"], key=lambda t: t["number"]):
        if t["state"] == "complete" and t["value"] is not None:
            if best is None or (t["value"] > best if maximize else t["value"] < best):
                best = t["value"]
            best_x.append(t["number"])
            best_y.append(best)
    if best_x:
        traces.append({"type": "scatter", "mode": "lines", "name": "best so far", "x": best_x, "y": best_y,
                       "line": {"color": "#16a34a", "shape": "hv"}})  # fmt: skip
    return {"data": traces, "layout": layout("Optimisation history", "trial", summary["metric"])}


def curves_spec(summary: dict[str, Any]) -> Spec:
    """The per-epoch validation metric of every trial: where the pruner cut them off."""
    traces = [
        {"type": "scatter", "mode": "lines+markers", "name": f"trial {t['number']} ({t['state']})",
         "x": [int(k) for k in t["intermediate"]], "y": list(t["intermediate"].values()),
         "line": {"color": STATE_COLORS.get(t["state"], "#6b7280"), "width": 1}, "marker": {"size": 4}}
        for t in summary["trials"] if t["intermediate"]
    ]  # fmt: skip
    return {"data": traces, "layout": layout("Validation metric per epoch", "epoch", summary["metric"],
                                             showlegend=False)}  # fmt: skip


def param_specs(summary: dict[str, Any]) -> dict[str, Spec]:
    specs: dict[str, Spec] = {}
    done = [t for t in summary["trials"] if t["state"] == "complete" and t["value"] is not None]
    for i, (key, spec) in enumerate(summary["space"].items()):
        xs = [t["params"].get(key) for t in done]
        x_type = "log" if spec.get("log") else ("category" if spec["type"] == "categorical" else "linear")
        trace = {
            "type": "scatter",
            "mode": "markers",
            "name": key,
            "x": xs,
            "y": [t["value"] for t in done],
            "text": [f"trial {t['number']}" for t in done],
            "marker": {"size": 8, "color": "#2563eb"},
        }
        lay = layout(f"{summary['metric']} against {key}", key, summary["metric"])
        lay["xaxis"]["type"] = x_type
        specs[f"param-{i}"] = {"data": [trace], "layout": lay}  # fmt: skip
    return specs


def _last(intermediate: dict[str, float]) -> float | None:
    return list(intermediate.values())[-1] if intermediate else None


def render_tune_page(target: Path, summary: dict[str, Any]) -> Path:
    specs = {"history": history_spec(summary), "curves": curves_spec(summary), **param_specs(summary)}
    keys = list(summary["space"])
    rows = [[t["number"], t["state"], t["value"], *[t["params"].get(k) for k in keys], t["epochs"],
             t.get("duration_s"), t.get("run_dir") or "", t.get("error") or ""]
            for t in sorted(summary["trials"], key=lambda t: t["number"])]  # fmt: skip
    best = summary.get("best")
    overview = {"study": summary["study"], "storage": summary["storage"], "objective": summary["metric"],
                "direction": summary["direction"], "sampler": summary["sampler"], "pruner": summary["pruner"],
                **{f"trials {k}": v for k, v in summary["counts"].items() if v},
                "best trial": best["number"] if best else None, "best value": best["value"] if best else None,
                "best recipe": best["recipe"] if best else None}  # fmt: skip
    body = [
        section("overview", "Study", key_values(overview)),
        section("history", "Optimisation history", join([plot("history"), plot("curves")])),
        section("params", "Parameters", join(plot(k) for k in specs if k.startswith("param-"))),
        section(
            "trials",
            "Trials",
            table(["trial", "state", summary["metric"], *keys, "epochs", "seconds", "run", "error"], rows),
        ),  # fmt: skip
    ]
    if best:
        body.insert(1, tag("p", f"Best: trial {best['number']} with {summary['metric']} {best['value']:.4g}; "
                                f"run it again with `tunesmith run {best['recipe']}`."))  # fmt: skip
    return write_page(target, page(f"tunesmith tune · {summary['study']}", body, specs))
