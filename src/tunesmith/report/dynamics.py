"""The report's training-dynamics section: the dataset cartography map (confidence against variability per
training row, coloured by area under the margin) and the rows flagged as likely mislabelled."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesmith.diagnosis.dynamics import (
    AUM_THRESHOLD,
    HARD_CONFIDENCE,
    Dynamics,
    audit_label_error_rows,
    load_dynamics,
)
from tunesmith.diagnosis.rundata import RunData
from tunesmith.report.html import Markup, join, not_run, plot, section, tag
from tunesmith.report.plots import _layout

SECTION_ID, TITLE = "dynamics", "Training dynamics"
MAX_POINTS = 20_000  # beyond: a seeded sample plus every flagged row, so the page stays light
NOTE = (
    "Each point is a training row: its mean probability of the given label over the epochs (confidence) "
    "against how much that probability moved (variability), after Swayamdipta et al. (2020). Easy rows sit "
    "top left, ambiguous ones to the right, and the hard-to-learn corner at the bottom left is where "
    f"mislabelled rows gather. Red: flagged (area under the margin < {AUM_THRESHOLD:g} and confidence "
    f"< {HARD_CONFIDENCE:g}, Pleiss et al. 2020); outlined: also flagged by the data audit."
)


def cartography(dyn: Dynamics, audit_rows: set[int] | None) -> dict[str, Any]:
    conf, var, aum = dyn.confidence, dyn.variability, dyn.aum
    flagged = dyn.flagged()
    shown = np.nonzero(np.isfinite(conf))[0]
    if len(shown) > MAX_POINTS:
        rng = np.random.default_rng(0)
        keep = rng.choice(shown, MAX_POINTS, replace=False)
        shown = np.union1d(keep, np.nonzero(flagged)[0])
    kind = "scattergl" if len(shown) > 5000 else "scatter"
    traces = []
    for name, mask, color in (
        ("learned", ~flagged, "#2563eb"),
        ("flagged: likely mislabelled", flagged, "#dc2626"),
    ):
        idx = shown[mask[shown]]
        if not len(idx):
            continue
        line = [2 if audit_rows is not None and int(dyn.rows[i]) in audit_rows else 0 for i in idx]
        traces.append({
            "type": kind, "mode": "markers", "name": name,
            "x": [round(float(var[i]), 4) for i in idx], "y": [round(float(conf[i]), 4) for i in idx],
            "text": [f"row {int(dyn.rows[i])} · AUM {float(aum[i]):.2f}" for i in idx],
            "hovertemplate": "%{text}<br>confidence %{y:.3f}<br>variability %{x:.3f}<extra></extra>",
            "marker": {"color": color, "size": 6, "opacity": 0.7, "line": {"width": line, "color": "#111827"}},
        })  # fmt: skip
    layout = _layout(
        f"Dataset cartography ({dyn.epochs} epochs)", "variability (std of p(given label))",
        "confidence (mean p(given label))", y={"range": [0, 1.02]}, hovermode="closest",
    )  # fmt: skip
    return {"data": traces, "layout": layout}


def dynamics_section(data: RunData, specs: dict[str, dict[str, Any]]) -> Markup:
    dyn = load_dynamics(data.run_dir)
    if isinstance(dyn, str):
        return section(SECTION_ID, TITLE, not_run(f"training dynamics {dyn}"))
    if dyn.epochs == 0 or not np.isfinite(dyn.confidence).any():
        return section(SECTION_ID, TITLE, not_run("training dynamics not recorded: no example was seen"))
    specs["cartography"] = cartography(dyn, audit_label_error_rows(data))
    flagged = int(dyn.flagged().sum())
    summary = tag(
        "p", f"{flagged} of {int(np.isfinite(dyn.aum).sum())} training rows flagged as likely mislabelled "
        f"(median area under the margin {float(np.nanmedian(dyn.aum)):.2f} over {dyn.epochs} epochs)."
    )  # fmt: skip
    return section(
        SECTION_ID, TITLE, join([summary, tag("div", plot("cartography", 480), class_="plots")]), NOTE
    )
