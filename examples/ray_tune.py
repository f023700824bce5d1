"""A tunesmith search on a Ray cluster with Ray Tune, for when one machine is not enough.

    pip install "ray[tune]"                       # optional; tunesmith does not need it otherwise
    ray start --head                              # or join an existing cluster (ray start --address ...)
    python examples/ray_tune.py RECIPE.yaml --trials 16 [--cpus-per-trial 4] [--gpus-per-trial 1]

The recipe's `search:` section is the search space, exactly as `tunesmith tune` reads it (the same
`tunesmith.tuning.space.suggest` turns it into Optuna suggestions, wrapped by Ray's OptunaSearch). Each
Ray trial is a full tunesmith run (audit, training, report) in `<output.dir>/<output.name>/ray/<trial id>/`
on the machine that ran it; it reports `val_<eval.metric>` after every epoch, which Ray's ASHA scheduler
uses to stop poor trials early (a stopped trial keeps its checkpoints and history). The best trial's recipe is printed and written to
`<output.dir>/<output.name>/ray/best.yaml`.

The trial directories live on each worker's disk: point `output.dir` at a shared file system to collect them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from tunesmith.config.loader import load_recipe, recipe_to_yaml
from tunesmith.config.schema import SearchParam
from tunesmith.outputs import resolve_run_dir
from tunesmith.run import run
from tunesmith.training.callbacks.base import Callback, TrainContext
from tunesmith.tuning import space as sp
from tunesmith.tuning.search import direction


class DefineSpace:
    """Ray's OptunaSearch asks each trial through this (a class, not a closure: Ray pickles its searcher)."""

    def __init__(self, space: dict[str, SearchParam]) -> None:
        self.space = space

    def __call__(self, trial: optuna.Trial) -> None:
        for key, spec in self.space.items():
            sp.suggest(trial, key, spec)


class ReportToRay(Callback):
    """Sends each epoch's validation metric to Ray Tune (ASHA decides on it)."""

    name = "ray_report"

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        tune.report({self.metric: float(record[self.metric]), "epoch": ctx.epoch + 1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--cpus-per-trial", type=float, default=1)
    parser.add_argument("--gpus-per-trial", type=float, default=0)
    parser.add_argument(
        "--address", default=None, help="Ray cluster address (default: start or join locally)"
    )
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    space = sp.check_space(recipe, str(args.recipe))  # a bad spec stops here, before Ray starts
    root = resolve_run_dir(recipe.output).resolve() / "ray"
    base = sp.base_data(recipe)
    metric = f"val_{recipe.eval.metric}"
    mode = "min" if direction(recipe) == "minimize" else "max"

    def trainable(params: dict[str, Any]) -> None:
        trial_id = tune.get_context().get_trial_id()
        trial = sp.trial_recipe(
            base, params, f"{args.recipe} (ray trial {trial_id})", dir=str(root), name=trial_id
        )
        run(trial, overwrite=True, quiet=True, extra_callbacks=[ReportToRay(metric)])

    import ray

    ray.init(address=args.address)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial}),
        tune_config=tune.TuneConfig(
            metric=metric, mode=mode, num_samples=args.trials,
            search_alg=OptunaSearch(DefineSpace(space), metric=metric, mode=mode, seed=recipe.tune.seed),
            # max_t past the last epoch: a trial that survives ASHA finishes its outputs (metrics, model, report).
            scheduler=ASHAScheduler(max_t=recipe.train.epochs + 1, time_attr="epoch", grace_period=1),
        ),
        run_config=tune.RunConfig(name=recipe.output.name, storage_path=str(root / "ray_results")),
    )  # fmt: skip
    best = tuner.fit().get_best_result(metric=metric, mode=mode, scope="all")
    best_recipe = sp.trial_recipe(
        base, best.config, f"{args.recipe} (best Ray trial)", name=f"{recipe.output.name}-best"
    )
    (root / "best.yaml").write_text(recipe_to_yaml(best_recipe))
    print(f"best {metric} {best.metrics[metric]:.4f} with {best.config}; recipe: {root / 'best.yaml'}")


if __name__ == "__main__":
    main()
