"""The `tunesmith improve` command (cli.py registers it; a UserError is one line and exit code 2 there)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunesmith.report.html import patch_overrides
from tunesmith.tuning.commands import OverridesArg, QuietOpt, RecipeArg
from tunesmith.tuning.improve_page import describe_model

console = Console()


def improve(
    recipe: RecipeArg,
    overrides: OverridesArg = None,
    rounds: Annotated[int, typer.Option(help="most changes accepted one after another")] = 3,
    seeds: Annotated[int, typer.Option(help="runs per recipe, train.seed = seed, seed+1, ...")] = 2,
    budget: Annotated[
        int, typer.Option(help="most trainings in all (baseline and variants, every seed)")
    ] = 20,
    alpha: Annotated[float, typer.Option(help="significance level (after Holm's correction)")] = 0.05,
    quiet: QuietOpt = False,
) -> None:
    """Run the recipe, try the config patches its findings propose, keep the best significant one, repeat.

    Each change runs on the same splits and seeds as its baseline and is tested on the validation split
    (paired bootstrap, Holm-corrected). Runs are reused when the command runs again (after a crash).
    Writes runs/<name>/improve/improve.json, improve.html and best.yaml.
    """
    from tunesmith.config.loader import load_recipe
    from tunesmith.tuning.commands import _logging
    from tunesmith.tuning.improve import improve as run_improve

    _logging(quiet)
    loaded = load_recipe(recipe, overrides or [])
    report = run_improve(loaded, seeds=seeds, rounds=rounds, budget=budget, alpha=alpha, quiet=quiet,
                         source=str(recipe))  # fmt: skip
    metric = report["metric"]
    table = Table(title=f"improve: validation {metric} over {len(report['seeds'])} seed(s), "
                  f"{report['trainings']} trainings")  # fmt: skip
    for column in ("round", "change", "proposed by", "gain", "95% CI", "p (Holm)", "status"):
        table.add_column(column, overflow="fold")
    for r in report["rounds"]:
        for c in r["candidates"]:
            ci = c.get("ci")
            table.add_row(str(r["round"]), patch_overrides(c["patch"]), ", ".join(f["id"] for f in c["findings"]),
                          f"{c['gain']:+.4f}" if c.get("gain") is not None else "-",
                          f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "-",
                          f"{c['p_holm']:.3g}" if c.get("p_holm") is not None else "-", c["status"])  # fmt: skip
    console.print(table)
    start, best = report["start"], report["best"]
    test = (
        f" (test {start['test_score']:.4f} -> {best['test_score']:.4f})"
        if best["test_score"] is not None
        else ""
    )
    console.print(f"validation {metric}: {start['score']:.4f} -> {best['score']:.4f}{test}", markup=False)
    console.print(f"stopped: {report['stop_reason']}", markup=False)
    if report.get("undecided"):
        console.print(f"undecided: {report['undecided']['title']}", markup=False)
        console.print(f"  {report['undecided']['recommendation']}", markup=False)
    console.print(f"best recipe: {best['recipe']}", markup=False)
    if best.get("model"):
        console.print(f"best model: {describe_model(best['model'], metric)}", markup=False)
    console.print(f"page: {Path(report['runs_dir']).parent / 'improve.html'}", markup=False)
