"""Plotly figure specs (plain dicts: data + layout) built from a run's history and metrics; never recomputed."""

from __future__ import annotations

import math
from typing import Any

from tunesmith.diagnosis.rundata import RunData, finite

Spec = dict[str, Any]
COLORS = {"train": "#2563eb", "val": "#ea580c", "test": "#16a34a", "lr": "#7c3aed", "event": "#dc2626"}
GRID = {"gridcolor": "#e5e7eb", "zeroline": False}
BASE_LAYOUT: dict[str, Any] = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "font": {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12},
    "legend": {"orientation": "h", "y": -0.25},
    "hovermode": "x unified",
    "paper_bgcolor": "white",
    "plot_bgcolor": "white",
}


def _layout(
    title: str,
    x_title: str,
    y_title: str,
    x: dict[str, Any] | None = None,
    y: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Shared layout; `x` / `y` add axis settings (e.g. a log scale) to the common ones."""
    return {
        **BASE_LAYOUT,
        "title": {"text": title, "x": 0, "font": {"size": 14}},
        "xaxis": {**GRID, "title": {"text": x_title}, **(x or {})},
        "yaxis": {**GRID, "title": {"text": y_title}, **(y or {})},
        **extra,
    }


def _line(name: str, x: list[Any], y: list[Any], color: str, **extra: Any) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines+markers", "name": name, "x": x, "y": y,
            "line": {"color": color, **extra.pop("line", {})}, "marker": {"size": 5}, **extra}  # fmt: skip


def _xy(records: list[dict[str, Any]], x: str, y: str) -> tuple[list[Any], list[float | None]]:
    pairs = [(r.get(x), r.get(y)) for r in records if y in r]
    return [p[0] for p in pairs], [float(v) if finite(v) else None for _, v in pairs]


def _event_lines(data: RunData) -> list[dict[str, Any]]:
    """Vertical markers where the NaN guard acted, so a jump in the curves has its cause beside it."""
    line = {"color": COLORS["event"], "dash": "dot", "width": 1}
    return [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": e["step"],
            "x1": e["step"],
            "y0": 0,
            "y1": 1,
            "line": line,
        }
        for e in data.events
        if str(e.get("event", "")).startswith("nan_") and finite(e.get("step"))
    ]


def step_loss(data: RunData) -> Spec | None:
    steps, losses = _xy(data.steps, "step", "loss")
    if not steps:
        return None
    traces = [_line("training loss (logged window)", steps, losses, COLORS["train"])]
    epoch_steps, val = _xy(data.curve_epochs, "step", "val_loss")
    if epoch_steps:
        marker = {"color": COLORS["val"], "size": 10, "symbol": "diamond"}
        traces.append({"type": "scatter", "mode": "markers", "name": "validation loss (end of epoch)",
                       "x": epoch_steps, "y": val, "marker": marker})  # fmt: skip
    layout = _layout("Loss per logged step", "optimizer step", "loss", shapes=_event_lines(data))
    return {"data": traces, "layout": layout}


def epoch_loss(data: RunData) -> Spec | None:
    traces = []
    x, y = _xy(data.epochs, "epoch", "train_loss")
    if x:
        traces.append(_line("train", x, y, COLORS["train"]))
    with_val = [r for r in data.curve_epochs if "val_loss" in r]
    x, y = _xy(with_val, "epoch", "val_loss")
    if x:
        se = [2 * float(r["val_loss_se"]) if finite(r.get("val_loss_se")) else 0.0 for r in with_val]
        error = {"type": "data", "array": se, "visible": True}
        traces.append(_line("validation (± 2 SE)", x, y, COLORS["val"], error_y=error))
    if not traces:
        return None
    return {"data": traces, "layout": _layout("Loss per epoch", "epoch", "loss", x={"dtick": 1})}


def epoch_metrics(data: RunData) -> Spec | None:
    traces = []
    for split in ("train", "val"):
        for metric, dash in (("macro_f1", "solid"), ("accuracy", "dot")):
            x, y = _xy(data.curve_epochs, "epoch", f"{split}_{metric}")
            if x:
                traces.append(_line(f"{split} {metric}", x, y, COLORS[split], line={"dash": dash}))
    if not traces:
        return None
    layout = _layout("Metrics per epoch", "epoch", "score", x={"dtick": 1}, y={"range": [0, 1.02]})
    return {"data": traces, "layout": layout}


def planned_lr(data: RunData, max_points: int = 4000) -> tuple[list[int], list[float]] | None:
    """The recipe's schedule at every optimizer step (1-based), computed with the loop's own scheduler, so
    warmup shows however sparsely the lr was logged; None when the recipe or step count is not known."""
    from tunesmith.config.schema import TrainConfig

    train = data.recipe.get("train")
    per_epoch = [r["step"] / r["epoch"] for r in data.steps if finite(r.get("step")) and finite(r.get("epoch"))
                 and r["epoch"] > 0]  # fmt: skip
    if not isinstance(train, dict) or not finite(train.get("lr")) or not per_epoch:
        return None
    try:
        cfg = TrainConfig.model_validate(train)
    except ValueError:
        return None
    total = max(1, round(per_epoch[-1] * cfg.epochs))
    import torch

    from tunesmith.training.optim import make_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=float(train["lr"]))
    scheduler = make_scheduler(optimizer, cfg, total)
    stride = max(1, total // max_points)
    steps, lrs = [], []
    for step in range(1, total + 1):
        if step % stride == 0 or step <= 200 or step == total:
            steps.append(step)
            lrs.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
    return steps, lrs


def lr_schedule(data: RunData) -> Spec | None:
    steps, lrs = _xy(data.steps, "step", "lr")
    if not steps:
        return None
    traces: list[dict[str, Any]] = []
    try:
        planned = planned_lr(data)
    except (ValueError, RuntimeError, TypeError):  # a recipe the scheduler cannot rebuild: logged points only
        planned = None
    if planned is not None:
        traces.append({"type": "scatter", "mode": "lines", "name": "schedule (every step, from the recipe)",
                       "x": planned[0], "y": planned[1], "line": {"color": COLORS["lr"]}})  # fmt: skip
    traces.append({"type": "scatter", "mode": "markers" if planned else "lines", "name": "logged learning rate",
                   "x": steps, "y": lrs, "line": {"color": COLORS["lr"], "shape": "hv"},
                   "marker": {"color": "#111827", "size": 5}})  # fmt: skip
    layout = _layout(
        "Learning rate (first parameter group)", "optimizer step", "learning rate",
        y={"exponentformat": "e"}, shapes=_event_lines(data),
    )  # fmt: skip
    return {"data": traces, "layout": layout}


def layer_sort_key(layer: str) -> tuple[int, int, int, str]:
    """embeddings, block.0 .. block.N, decoder.block.0 .., head: input to output (GradientMonitor's names)."""
    if layer == "embeddings":
        return (0, 0, 0, "")
    number = layer.rsplit(".", 1)[-1]
    if layer.startswith(("block.", "decoder.block.")) and number.isdigit():
        return (1, int(layer.startswith("decoder.")), int(number), "")
    return (2, 0, 0, layer)


def _log10(value: Any) -> float | None:
    return math.log10(value) if finite(value) and value > 0 else None


def layer_heatmap(data: RunData, prefix: str, title: str, colorbar: str) -> Spec | None:
    records = [r for r in data.steps if any(k.startswith(prefix) for k in r)]
    layers = sorted(
        {k[len(prefix) :] for r in records for k in r if k.startswith(prefix)}, key=layer_sort_key
    )
    if not records:
        return None
    trace = {
        "type": "heatmap",
        "x": [r.get("step") for r in records],
        "y": layers,
        "z": [[_log10(r.get(prefix + layer)) for r in records] for layer in layers],
        "colorscale": "Viridis",
        "colorbar": {"title": {"text": colorbar}},
        "hoverongaps": False,
        "hovertemplate": "step %{x}<br>%{y}<br>" + colorbar + " %{z:.2f}<extra></extra>",
    }
    layout = _layout(
        title, "optimizer step", "", y={"type": "category", "automargin": True}, hovermode="closest"
    )
    return {"data": [trace], "layout": layout}


def grad_norm_line(data: RunData) -> Spec | None:
    steps, norms = _xy(data.steps, "step", "grad_norm")
    if not any(v is not None for v in norms):
        return None
    trace = {"type": "scatter", "mode": "lines", "name": "global gradient norm", "x": steps, "y": norms,
             "line": {"color": COLORS["train"]}}  # fmt: skip
    layout = _layout("Global gradient norm (before clipping)", "optimizer step", "norm", y={"type": "log"})
    return {"data": [trace], "layout": layout}


def confusion(labels: list[str], matrix: list[list[int]], split: str) -> Spec:
    """Cells coloured by the share of the true class (row), labelled with counts."""
    trace = {
        "type": "heatmap",
        "x": labels,
        "y": labels,
        "z": [[v / max(sum(row), 1) for v in row] for row in matrix],
        "text": matrix,
        "texttemplate": "%{text}",
        "colorscale": "Blues",
        "reversescale": True,
        "zmin": 0,
        "zmax": 1,
        "colorbar": {"title": {"text": "share of row"}},
        "hovertemplate": "true %{y}<br>predicted %{x}<br>%{text} examples<extra></extra>",
    }
    layout = _layout(
        f"Confusion matrix ({split})", "predicted", "true",
        x={"type": "category", "automargin": True}, y={"type": "category", "autorange": "reversed", "automargin": True},
        hovermode="closest",
    )  # fmt: skip
    return {"data": [trace], "layout": layout}
