"""Report sections of the evaluation suite: they render RUN_DIR/evaluation/<check>.json, never recompute."""

from __future__ import annotations

import json
from typing import Any

from tunesmith.diagnosis.rundata import RunData, finite
from tunesmith.report.html import Markup, join, key_values, plot, section, table, tag
from tunesmith.report.plots import COLORS, _layout

Plots = dict[str, dict[str, Any]]
TITLES = {"slices": "Slices and fairness", "calibration": "Calibration", "robustness": "Robustness",
          "latency": "Latency and throughput", "explanations": "Explanations", "baseline": "Baseline"}  # fmt: skip


def load(data: RunData, name: str) -> dict[str, Any] | None:
    path = data.run_dir / "evaluation" / f"{name}.json" if data.run_dir else None
    if path is None or not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def render(data: RunData, name: str, specs: Plots) -> Markup | None:
    """The section for check `name`, or None when the run has no result for it (the generic not-run note)."""
    result = load(data, name) if name in TITLES else None
    if result is None:
        return None
    if "skipped" in result:
        return section(name, TITLES[name], tag("p", f"Skipped: {result['skipped']}", class_="not-run"))
    body = RENDER[name](result, specs)
    return section(name, TITLES[name], body, f"On {result.get('split', 'the evaluation set')}, "
                   f"{result.get('n', '?')} examples (eval.max_examples bounds the suite).")  # fmt: skip


def _points(
    name: str, x: list[Any], y: list[Any], low: list[Any], high: list[Any], color: str
) -> dict[str, Any]:
    error = {"type": "data", "symmetric": False, "visible": True,
             "array": [h - v for v, h in zip(y, high, strict=True)], "arrayminus": [v - lo for v, lo in zip(y, low, strict=True)]}  # fmt: skip
    return {"type": "scatter", "mode": "markers", "name": name, "x": x, "y": y, "error_y": error,
            "marker": {"color": color, "size": 9}}  # fmt: skip


def slices(r: dict[str, Any], specs: Plots) -> Markup:
    parts: list[Any] = []
    overall = r.get("overall", {})
    for index, (column, col) in enumerate(r.get("columns", {}).items()):
        rows = col.get("slices", [])
        if rows:
            x = [str(s["value"]) for s in rows]
            trace = _points("accuracy (95% CI)", x, [s["accuracy"] for s in rows], [s["accuracy_ci"][0] for s in rows],
                            [s["accuracy_ci"][1] for s in rows], COLORS["test"])  # fmt: skip
            line = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": overall.get("accuracy"),
                    "y1": overall.get("accuracy"), "line": {"color": COLORS["event"], "dash": "dot"}}  # fmt: skip
            specs[f"slices-{index}"] = {"data": [trace], "layout": _layout(
                f"Accuracy per {column} (dotted: overall)", column, "accuracy", x={"type": "category"},
                y={"range": [0, 1.02]}, shapes=[line], hovermode="closest")}  # fmt: skip
            parts += [tag("h3", column), plot(f"slices-{index}")]
            parts.append(table(["value", "n", "accuracy", "macro-F1", "gap vs rest", "Holm p", "flagged"],
                               [[s["value"], s["n"], s["accuracy"], s["macro_f1"], s.get("gap"), s.get("p_holm"),
                                 "yes" if s.get("significant") else ""] for s in rows]))  # fmt: skip
        if col.get("too_small"):
            small = ", ".join(f"{s['value']} ({s['n']})" for s in col["too_small"])
            parts.append(
                tag("p", f"Too small to judge (under {r.get('min_slice_rows')} rows): {small}", class_="note")
            )
        fairness = col.get("fairness")
        if fairness:
            parts.append(tag("p", "Fairlearn MetricFrame, each class against the rest:"))
            parts.append(table(["class", "demographic-parity difference", "equalized-odds difference"],
                               [[c, v["demographic_parity_difference"], v["equalized_odds_difference"]]
                                for c, v in fairness["per_class"].items()]))  # fmt: skip
    return join(parts)


def _reliability(name: str, scores: dict[str, Any], color: str) -> dict[str, Any]:
    bins = [b for b in scores.get("bins", []) if b.get("n")]
    return {"type": "scatter", "mode": "lines+markers", "name": f"{name} (ECE {scores['ece']:.3f})",
            "x": [b["confidence"] for b in bins], "y": [b["accuracy"] for b in bins],
            "text": [f"{b['n']} examples" for b in bins], "line": {"color": color}, "marker": {"size": 7}}  # fmt: skip


def calibration(r: dict[str, Any], specs: Plots) -> Markup:
    traces = [{"type": "scatter", "mode": "lines", "name": "perfect calibration", "x": [0, 1], "y": [0, 1],
               "line": {"color": "#9ca3af", "dash": "dot"}}, _reliability("before", r["before"], COLORS["val"])]  # fmt: skip
    if r.get("after"):
        traces.append(_reliability(f"after T = {r['temperature']:.2f}", r["after"], COLORS["train"]))
    specs["reliability"] = {"data": traces, "layout": _layout(
        "Reliability diagram (15 bins)", "confidence", "accuracy", x={"range": [0, 1]}, y={"range": [0, 1.02]},
        hovermode="closest")}  # fmt: skip
    keys = ("ece", "mce", "brier", "nll", "accuracy")
    rows = [
        [k.upper() if k != "accuracy" else k, r["before"][k], (r.get("after") or {}).get(k)] for k in keys
    ]
    parts = [plot("reliability"), table(["", "before", "after temperature scaling"], rows)]
    if r.get("temperature"):
        parts.append(tag("p", f"Temperature {r['temperature']:.3f}, fitted on {r['fitted_on']['split']} "
                              f"({r['fitted_on']['n']} examples); `tunesmith predict` applies it (--uncalibrated to skip)."))  # fmt: skip
    return join(parts)


def robustness(r: dict[str, Any], specs: Plots) -> Markup:
    items = [(k, v) for k, v in r.get("perturbations", {}).items() if finite(v.get("flip_rate"))]
    parts: list[Any] = []
    if items:
        specs["flip-rate"] = {"data": [_points("flip rate (95% CI)", [k for k, _ in items], [v["flip_rate"] for _, v in items],
                                               [v["flip_rate_ci"][0] for _, v in items],
                                               [v["flip_rate_ci"][1] for _, v in items], COLORS["event"])],
                              "layout": _layout("Share of predictions flipped per perturbation", "perturbation",
                                                "flip rate", x={"type": "category"}, hovermode="closest")}  # fmt: skip
        parts.append(plot("flip-rate"))
    rows = [[k, v.get("applicable"), v.get("same_model_input"), v.get("flip_rate"), v.get("accuracy_before"),
             v.get("accuracy_after"), v.get("augment_op") or ""] for k, v in r.get("perturbations", {}).items()]  # fmt: skip
    headers = ["perturbation", "texts changed", "same tokens as the original", "flip rate", "accuracy before", "after",
               "augment op"]  # fmt: skip
    parts.append(table(headers, rows))
    examples = [[k, e["original"], e["perturbed"], e["label"], e["before"], e["after"]]
                for k, v in r.get("perturbations", {}).items() for e in v.get("examples", [])[:2]]  # fmt: skip
    if examples:
        parts += [tag("h3", "Flipped examples"), table(["perturbation", "original", "perturbed", "true", "before", "after"], examples, cls="errors")]  # fmt: skip
    edge = r.get("edge_cases", {})
    if edge:
        parts.append(tag("h3", "Edge cases"))
        parts.append(table(["case", "n", "accuracy", "accuracy (original texts)", "mean confidence", "predicted"],
                           [[k, v.get("n"), v.get("accuracy"), v.get("accuracy_original"), v.get("mean_confidence"),
                             ", ".join(f"{a} {b}" for a, b in (v.get("predicted") or {}).items())] for k, v in edge.items()]))  # fmt: skip
    return join(parts)


def latency(r: dict[str, Any], specs: Plots) -> Markup:
    variants = r.get("variants", [])
    traces = [{"type": "scatter", "mode": "markers+text", "name": v["name"], "x": [v["p50_ms"]], "y": [v["macro_f1"]],
               "text": [v["name"]], "textposition": "top center", "marker": {"size": 11}} for v in variants]  # fmt: skip
    anchor = r.get("anchor") or {}
    shapes = []
    if finite(anchor.get("p50_ms")):
        shapes.append({"type": "line", "yref": "paper", "x0": anchor["p50_ms"], "x1": anchor["p50_ms"], "y0": 0, "y1": 1,
                       "line": {"color": COLORS["event"], "dash": "dot"}})  # fmt: skip
    specs["latency"] = {"data": traces, "layout": _layout(
        "Batch-1 p50 latency against macro-F1 (dotted: transformers.pipeline)", "p50 latency (ms)", "macro-F1",
        x={"type": "log"}, hovermode="closest", shapes=shapes)}  # fmt: skip
    rows = [[v["name"], v["p50_ms"], v["p95_ms"], v["p99_ms"], *[v["throughput"].get(b) for b in ("1", "8", "32")],
             v["size_mb"], v.get("peak_memory_mb"), v["macro_f1"], v.get("agreement")] for v in variants]  # fmt: skip
    if anchor:
        rows.append(
            [
                anchor["name"],
                anchor.get("p50_ms"),
                anchor.get("p95_ms"),
                anchor.get("p99_ms"),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ]
        )
    head = [
        "variant",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "texts/s @1",
        "@8",
        "@32",
        "size MB",
        "peak RSS MB",
        "macro-F1",
        "agreement",
    ]
    return join([plot("latency"), table(head, rows), tag("p", f"Device {r.get('device')}; peak RSS MB: the "
                                                             "process's resident memory while the variant predicts "
                                                             f"(whole suite: {r.get('peak_memory_mb') or 0:.0f} MB).", class_="note")])  # fmt: skip


def _heat(tokens: list[str], scores: list[float]) -> Markup:
    top = max((abs(s) for s in scores), default=1.0) or 1.0
    spans = []
    for t, s in zip(tokens, scores, strict=True):
        alpha = min(1.0, abs(s) / top)
        rgb = "22,163,74" if s >= 0 else "220,38,38"
        spans.append(tag("span", t + " ", style=f"background: rgba({rgb},{alpha:.2f})", title=f"{s:+.3f}"))
    return tag("p", join(spans), class_="tokens")


def explanations(r: dict[str, Any], specs: Plots) -> Markup:
    parts: list[Any] = []
    top = r.get("top_tokens", {})
    traces = [{"type": "scatter", "mode": "markers", "name": c, "x": [t["token"] for t in ts[:10]],
               "y": [t["mean_attribution"] for t in ts[:10]], "marker": {"size": 9}} for c, ts in top.items() if ts]  # fmt: skip
    if traces:
        specs["top-tokens"] = {"data": traces, "layout": _layout("Tokens with the highest mean attribution per predicted class",
                                                                 "token", "mean attribution", x={"type": "category"},
                                                                 hovermode="closest")}  # fmt: skip
        parts.append(plot("top-tokens"))
    f = r.get("faithfulness") or {}
    parts.append(key_values({"method": r.get("method"), "baseline": r.get("baseline"), "steps": r.get("steps"),
                             "examples attributed again with more steps": (r.get("refined") or {}).get("examples"),
                             "max convergence delta": r.get("max_convergence_delta"),
                             f"prediction drop, top-{f.get('k')} tokens deleted": f.get("top_k_drop"),
                             f"prediction drop, {f.get('k')} random tokens deleted": f.get("random_k_drop"),
                             "faithful": f.get("faithful")}))  # fmt: skip
    for e in r.get("examples", [])[:8]:
        parts.append(
            tag(
                "h3",
                f"{e['kind']}: row {e['row']}, true {e['label']}, predicted {e['pred']} ({e['confidence']:.2f})",
            )
        )
        parts.append(_heat(e["tokens"], e["scores"]))
    return join(parts)


def baseline(r: dict[str, Any], specs: Plots) -> Markup:
    scores = r.get("scores", {})
    specs["baseline"] = {"data": [{"type": "scatter", "mode": "markers", "name": "macro-F1", "x": list(scores),
                                   "y": [s["macro_f1"] for s in scores.values()], "marker": {"size": 12}}],
                         "layout": _layout("Fine-tuned model against the TF-IDF baseline", "", "macro-F1",
                                           x={"type": "category"}, y={"range": [0, 1.02]}, hovermode="closest")}  # fmt: skip
    rows = [[name, s["accuracy"], s["macro_f1"]] for name, s in scores.items()]
    verdict = "significantly better" if r.get("significantly_better") else "not significantly better"
    return join([plot("baseline"), table(["model", "accuracy", "macro-F1"], rows),
                 tag("p", f"{r.get('baseline')}. Fine-tuning is {verdict} (paired bootstrap: {r.get('detail')}; "
                          f"p = {r.get('p_value')}).")])  # fmt: skip


RENDER = {"slices": slices, "calibration": calibration, "robustness": robustness, "latency": latency,
          "explanations": explanations, "baseline": baseline}  # fmt: skip
