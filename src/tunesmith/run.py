"""One run, stage by stage. This is the only module that knows the order of the stages.

Everything that can be wrong with the input is checked before the run directory is created, so bad input
never leaves a half-made run behind.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed

from tunesmith import launch
from tunesmith.audit import AuditReport, check_gate
from tunesmith.config.loader import recipe_from_dict, recipe_to_yaml
from tunesmith.config.schema import Recipe
from tunesmith.data.augment import with_balance_setting
from tunesmith.data.types import Split
from tunesmith.diagnosis import diagnose
from tunesmith.errors import UserError
from tunesmith.findings import Finding
from tunesmith.forgetting import control as forgetting
from tunesmith.hardware.levers import check_levers
from tunesmith.hardware.plan import plan_for_run
from tunesmith.models.loader import count_parameters
from tunesmith.outputs import check_run_dir, finished_run_files, holds_run, resolve_run_dir, write_json
from tunesmith.report import render_report
from tunesmith.strategies.registry import get_strategy
from tunesmith.tasks.base import Encoded, Task
from tunesmith.tasks.registry import make_task
from tunesmith.tracking import aborted_on_error, make_trackers
from tunesmith.training import checkpoint as ckpt
from tunesmith.training.callbacks.base import Callback
from tunesmith.training.callbacks.early_stopping import EarlyStopping
from tunesmith.training.callbacks.monitor import GradientMonitor
from tunesmith.training.callbacks.penalties import penalty_callbacks
from tunesmith.training.loop import TrainOutcome, train
from tunesmith.training.optim import make_optimizer, make_scheduler
from tunesmith.training.precision import accelerate_mixed_precision, resolve_precision
from tunesmith.tuning import lr_auto

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    outcome: TrainOutcome | None
    findings: list[Finding] = field(default_factory=list)
    already_finished: bool = False  # --resume of a finished run: nothing was done or changed


def make_accelerator(precision: str) -> Accelerator:
    # Accelerate keeps process-wide state; a fresh run in the same process (tests, tune, compare) may use
    # another precision, so reset it unless we are one of several launched processes.
    state = AcceleratorState._shared_state
    if state and state.get("num_processes", 1) <= 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=accelerate_mixed_precision(precision), cpu=launch.cpu_processes())


def _check_resume_recipe(run_dir: Path, recipe: Recipe) -> None:
    import yaml

    saved = recipe_from_dict(
        yaml.safe_load((run_dir / "config.yaml").read_text()), str(run_dir / "config.yaml")
    )
    old, new = saved.model_dump(mode="json"), recipe.model_dump(mode="json")
    changed = [k for k in new if old.get(k) != new.get(k)]
    if changed:
        raise UserError(
            f"--resume: the recipe differs from {run_dir}/config.yaml in {', '.join(changed)}; "
            "resume with the original recipe, or start a new run (--overwrite or a new output.name)."
        )


def run(
    recipe: Recipe,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    extra_callbacks: list[Callback] | None = None,
) -> RunResult:
    make_task(recipe).check_model()  # max_length, blocks, module names vs the model's config: before any work
    launch.check_run(recipe.train.processes, recipe.train.lr == "auto", bool(recipe.eval.cv))
    if recipe.eval.learning_curve:  # the run, then nested subsets of train (tunesmith.tuning.learning_curve)
        from tunesmith.tuning.learning_curve import run_learning_curve

        return run_learning_curve(
            recipe, resume=resume, overwrite=overwrite, quiet=quiet, extra_callbacks=extra_callbacks
        )
    if recipe.eval.cv:  # K runs on stratified folds, then mean ± std (tunesmith.tuning.crossval)
        from tunesmith.tuning.crossval import run_cv

        return run_cv(
            recipe, resume=resume, overwrite=overwrite, quiet=quiet, extra_callbacks=extra_callbacks
        )
    # ---- validate everything up front: nothing touches the disk until this passes ----
    recipe = with_balance_setting(recipe)  # data.balance: class-weights is train.class_weights: true
    run_dir = resolve_run_dir(recipe.output)
    check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    # --resume is idempotent for requeued jobs: nothing there yet starts the run, a finished run is left as is
    resume = resume and holds_run(run_dir)
    recipe = check_levers(recipe, run_dir, resume=resume)  # gradient checkpointing, batch_size auto
    if resume:
        recipe = lr_auto.recorded_lr(run_dir, recipe)  # lr: auto resumes with the lr its range test picked
        _check_resume_recipe(run_dir, recipe)
        if (done := finished_run(run_dir)) is not None:
            return done
    precision = resolve_precision(recipe.train.precision)
    task = make_task(recipe)
    strategy = get_strategy(recipe.strategy)
    trackers = make_trackers(list(recipe.report_to))
    tables, bundle = task.prepare_data()
    strategy.validate(recipe, list(bundle.labels))  # setfit / zero-shot: a sentence encoder, known labels
    set_seed(recipe.train.seed)
    loaded = task.load_model(bundle)
    model, tokenizer = loaded.model, loaded.tokenizer
    retain_plan = forgetting.plan(recipe, loaded.model_dir) if task.uses_forgetting_control else None
    continuing = resume and ckpt.latest_checkpoint(run_dir) is not None
    # a resumed run keeps its audit
    audit = _audit(recipe, task, tables, tokenizer) if not continuing else None

    # ---- the run directory (several processes: every one has checked its input, the main one writes) ----
    launch.barrier()
    resume_from = ckpt.latest_checkpoint(run_dir) if resume else None
    if launch.is_main_process():
        if overwrite and run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_temporary(run_dir)
        if resume_from is None:  # a fresh start (also a resume killed before its first checkpoint)
            (run_dir / "history.jsonl").unlink(missing_ok=True)
        (run_dir / "config.yaml").write_text(recipe_to_yaml(recipe))
        if audit is not None:
            write_json(run_dir / "audit.json", audit.to_dict())
    launch.barrier()

    # ---- model, strategy, optimizer ----
    task.on_start(model)  # the starting model, measured before any step (a resume loads weights in train())
    model = strategy.prepare(model)
    trainable, total = count_parameters(model)
    log.info(
        "trainable parameters: %s of %s (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total
    )
    accelerator = make_accelerator(precision)
    log.info("precision: %s on %s", precision, accelerator.device)
    train_data, val_data = task.encode(bundle.train), task.encode(bundle.validation)
    strategy.before_training(model, task, train_data, accelerator.device)  # setfit's contrastive phase
    if strategy.trains:  # memory and time against the hardware (probe steps), batch_size auto: plan.json
        recipe = plan_for_run(recipe, task, model, strategy, train_data, val_data, accelerator, run_dir,
                              precision)  # fmt: skip
    if recipe.train.lr == "auto":  # the lr range test picks train.lr; config.yaml records the value used
        recipe = lr_auto.resolve_auto_lr(recipe, run_dir, model, strategy, task, train_data, accelerator)
        (run_dir / "config.yaml").write_text(recipe_to_yaml(recipe))
    optimizer = make_optimizer(strategy.param_groups(model, recipe.train), recipe.train)
    steps_per_epoch = _steps_per_epoch(len(train_data), recipe, accelerator.num_processes)
    scheduler = make_scheduler(optimizer, recipe.train, steps_per_epoch * recipe.train.epochs)
    strategy.attach(optimizer, scheduler)  # progressive adds groups to both as blocks thaw
    model, optimizer = accelerator.prepare(model, optimizer)
    retain = None  # measured on the starting weights: a resumed run loads its checkpoint only inside train()
    if retain_plan is not None:
        retain = forgetting.start(
            retain_plan, recipe, accelerator.unwrap_model(model), tokenizer, task.collate_fn
        )

    callbacks: list[Callback] = [GradientMonitor()]
    es = recipe.train.early_stopping
    if es.patience:
        callbacks.append(EarlyStopping(recipe.eval.metric, es.patience, es.min_delta))
    callbacks += strategy.callbacks() + (retain.callbacks if retain else []) + list(extra_callbacks or [])
    callbacks += penalty_callbacks(recipe)  # train.l1
    callbacks += task.callbacks(accelerator.unwrap_model(model))  # causal-lm: forgetting.method
    callbacks += trackers  # last, so they log the keys the other callbacks add to each record

    # ---- training, evaluation of the best weights, outputs (trackers hear of a failure) ----
    with aborted_on_error(trackers):
        loop_start = time.perf_counter()  # training with its per-epoch evaluation and checkpoints
        outcome = train(
            recipe, task, model, optimizer, scheduler, train_data, val_data, accelerator=accelerator,
            run_dir=run_dir, callbacks=callbacks, resume_from=resume_from, quiet=quiet,
        ) if strategy.trains else strategy.skip_training(run_dir)  # fmt: skip
        loop_s = time.perf_counter() - loop_start

        unwrapped = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
        metrics: dict[str, Any] = {
            "labels": bundle.labels, "best_epoch": outcome.best_epoch, "epochs_run": outcome.epochs_run,
            "steps": outcome.steps, "stop_reason": outcome.stop_reason, "precision": precision,
            "device": str(accelerator.device), "trainable_params": trainable, "total_params": total,
            "world_size": accelerator.num_processes,
            "trainable_pct": 100.0 * trainable / total, "train_time_s": outcome.train_time_s,
            "train_loop_s": loop_s, "validation_start": outcome.start_metrics,
            "data": {"train": len(bundle.train), "validation": len(bundle.validation),
                     "test": len(bundle.test) if bundle.test else None, **bundle.notes},
        }  # fmt: skip
        findings: list[Finding] = []
        if accelerator.is_main_process:
            encoded = {"validation": val_data}
            if bundle.test is not None:
                encoded["test"] = task.encode(bundle.test)
            with accelerator.autocast():  # the precision validation ran in during training
                for name, split in (("validation", bundle.validation), ("test", bundle.test)):
                    metrics[name] = _evaluate_split(
                        task, unwrapped, split, encoded.get(name), recipe, run_dir
                    )
                if retain is not None:
                    metrics["forgetting"], found = forgetting.finish(retain, unwrapped)
                    findings += found
            task.save(run_dir, unwrapped, metrics)
            extra, found = task.finish(run_dir, unwrapped)  # after save: it may add files to model/
            metrics |= extra
            findings += found
            write_json(run_dir / "metrics.json", metrics)
            findings = diagnose(run_dir) + findings
            write_json(run_dir / "findings.json", [f.to_dict() for f in findings])
            render_report(run_dir)
            for tracker in trackers:
                tracker.log_results(run_dir, metrics, findings, outcome.steps)
    accelerator.wait_for_everyone()
    return RunResult(run_dir=run_dir, metrics=metrics, outcome=outcome, findings=findings)


def finished_run(run_dir: Path) -> RunResult | None:
    """The recorded result of a run whose outputs are all written (report.html is the last), else None."""
    files = finished_run_files(run_dir)
    if files is None:
        return None
    metrics, findings = files
    log.info("%s is finished; nothing to resume (start it again with --overwrite)", run_dir)
    found = [Finding.from_dict(f) for f in findings]
    return RunResult(run_dir=run_dir, metrics=metrics, outcome=None, findings=found, already_finished=True)


def _audit(recipe: Recipe, task: Task, tables: dict[str, Any], tokenizer: Any) -> AuditReport | None:
    """The data doctor as the first stage; audit.gate=error stops here, before the run directory exists."""
    if recipe.audit.gate == "off":
        return None
    balance = "oversample" if recipe.data.balance == "oversample" else None
    balance = balance or ("class-weights" if recipe.train.class_weights else None)
    report = task.audit(tables, tokenizer, balance)  # the task's doctor (causal-lm: no label checks)
    check_gate(report, recipe.audit.gate)
    for finding in report.findings:
        if finding.severity != "info":
            log.warning("data audit [%s] %s", finding.severity, finding.title)
    return report


def _steps_per_epoch(n: int, recipe: Recipe, processes: int) -> int:
    from tunesmith.data.batching import LengthBucketBatcher

    batches = len(LengthBucketBatcher([1] * n, recipe.train.batch_size, seed=recipe.train.seed).batches(0))
    return -(-batches // (recipe.train.grad_accum * processes))


def _evaluate_split(
    task: Task, model: Any, split: Split | None, data: Encoded | None, recipe: Recipe, run_dir: Path
) -> dict[str, Any] | None:
    if split is None or data is None:
        return None
    device = next(model.parameters()).device
    evaluation = task.evaluate(model, data, batch_size=recipe.eval.batch_size, device=device)
    task.write_predictions(run_dir, split, evaluation)
    return evaluation.metrics
