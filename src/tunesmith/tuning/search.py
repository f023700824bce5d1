"""`tunesmith tune`: an Optuna study over the recipe's `search:` space, each trial a real tunesmith run.

Layout: runs/<name>/study.db (default storage), runs/<name>/trials/<number>/ (one run per trial),
runs/<name>/best.yaml (the best trial as a runnable recipe), tune.json and tune.html (trials table and
optimisation history). The study is created with load_if_exists, so running the same command again after
a crash continues it: finished (complete or pruned) trials count towards --trials and are never repeated.
Several processes (--workers, or other machines with the same --storage URL) share one study. Trials a
killed process left running are failed by Optuna's heartbeat after a grace period and retried once.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from tunesmith.config.loader import recipe_from_dict, recipe_to_yaml
from tunesmith.config.schema import Recipe, SearchParam
from tunesmith.errors import UserError
from tunesmith.evaluation.metrics import LOWER_IS_BETTER
from tunesmith.outputs import resolve_run_dir, write_json
from tunesmith.training.callbacks.base import Callback, TrainContext
from tunesmith.training.checkpoint import discard_checkpoints
from tunesmith.tuning import space as sp

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HEARTBEAT_S, GRACE_S = 60, 180
_OPEN_ATTEMPTS = 5
_TRIAL_ATTRS = ("train_time_s", "best_epoch", "worker")  # trial user attributes copied into tune.json


@dataclass
class StudySetup:
    recipe: Recipe
    source: str
    trials: int
    storage_url: str
    root: Path  # runs/<name>
    space: dict[str, SearchParam]


class PruningCallback(Callback):
    """Reports the per-epoch validation metric to the trial; asks the loop to stop when Optuna prunes."""

    name = "optuna_pruning"

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.pruned_at: int | None = None

    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        value = float(record[f"val_{self.metric}"])
        self.trial.report(value, ctx.epoch + 1)
        if self.trial.should_prune():
            self.pruned_at = ctx.epoch + 1
            ctx.stop_reason = f"pruned by Optuna after epoch {ctx.epoch + 1} (val_{self.metric} {value:.4f})"
            record["pruned"] = True


def direction(recipe: Recipe) -> str:
    return "minimize" if recipe.eval.metric in LOWER_IS_BETTER else "maximize"


def default_storage(root: Path) -> str:
    return f"sqlite:///{root / 'study.db'}"


def make_storage(url: str) -> RDBStorage:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    error: Exception | None = None
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            with (
                warnings.catch_warnings()
            ):  # heartbeats are marked experimental; they are what resumes a study
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(
                    url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                )  # fmt: skip
        except Exception as exc:  # SQLAlchemy raises many kinds: bad URL, missing driver, unreachable server
            error = exc
            if not _creation_race(exc):
                break
            time.sleep(0.2 * (attempt + 1))  # workers creating one new database at once: one wins, retry
    assert error is not None
    raise UserError(
        f"--storage: cannot open {url!r} ({type(error).__name__}: {str(error).splitlines()[0]}); pass a "
        "SQLAlchemy URL such as sqlite:///study.db or postgresql://user:pw@host/db (driver installed)"
    ) from None


def _creation_race(exc: Exception) -> bool:
    """Another process creating the same database's tables at this moment (Optuna's schema set-up is not
    atomic across processes: the loser sees a duplicate alembic_version row, an existing table or a lock)."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    if isinstance(exc, IntegrityError):
        return True
    text = str(exc).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "already exists" in text)


def make_sampler(recipe: Recipe, space: dict[str, SearchParam]) -> optuna.samplers.BaseSampler:
    cfg = recipe.tune
    if cfg.sampler == "grid":
        return optuna.samplers.GridSampler(sp.grid(space, cfg.grid_points), seed=cfg.seed)
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=cfg.seed)
    return optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=cfg.startup_trials)


def make_pruner(recipe: Recipe) -> optuna.pruners.BasePruner:
    cfg = recipe.tune
    if recipe.eval.cv or cfg.pruner == "none":  # a cross-validated trial has no single per-epoch curve
        return optuna.pruners.NopPruner()
    if cfg.pruner == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    # Epochs are reported 1-based and Optuna may prune at step == n_warmup_steps: +1 keeps the first
    # `warmup_epochs` epochs safe.
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.startup_trials, n_warmup_steps=cfg.warmup_epochs + 1
    )


def setup(recipe: Recipe, source: str, trials: int | None, storage: str | None) -> StudySetup:
    space = sp.check_space(recipe, source)
    root = resolve_run_dir(recipe.output)
    if recipe.tune.sampler == "grid":
        size = sp.grid_size(sp.grid(space, recipe.tune.grid_points))
        trials = trials or size
    if trials is None:
        trials = 20
    if trials < 1:
        raise UserError(f"--trials: must be at least 1; got {trials}")
    url = storage or recipe.tune.storage or default_storage(root)
    return StudySetup(recipe, source, trials, url, root, space)


def open_study(s: StudySetup) -> optuna.Study:
    """Create the study, or load it (a resumed or shared study) after checking it is the same search."""
    fingerprint = json.dumps({k: v.model_dump(mode="json") for k, v in s.space.items()}, sort_keys=True)
    study = optuna.create_study(
        storage=make_storage(s.storage_url), sampler=make_sampler(s.recipe, s.space), pruner=make_pruner(s.recipe),
        study_name=s.recipe.output.name, direction=direction(s.recipe), load_if_exists=True,  # type: ignore[arg-type]
    )  # fmt: skip
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", fingerprint)
        study.set_user_attr("metric", s.recipe.eval.metric)
    elif stored != fingerprint or study.user_attrs.get("metric") != s.recipe.eval.metric:
        raise UserError(
            f"{s.source}: study '{s.recipe.output.name}' in {s.storage_url} was run with another search: section "
            "or eval.metric; set a new output.name, or delete the study to start over"
        )
    return study


def objective(s: StudySetup, quiet: bool) -> Any:
    from tunesmith.run import run

    base = sp.base_data(s.recipe)
    metric = s.recipe.eval.metric

    def evaluate(trial: optuna.Trial) -> float:
        params = {key: sp.suggest(trial, key, spec) for key, spec in s.space.items()}
        trial_dir = s.root / "trials"
        run_dir = trial_dir / str(trial.number)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr(
            "worker", f"{socket.gethostname()}:{os.getpid()}"
        )  # who ran it, in a shared study
        try:
            recipe = sp.trial_recipe(base, params, f"{s.source} (trial {trial.number})",
                                     dir=str(trial_dir), name=str(trial.number))  # fmt: skip
            pruning = PruningCallback(trial, metric)
            result = run(recipe, overwrite=True, quiet=quiet, extra_callbacks=[pruning])
        except UserError as exc:
            trial.set_user_attr("error", str(exc))
            raise
        discard_checkpoints(run_dir)  # finished (or pruned): never resumed
        m = result.metrics
        trial.set_user_attr("best_epoch", m.get("best_epoch"))
        trial.set_user_attr("train_time_s", m.get("train_time_s"))
        trial.set_user_attr("trainable_params", m.get("trainable_params"))
        if m.get("test"):
            trial.set_user_attr(f"test_{metric}", m["test"].get(metric))
        if m.get("cv"):
            return float(m["cv"]["summary"][f"validation_{metric}"]["mean"])
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
        if result.outcome is None or result.outcome.best_metric is None:
            raise RuntimeError("the run finished without a validation metric")
        return float(result.outcome.best_metric)

    return evaluate


def work(s: StudySetup, quiet: bool = True) -> None:
    """One worker: run trials until the study holds `trials` finished ones (shared with other workers)."""
    study = open_study(s)
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    remaining = s.trials - done
    if remaining <= 0:
        return
    study.optimize(
        objective(s, quiet), n_trials=remaining, catch=(UserError,),
        callbacks=[MaxTrialsCallback(s.trials, states=FINISHED)],
    )  # fmt: skip


def _worker_main(s: StudySetup) -> None:
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work(s, quiet=True)


def tune(s: StudySetup, *, workers: int = 1, quiet: bool = False) -> optuna.Study:
    """Run the study with `workers` local processes (this one included); return it when all are done."""
    if workers < 1:
        raise UserError(f"--workers: must be at least 1; got {workers}")
    if quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(s)  # created here once, so workers only ever load it
    context = multiprocessing.get_context("spawn")
    helpers = [context.Process(target=_worker_main, args=(s,), daemon=False) for _ in range(workers - 1)]
    for process in helpers:
        process.start()
    try:
        work(s, quiet=quiet or workers > 1)
    finally:
        for process in helpers:
            process.join()
    failed = [p.exitcode for p in helpers if p.exitcode]
    if failed:
        log.warning("%d worker process(es) exited with an error: codes %s", len(failed), failed)
    return optuna.load_study(study_name=study.study_name, storage=make_storage(s.storage_url))


def write_outputs(s: StudySetup, study: optuna.Study) -> dict[str, Any]:
    """tune.json, best.yaml and tune.html in runs/<name>/; returns the tune.json content."""
    from tunesmith.tuning.tune_page import render_tune_page

    trials = [_trial_row(t) for t in study.get_trials(deepcopy=False)]
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    summary: dict[str, Any] = {
        "study": study.study_name, "storage": s.storage_url, "direction": direction(s.recipe),
        "metric": f"val_{s.recipe.eval.metric}", "sampler": s.recipe.tune.sampler, "pruner": s.recipe.tune.pruner,
        "space": {k: v.model_dump(mode="json", exclude_none=True) for k, v in s.space.items()},
        "counts": {state.name.lower(): sum(1 for t in trials if t["state"] == state.name.lower())
                   for state in TrialState},
        "trials": trials, "best": None,
    }  # fmt: skip
    s.root.mkdir(parents=True, exist_ok=True)
    if complete:
        best = study.best_trial
        best_recipe = sp.trial_recipe(sp.base_data(s.recipe), best.params, f"{s.source} (best trial)",
                                      name=f"{s.recipe.output.name}-best")  # fmt: skip
        recipe_from_dict(best_recipe.model_dump(mode="json"))  # runnable as written
        (s.root / "best.yaml").write_text(recipe_to_yaml(best_recipe))
        summary["best"] = {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "run_dir": best.user_attrs.get("run_dir"),
            "recipe": str(s.root / "best.yaml"),
        }
        # fmt: skip
    write_json(s.root / "tune.json", summary)
    render_tune_page(s.root / "tune.html", summary)
    return summary


def _trial_row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    duration = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start
        else None
    )
    return {
        "number": t.number, "state": t.state.name.lower(), "value": t.value, "params": dict(t.params),
        "epochs": max(t.intermediate_values) if t.intermediate_values else None,
        "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
        "duration_s": duration, "run_dir": t.user_attrs.get("run_dir"), "error": t.user_attrs.get("error"),
        **{k: v for k, v in t.user_attrs.items() if k.startswith("test_") or k in _TRIAL_ATTRS},
    }  # fmt: skip
