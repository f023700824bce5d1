"""The report's sections, each a function of RunData (+ findings) returning one <section> of HTML."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tunesmith.diagnosis.rundata import RunData, finite
from tunesmith.findings import SEVERITY_ORDER, Finding, worst_severity
from tunesmith.report import plots
from tunesmith.report.evidence import evidence_view
from tunesmith.report.html import (
    Markup,
    join,
    not_run,
    patch_overrides,
    patch_yaml,
    plot,
    section,
    table,
    tag,
)

Plots = dict[str, dict[str, Any]]
TOP_ERRORS = 15
TEXT_CHARS = 400
VERDICTS = {
    "error": ("bad", "Problems found: fix the errors below before trusting this model."),
    "warning": ("warn", "Usable, with warnings: the findings below say what to change."),
    None: ("good", "Healthy: the diagnosis found no problems."),
}


def verdict(data: RunData, findings: list[Finding]) -> Markup:
    worst = worst_severity([f for f in findings if f.severity != "info"])
    cls, text = VERDICTS[worst]
    counts = Counter(f.severity for f in findings)
    summary = ", ".join(
        f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}" for s in ("error", "warning", "info")
    )
    parts = [tag("div", join([tag("strong", text), tag("span", f" {summary or 'no findings'}")]),
                 class_=f"verdict {cls}"), headline(data)]  # fmt: skip
    ordered = sorted(findings, key=lambda f: -SEVERITY_ORDER[f.severity])
    parts.extend(finding_card(f) for f in ordered)
    return section("verdict", "Verdict and findings", join(parts))


def headline(data: RunData) -> Markup:
    m = data.metrics
    items: dict[str, Any] = {}
    for split in ("validation", "test"):
        if isinstance(m.get(split), dict):
            items[f"{split} accuracy"] = m[split].get("accuracy")
            items[f"{split} macro-F1"] = m[split].get("macro_f1")
    headline_keys = ("best_epoch", "epochs_run", "stop_reason", "precision", "world_size", "trainable_params")
    for key in (*headline_keys, "total_params"):
        if key in m:
            items[key.replace("_", " ")] = m[key]
    if finite(m.get("train_time_s")):
        items["train time"] = f"{m['train_time_s']:.1f} s"
    tiles = [tag("div", join([tag("div", v, class_="value"), tag("div", k, class_="name")]), class_="tile")
             for k, v in items.items()]  # fmt: skip
    return tag("div", join(tiles), class_="headline") if tiles else Markup("")


def finding_card(f: Finding) -> Markup:
    parts: list[Any] = [
        tag(
            "div",
            join(
                [
                    tag("span", f.severity, class_=f"badge {f.severity}"),
                    tag("span", f.title, class_="title"),
                    tag("code", f.id, class_="fid"),
                ]
            ),
            class_="finding-head",
        ),  # fmt: skip
    ]
    if f.recommendation:
        parts.append(tag("p", f.recommendation, class_="recommendation"))
    if f.config_patch:
        parts.append(tag("div", join([
            tag("div", "Recipe change", class_="label"), tag("pre", patch_yaml(f.config_patch), class_="yaml"),
            tag("div", join(["or on the command line: ", tag("code", patch_overrides(f.config_patch))]),
                class_="cli"),
        ]), class_="patch"))  # fmt: skip
    if f.evidence:
        parts.append(
            tag("details", join([tag("summary", "Evidence"), evidence_view(f.evidence)]), open="open")
        )
    if f.rows:
        shown = ", ".join(str(r) for r in f.rows[:30]) + (" …" if len(f.rows) > 30 else "")
        parts.append(tag("p", f"{len(f.rows)} affected rows: {shown}", class_="rows"))
    return tag("article", join(parts), class_=f"finding {f.severity}", data_finding=f.id)


def config(data: RunData) -> Markup:
    path = data.run_dir / "config.yaml" if data.run_dir else None
    if path is None or not path.is_file():
        return section("config", "Resolved configuration", not_run("no config.yaml in the run directory"))
    text = path.read_text(encoding="utf-8")
    body = tag("details", join([tag("summary", "config.yaml (every default included)"), tag("pre", text)]),
               open="open")  # fmt: skip
    return section("config", "Resolved configuration", body)


def audit(data: RunData) -> Markup:
    if data.audit is None:
        return section("audit", "Data audit", not_run("no audit.json (audit.gate: off, or an older run)"))
    from tunesmith.audit.html import render_audit_section

    return Markup(render_audit_section(data.audit))  # the doctor's own section, reused as is


def learning_curves(data: RunData, specs: Plots) -> Markup:
    built = {"step-loss": plots.step_loss(data), "epoch-loss": plots.epoch_loss(data),
             "epoch-metrics": plots.epoch_metrics(data)}  # fmt: skip
    return _plot_section(
        "learning-curves", "Learning curves", built, specs, "no step or epoch records in history"
    )


def lr_schedule(data: RunData, specs: Plots) -> Markup:
    built = {"lr": plots.lr_schedule(data)}
    body = _plot_section("lr-schedule", "Learning-rate schedule", built, specs, "no learning rate in history")
    return body


def events(data: RunData) -> Markup:
    rows = [[e.get("step"), e.get("event"), e.get("message", "")] for e in data.events]
    if not rows:
        return section(
            "events", "Training events", tag("p", "No events: no NaN guard action, no early stop.")
        )
    return section("events", "Training events", table(["step", "event", "message"], rows))


def gradient_flow(data: RunData, specs: Plots) -> Markup:
    built = {
        "grad-flow": plots.layer_heatmap(data, "grad_norm/", "Gradient norm per layer (log10, before clipping)",
                                         "log10 ‖g‖"),
        "update-ratio": plots.layer_heatmap(data, "update_ratio/", "Update / weight ratio per layer (log10)",
                                            "log10 ‖Δw‖/‖w‖"),
        "grad-norm": plots.grad_norm_line(data),
    }  # fmt: skip
    note = ("Each row is a layer from the input (embeddings) to the output (head); a row fading to dark means "
            "that layer stopped learning, a bright streak is an exploding gradient. Update/weight ratios near "
            "1e-3 (-3 on this scale) are typical for fine-tuning.")  # fmt: skip
    return _plot_section(
        "gradient-flow", "Gradient flow", built, specs, "no GradientMonitor keys in history", note
    )


def per_class(data: RunData, specs: Plots) -> Markup:
    tables: list[Any] = []
    matrices: list[Any] = []
    labels = data.labels
    for split in ("validation", "test"):
        m = data.metrics.get(split)
        if not isinstance(m, dict) or not m.get("per_class"):
            continue
        rows = [[label, c.get("precision"), c.get("recall"), c.get("f1"), c.get("support")]
                for label, c in m["per_class"].items()]  # fmt: skip
        for avg in ("macro", "weighted"):
            rows.append([f"{avg} average", m.get(f"{avg}_precision"), m.get(f"{avg}_recall"), m.get(f"{avg}_f1"),
                         None])  # fmt: skip
        header = ["class", "precision", "recall", "F1", "support"]
        tables.append(tag("div", join([tag("h3", split), table(header, rows, cls="metrics")])))
        matrix = m.get("confusion_matrix")
        if matrix and labels and len(matrix) == len(labels):
            specs[f"confusion-{split}"] = plots.confusion(labels, matrix, split)
            matrices.append(plot(f"confusion-{split}", height=160 + 50 * len(labels)))
    if not tables:
        return section("per-class", "Per-class metrics and confusion matrix", not_run("no per-class metrics"))
    body = join([tag("div", join(tables), class_="columns"), tag("div", join(matrices), class_="plots")])
    return section("per-class", "Per-class metrics and confusion matrix", body)


def confident_errors(data: RunData) -> Markup:
    labels, parts = data.labels, []
    for split, rows in data.predictions.items():
        wrong = []
        for r in rows:
            if r.get("pred") == r.get("label") or r.get("pred") not in labels:
                continue
            probs = r.get("probs") or []
            confidence = probs[labels.index(r["pred"])] if len(probs) == len(labels) else None
            p_true = (
                probs[labels.index(r["label"])]
                if len(probs) == len(labels) and r.get("label") in labels
                else None
            )
            wrong.append((confidence if finite(confidence) else -1.0, r, p_true))
        wrong.sort(key=lambda item: -item[0])
        if not wrong:
            continue
        table_rows = [[r.get("row"), _clip(r.get("text")), r.get("label"), r.get("pred"),
                       c if c >= 0 else None, p_true, r.get("group")] for c, r, p_true in wrong[:TOP_ERRORS]]  # fmt: skip
        parts.append(tag("h3", f"{split}: {len(wrong)} of {len(rows)} wrong, most confident first"))
        parts.append(table(["row", "text", "true", "predicted", "confidence", "p(true)", "group"], table_rows,
                           cls="errors"))  # fmt: skip
    body = join(parts) if parts else not_run("no wrong predictions in predictions/*.jsonl")
    note = "Confident mistakes are where label errors and missing knowledge hide: read a few."
    return section("errors", "Most confidently wrong examples", body, note if parts else None)


def _clip(text: Any) -> str:
    text = str(text or "")
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + " …"


def _plot_section(section_id: str, title: str, built: dict[str, Any], specs: Plots, missing: str,
                  note: str | None = None) -> Markup:  # fmt: skip
    present = {k: v for k, v in built.items() if v is not None}
    if not present:
        return section(section_id, title, not_run(missing))
    specs.update(present)
    return section(section_id, title, tag("div", join(plot(k) for k in present), class_="plots"), note)
