"""improve.html: the chain of accepted changes (finding, gain, CI) and every rejected change with why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.findings import Finding
from tunesmith.report.html import join, key_values, patch_overrides, plot, section, table, tag
from tunesmith.report.sections import finding_card
from tunesmith.tuning.pages import Spec, layout, page, write_page


def _ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "—"


def _proposed(change: dict[str, Any], round_number: int) -> str:
    """The findings that proposed a change; a carried change also helped in the round before."""
    cited = "; ".join(f"{f['id']}: {f['title']}" for f in change["findings"])
    return (
        f"significant in round {round_number - 1} too, retried: {cited}" if change.get("carried") else cited
    )


def describe_model(model: dict[str, Any], metric: str) -> str:
    """The handed-over model: where it is and how it scored (its validation score is the picked one)."""
    test = f", test {metric} {model['test_score']:.4f}" if model.get("test_score") is not None else ""
    return f"{model['model_dir']} (seed {model['seed']}: validation {metric} {model['score']:.4f}{test})"


def chain_spec(report: dict[str, Any]) -> Spec:
    """Validation score of the start and after each accepted change (test beside it where there is one)."""
    steps = ["start"] + [f"round {c['round']}: {patch_overrides(c['patch'])}" for c in report["chain"]]
    val = [report["start"]["score"]] + [c["score"] for c in report["chain"]]
    test = [report["start"]["test_score"]] + [c["test_score"] for c in report["chain"]]
    traces = [{"type": "scatter", "mode": "lines+markers", "name": f"validation {report['metric']}",
               "x": steps, "y": val}]  # fmt: skip
    if any(t is not None for t in test):
        traces.append({"type": "scatter", "mode": "lines+markers", "name": f"test {report['metric']}",
                       "x": steps, "y": test})  # fmt: skip
    return {"data": traces, "layout": layout("Score along the accepted changes", "change", report["metric"])}


def render_improve_page(target: Path, report: dict[str, Any]) -> Path:
    metric = report["metric"]
    start, best = report["start"], report["best"]
    summary = {
        "recipe": report["recipe"], f"start validation {metric}": start["score"],
        f"best validation {metric}": best["score"], f"start test {metric}": start["test_score"],
        f"best test {metric}": best["test_score"], "accepted changes": len(report["chain"]),
        "trainings": f"{report['trainings']} of {report['budget']}", "seeds": report["seeds"],
        "stopped because": report["stop_reason"], "best recipe": best["recipe"],
        "best model": describe_model(best["model"], metric) if best.get("model") else "—",
        "all changes": patch_overrides(best["patch"]) if best["patch"] else "none",
    }  # fmt: skip
    chain_rows = [[c["round"], patch_overrides(c["patch"]), _proposed(c, c["round"]), c["gain"], _ci(c["ci"]),
                   c["p_holm"], c["score"], c["test_score"]] for c in report["chain"]]  # fmt: skip
    other_rows = [
        [r["round"], patch_overrides(c["patch"]), _proposed(c, r["round"]), c["status"], c.get("gain"),
         _ci(c.get("ci")), c.get("p_holm"), c["reason"]]
        for r in report["rounds"] for c in r["candidates"] if c["status"] != "accepted"
    ]  # fmt: skip
    note = (f"Each change is a finding's config patch, run on the same splits and seeds {report['seeds']} as its "
            f"baseline and tested on the {report['split']} split by a paired two-level bootstrap of the mean "
            f"{metric} difference, Holm-corrected over the round's changes (alpha {report['alpha']}). The best "
            "significant change becomes the next baseline. The test split never decides.")  # fmt: skip
    body = [
        section("summary", "Summary", key_values(summary)),
        section("chain", "Accepted changes", join([
            tag("p", note, class_="note"),
            table(["round", "change", "proposed by", f"gain ({metric})", "95% CI", "p (Holm)",
                   f"validation {metric}", f"test {metric}"], chain_rows) if chain_rows
            else tag("p", "No change was accepted: the starting recipe stays the best."),
            plot("chain")])),
        section("rejected", "Changes not accepted", table(
            ["round", "change", "proposed by", "status", "gain", "95% CI", "p (Holm)", "why"], other_rows)
            if other_rows else tag("p", "None.")),
    ]  # fmt: skip
    if report.get("undecided"):  # the stop had a gain too small for this split to decide: say how much data
        body.insert(
            1, section("undecided", "Undecided", finding_card(Finding.from_dict(report["undecided"])))
        )
    return write_page(
        target, page(f"tunesmith improve · {report['recipe_name']}", body, {"chain": chain_spec(report)})
    )
