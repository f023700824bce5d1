"""CLI commands of the tuning stage: `tunesmith lr-find`, `tunesmith tune`, `tunesmith compare`.

cli.py registers them (`_register_modules`); a UserError becomes one line and exit code 2 there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunesmith.tuning.lr_finder import METHODS

console = Console()
log = logging.getLogger(__name__)

RecipeArg = Annotated[Path, typer.Argument(help="recipe YAML file", show_default=False)]
OverridesArg = Annotated[
    list[str] | None, typer.Argument(help="dotted overrides, e.g. train.lr=1e-4 strategy.name=lora")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]


def _logging(quiet: bool) -> None:
    from tunesmith.cli import setup_logging

    setup_logging(quiet)


def lr_find(
    recipe: RecipeArg,
    overrides: OverridesArg = None,
    steps: Annotated[
        int | None, typer.Option(help="sweep steps; default: one epoch of batches, 20 to 100")
    ] = None,
    start_lr: Annotated[float, typer.Option(help="first learning rate of the sweep")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="last learning rate of the sweep")] = 1.0,
    method: Annotated[
        str,
        typer.Option(
            help=f"which pick is the suggestion: {', '.join(METHODS)} (auto: valley, or rise without a descent)"
        ),
    ] = "auto",
) -> None:
    """LR range test: sweep the learning rate exponentially for about one epoch, print a suggestion.

    Writes runs/<name>/lr_find.json and lr_find.html (the curve). The suggestion is the valley of the
    smoothed loss (fastai): well inside the stretch where the loss falls, below where it diverges; when
    the loss shows no descent beyond its noise, a tenth of the lr where it climbs above its start (rise).
    The steepest-descent point and minimum/10 are shown too. The model's weights are not changed.
    """
    from tunesmith.config.loader import load_recipe
    from tunesmith.errors import UserError
    from tunesmith.tasks.registry import make_task
    from tunesmith.tuning.lr_auto import save_result, summary
    from tunesmith.tuning.lr_command import sweep_recipe
    from tunesmith.tuning.lr_finder import lr_schedule
    from tunesmith.tuning.pages import lr_find_spec, page, write_page

    _logging(quiet=False)
    if method not in METHODS:
        raise UserError(f"--method: must be one of {', '.join(METHODS)}; got {method!r}")
    try:  # the sweep's own arguments, before the data and the model are loaded
        lr_schedule(start_lr, end_lr, steps if steps is not None else 2)
    except ValueError as exc:
        raise UserError(f"lr-find: {exc}") from None
    loaded = load_recipe(recipe, overrides or [])
    make_task(loaded).check_model()
    result, run_dir = sweep_recipe(loaded, steps=steps, start_lr=start_lr, end_lr=end_lr, method=method)  # type: ignore[arg-type]
    path = save_result(run_dir, result, used_for="tunesmith lr-find")
    from tunesmith.report.html import key_values, plot

    html = page(f"LR range test · {loaded.output.name}", [key_values(summary(result)), plot("lr", 420)],
                {"lr": lr_find_spec(result.to_dict())})  # fmt: skip
    write_page(run_dir / "lr_find.html", html)
    table = Table(title=f"LR range test: {len(result.lrs)} steps, {result.stop_reason}")
    for column in ("pick", "learning rate"):
        table.add_column(column)
    for name, value in result.candidates.items():
        table.add_row(name + (" (suggestion)" if name == result.method else ""), f"{value:.3g}")
    console.print(table)
    console.print(f"suggested train.lr: {result.suggestion:.3g}  (use: train.lr={result.suggestion:.2g})")
    console.print(f"curve: {path} and {run_dir / 'lr_find.html'}")


def tune(
    recipe: RecipeArg,
    overrides: OverridesArg = None,
    trials: Annotated[
        int | None,
        typer.Option("--trials", "-n", help="finished trials the study should hold (default 20; grid: all)"),
    ] = None,
    workers: Annotated[int, typer.Option(help="local worker processes sharing the study")] = 1,
    storage: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the study (default sqlite:///runs/<name>/study.db)")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Search the recipe's `search:` space with Optuna; each trial is a tunesmith run in runs/<name>/trials/.

    Run the same command again to continue a study (after a crash, or for more trials): finished trials
    are kept. Writes best.yaml (the best trial as a recipe), tune.json and tune.html.
    """
    from tunesmith.config.loader import load_recipe
    from tunesmith.tasks.registry import make_task
    from tunesmith.tuning import search

    _logging(quiet)
    loaded = load_recipe(recipe, overrides or [])
    make_task(loaded).check_model()  # before the study's storage exists
    s = search.setup(loaded, str(recipe), trials, storage)
    study = search.tune(s, workers=workers, quiet=quiet)
    summary = search.write_outputs(s, study)
    table = Table(title=f"study {summary['study']}: {summary['metric']} ({summary['direction']})")
    keys = list(summary["space"])
    for column in ("trial", "state", summary["metric"], *keys):
        table.add_column(column)
    ranked = sorted(summary["trials"], key=lambda t: (t["value"] is None, t["value"] or 0.0),
                    reverse=summary["direction"] == "maximize")  # fmt: skip
    if summary["direction"] == "maximize":  # keep trials without a value last
        ranked = [t for t in ranked if t["value"] is not None] + [t for t in ranked if t["value"] is None]
    for t in ranked[:15]:
        value = f"{t['value']:.4f}" if t["value"] is not None else "-"
        table.add_row(str(t["number"]), t["state"], value, *[_short(t["params"].get(k)) for k in keys])
    console.print(table)
    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items() if v)
    console.print(f"trials: {counts}")
    if summary["best"]:
        best = summary["best"]
        console.print(
            f"best: trial {best['number']} {summary['metric']} {best['value']:.4f} {best['params']}"
        )
        console.print(f"best recipe: {best['recipe']}  (tunesmith run {best['recipe']})")
    console.print(f"study: {s.storage_url}\npage:  {s.root / 'tune.html'}")


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def compare(
    recipe: RecipeArg,
    variant: Annotated[
        list[str],
        typer.Option(
            "--variant",
            "-v",
            help="overrides of one variant, e.g. 'strategy.name=lora'; "
            "repeat for each variant (space-separate several overrides)",
        ),
    ],
    overrides: OverridesArg = None,
    seeds: Annotated[int, typer.Option(help="runs per variant, train.seed = seed, seed+1, ...")] = 3,
    cv: Annotated[int | None, typer.Option(help="cross-validate every run with K folds")] = None,
    test: Annotated[str, typer.Option(help="paired test across runs: t or wilcoxon")] = "t",
    alpha: Annotated[float, typer.Option(help="significance level (after Holm's correction)")] = 0.05,
    isolate: Annotated[
        bool, typer.Option(help="each run in its own process, so peak memory is per variant")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """A/B test variants of a recipe on identical splits and seeds: leaderboard, paired tests, cost.

    Writes runs/<name>/compare/compare.json and compare.html (confidence intervals, McNemar and paired
    tests with Holm's correction, and a recommendation that weighs significance against cost).
    """
    from tunesmith.errors import UserError
    from tunesmith.tuning.compare import compare as run_compare
    from tunesmith.tuning.compare import parse_variants

    _logging(quiet)
    if test not in ("t", "wilcoxon"):
        raise UserError(f"--test: must be t or wilcoxon; got {test!r}")
    if not 0.0 < alpha < 0.5:
        raise UserError(f"--alpha: must be between 0 and 0.5; got {alpha}")
    variants = parse_variants(recipe, overrides or [], variant)
    report = run_compare(variants, seeds=seeds, cv=cv, quiet=quiet, isolate=isolate, method=test, alpha=alpha)  # type: ignore[arg-type]
    table = Table(title=f"compare: {report['split']} {report['metric']} over {len(report['seeds'])} seed(s)"
                  + (f" x {report['cv']} folds" if report["cv"] else ""))  # fmt: skip
    for column in (
        "rank",
        "variant",
        "mean",
        "std",
        "95% CI",
        "vs best (p Holm)",
        "train s/run",
        "trainable",
    ):
        table.add_column(column, overflow="fold")
    leader = report["leaderboard"][0]["variant"]
    pairs = {frozenset((p["a"], p["b"])): p for p in report["pairs"]}
    for i, r in enumerate(report["leaderboard"]):
        p = pairs.get(frozenset((leader, r["variant"])))
        vs = "-" if p is None else f"{'worse' if p['significant'] else 'n.s.'} ({p['p_holm']:.3g})"
        table.add_row(str(i + 1), r["variant"], f"{r['mean']:.4f}", f"{r['std']:.4f}",
                      f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]", vs, f"{r['train_time_s']:.1f}",
                      f"{r['trainable_params']:,}" if r["trainable_params"] else "-")  # fmt: skip
    console.print(table)
    for sentence in report["recommendation"]["sentences"]:
        console.print(sentence, markup=False, highlight=False)
    console.print(report["recommendation"]["text"], style="bold", markup=False, highlight=False)
    console.print(f"page: {Path(report['runs_dir']) / 'compare.html'}")
