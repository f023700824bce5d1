"""compare.html: leaderboard with confidence intervals, paired tests, cost, and the recommendation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.report.html import join, plot, section, table, tag
from tunesmith.tuning.pages import Spec, layout, page, write_page


def scores_spec(report: dict[str, Any]) -> Spec:
    """Mean per variant with its 95% bootstrap CI, and every run's score as a dot."""
    board = report["leaderboard"]
    names = [r["variant"] for r in board]
    means = [r["mean"] for r in board]
    bar = {"type": "scatter", "mode": "markers", "name": "mean (95% bootstrap CI)", "x": names, "y": means,
           "marker": {"size": 12, "color": "#2563eb", "symbol": "diamond"},
           "error_y": {"type": "data", "symmetric": False, "array": [r["ci_high"] - r["mean"] for r in board],
                       "arrayminus": [r["mean"] - r["ci_low"] for r in board]}}  # fmt: skip
    dots = {
        "type": "scatter",
        "mode": "markers",
        "name": "runs",
        "marker": {"size": 6, "color": "#9ca3af"},
        "x": [r["variant"] for r in board for _ in r["scores"]],
        "y": [s for r in board for s in r["scores"]],
    }
    # fmt: skip
    title = f"{report['split']} {report['metric']} per variant"
    return {"data": [dots, bar], "layout": layout(title, "variant", report["metric"])}


def cost_spec(report: dict[str, Any]) -> Spec:
    board = report["leaderboard"]
    trace = {"type": "scatter", "mode": "markers+text", "x": [r["train_time_s"] for r in board],
             "y": [r["mean"] for r in board], "text": [r["variant"] for r in board], "textposition": "top center",
             "marker": {"size": 11, "color": "#ea580c"}, "name": "variants"}  # fmt: skip
    return {"data": [trace], "layout": layout("Score against cost", "mean training time per run (s)",
                                              report["metric"])}  # fmt: skip


def render_compare_page(target: Path, report: dict[str, Any]) -> Path:
    rec = report["recommendation"]
    board_rows = [[i + 1, r["variant"], r["mean"], r["std"], f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]", r["runs"],
                   r["train_time_s"], r["peak_memory_mb"], r["trainable_params"]]
                  for i, r in enumerate(report["leaderboard"])]  # fmt: skip

    def boot(p: dict[str, Any], key: str) -> Any:
        return p["bootstrap"][key] if p.get("bootstrap") else None

    pair_rows = [[p["a"], p["b"], p["diff"], p["runs"], boot(p, "p_value"), boot(p, "p_holm"), p["paired"]["test"],
                  p["paired"]["p_value"], p["paired"]["p_holm"], p["mcnemar"]["p_value"], p["mcnemar"]["p_holm"],
                  p["decided_by"], "yes" if p["significant"] else "no", p["better"] if p["significant"] else "—"]
                 for p in report["pairs"]]  # fmt: skip
    settings = (f"Scored on the {report['split']} split, metric {report['metric']}; seeds {report['seeds']}"
                + (f", {report['cv']}-fold cross-validation" if report["cv"] else "")
                + f"; significance at alpha {report['alpha']} after Holm's correction over all pairs. "
                f"Memory: {report['memory_note']}.")  # fmt: skip
    body = [
        section("recommendation", "Recommendation", join([tag("p", tag("strong", rec["text"])),
                                                           tag("ul", join(tag("li", s) for s in rec["sentences"]))])),
        section("leaderboard", "Leaderboard", join([
            tag("p", settings, class_="note"),
            table(["rank", "variant", f"mean {report['metric']}", "std", "95% CI", "runs", "train s / run",
                   "peak memory MB", "trainable params"], board_rows),
            plot("scores"), plot("cost")])),
        section("tests", "Paired tests", join([
            tag("p", "bootstrap: paired two-level bootstrap of the mean difference (runs and examples resampled "
                     "with the same draws for both variants); it decides for accuracy and F1. paired: t-test (or "
                     "Wilcoxon) over runs matched by seed and fold; McNemar: on the predictions of runs matched by "
                     "seed and fold (median p over runs). p (Holm): corrected over all pairs.", class_="note"),
            table(["A", "B", "mean A - B", "runs", "bootstrap p", "bootstrap p (Holm)", "paired test", "p",
                   "p (Holm)", "McNemar p", "McNemar p (Holm)", "decided by", "significant", "better"], pair_rows)])),
        section("variants", "Variants", table(["#", "variant", "overrides"],
                                              [[v["index"], v["label"], " ".join(v["overrides"])]
                                               for v in report["variants"]])),
    ]  # fmt: skip
    specs = {"scores": scores_spec(report), "cost": cost_spec(report)}
    return write_page(target, page(f"tunesmith compare · {report['recipe_name']}", body, specs))
