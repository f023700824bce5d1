"""The training loop, top to bottom in one file, on Hugging Face Accelerate.

Per epoch: regenerate the epoch's length-bucketed batch order from (seed, epoch), skip the batches a
resumed run already did, and for each optimizer step run forward/backward (with accumulation), clip,
step, schedule, log and maybe checkpoint. At the end of an epoch: evaluate, record, let callbacks speak
(early stopping), remember the best weights, checkpoint. At the end: restore the best epoch's weights.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from tunesmith.config.schema import Recipe
from tunesmith.data.batching import LengthBucketBatcher
from tunesmith.tasks.base import Encoded, Evaluation, Task
from tunesmith.training import checkpoint as ckpt
from tunesmith.training import distributed as dist
from tunesmith.training.callbacks.base import Callback, TrainContext
from tunesmith.training.checkpoint_async import CheckpointWriter
from tunesmith.training.compile import Pad, compile_for_training, pad_id, uncompile
from tunesmith.training.microbatch import MicroBatch, MicroSteps
from tunesmith.training.optim import scale_learning_rate
from tunesmith.training.preemption import Preempted, PreemptionWatch
from tunesmith.training.progress import TrainProgress

log = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    best_epoch: int | None
    best_metric: float | None
    epochs_run: int
    steps: int
    stop_reason: str | None
    train_time_s: float
    events: list[dict[str, Any]] = field(default_factory=list)
    start_metrics: dict[str, Any] | None = None  # validation before the first step (eval.on_start)


class History:
    """Appends records to history.jsonl (main process only); its byte size is saved in checkpoints."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def truncate(self, size: int) -> None:
        if self.enabled and self.path.exists():
            with open(self.path, "r+") as handle:
                handle.truncate(size)


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _rollback_snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """nan_policy: rollback's last good weights, copied on the device they live on: no host copy and no
    device sync on every logged step (the optimizer snapshot below stays on the device too)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _optimizer_snapshot(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    state = optimizer.state_dict()
    return {
        "state": {
            k: {n: (v.clone() if torch.is_tensor(v) else v) for n, v in s.items()}
            for k, s in state["state"].items()
        },
        "param_groups": [dict(g) for g in state["param_groups"]],
    }


def train(
    recipe: Recipe,
    task: Task,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    train_data: Encoded,
    val_data: Encoded,
    *,
    accelerator: Accelerator,
    run_dir: Path,
    callbacks: list[Callback],
    resume_from: Path | None = None,
    quiet: bool = False,
) -> TrainOutcome:
    cfg = recipe.train
    main = accelerator.is_main_process
    device = accelerator.device
    history = History(run_dir / "history.jsonl", enabled=main)
    batcher = LengthBucketBatcher(train_data.lengths, cfg.batch_size, seed=cfg.seed, shuffle=True)
    micro_per_epoch = len(batcher.batches(0))
    steps_per_epoch = math.ceil(micro_per_epoch / (cfg.grad_accum * accelerator.num_processes))
    task.start_training(train_data, device)
    higher_is_better = task.higher_is_better(recipe.eval.metric)
    ctx = TrainContext(recipe, model, optimizer, scheduler, accelerator, steps_per_epoch=steps_per_epoch)
    ctx.extra["run_dir"] = run_dir

    # Resumable state: where we are in the data order, the best epoch so far; the task's running epoch
    # sums are tensors and travel in the checkpoint beside it.
    state: dict[str, Any] = {
        "epoch": 0, "batches_done": 0, "step": 0, "best_metric": None, "best_epoch": None,
        "epoch_time_s": 0.0, "train_time_s": 0.0, "rollbacks": 0, "history_bytes": 0, "start_metrics": None,
    }  # fmt: skip
    sums = _new_sums(task, len(train_data), device)
    best_weights: dict[str, torch.Tensor] | None = None
    if resume_from is not None:
        unwrapped = accelerator.unwrap_model(model)
        state, cb_states, best_weights, task_sums = ckpt.load_checkpoint(
            resume_from, model=unwrapped, optimizer=optimizer, scheduler=scheduler
        )
        sums = {k: v.to(device) for k, v in task_sums.items()}
        if not main:  # the main process saved every process's sums combined: they count once
            sums = _new_sums(task, len(train_data), device)
        if (
            best_weights is None and state["best_epoch"] is not None
        ):  # saved at the best epoch's end: it is the model
            best_weights = _snapshot(unwrapped)
        for cb in callbacks:
            cb.load_state_dict(cb_states.get(cb.name, {}))
        history.truncate(state["history_bytes"])
        log.info("resumed from %s (epoch %d, step %d)", resume_from, state["epoch"] + 1, state["step"])
    ctx.step, ctx.epoch = state["step"], state["epoch"]

    writer = CheckpointWriter(background=cfg.checkpoint_async)  # the write runs beside the next steps

    def save(best_is_current: bool) -> None:
        task_state = dist.gather_sums(sums, accelerator)  # every process calls save: a collective
        if not main:
            return
        state["history_bytes"] = history.size()
        writer.save(
            run_dir, state["step"], model=accelerator.unwrap_model(model), optimizer=optimizer,
            scheduler=scheduler, state=state, callbacks={cb.name: cb.state_dict() for cb in callbacks},
            best_weights=None if best_is_current else best_weights, keep=cfg.keep_checkpoints, task_state=task_state,
        )  # fmt: skip

    def event(name: str, message: str, **data: Any) -> None:
        record = {"kind": "event", "step": state["step"], "event": name, "message": message, **data}
        history.write(record)
        events.append(record)
        log.warning("%s", message) if name.startswith("nan") else log.info("%s", message)

    def preempt_now(since: float | None) -> None:  # SIGTERM: checkpoint (unless just written), then exit
        if since is not None:
            _add_time(state, since)
            save(best_is_current=False)
        writer.wait()
        raise Preempted(ckpt.latest_checkpoint(run_dir), state["step"])

    events: list[dict[str, Any]] = []
    if resume_from is None and recipe.eval.on_start:  # where validation starts: epoch 0, before any step
        start = _validate(task, model, val_data, recipe, accelerator)
        state["start_metrics"] = {k: v for k, v in start.metrics.items() if isinstance(v, float)}
        history.write({"kind": "epoch", "step": 0, "epoch": 0, **_val_keys(start)})
    for cb in callbacks:
        cb.on_train_start(ctx)
    model.train()
    progress = TrainProgress(enabled=main and not quiet, steps_per_epoch=steps_per_epoch, epochs=cfg.epochs)
    good_state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
    if cfg.nan_policy == "rollback":
        good_state = (_rollback_snapshot(accelerator.unwrap_model(model)), _optimizer_snapshot(optimizer))
    stop_reason: str | None = None
    micro_steps = MicroSteps(task, cfg, accelerator, event)
    pad = compile_for_training(recipe, accelerator.unwrap_model(model), pad_id(task))  # train.compile
    # The step's running sums stay on the device; they are read on logged steps only.
    zero = torch.zeros((), dtype=torch.float64, device=device)
    preempt = False
    with PreemptionWatch() as watch, progress, writer:
        while state["epoch"] < cfg.epochs and stop_reason is None:
            epoch = state["epoch"]
            ctx.epoch = epoch
            loader = _epoch_batches(
                batcher.batches(epoch), state["batches_done"], train_data, task, accelerator, pad
            )
            progress.start_epoch(epoch, done_steps=state["step"] - epoch * steps_per_epoch)
            window_loss, window_n, window_tokens = zero.clone(), zero.clone(), zero.clone()
            window_start = epoch_start = time.perf_counter()
            step_batches: list[MicroBatch] = []
            step_finite = torch.ones((), dtype=torch.bool, device=device)
            grad_norm: torch.Tensor | float | None = None
            for i, item in enumerate(loader):
                last_micro = i == len(loader) - 1
                step_batches.append(item)
                state["batches_done"] += accelerator.num_processes
                if len(step_batches) < cfg.grad_accum and not last_micro:
                    continue
                # forward + backward of the step's micro-batches (train.oom_policy on out-of-memory)
                done, stop_reason = micro_steps.run(model, optimizer, step_batches, callbacks, ctx)
                step_batches = []
                if stop_reason:
                    break
                for out, finite, tokens in done:
                    task.accumulate(sums, out, finite)
                    window_loss += torch.where(finite, out.loss.double(), 0.0)
                    window_n += finite
                    window_tokens += finite * tokens
                    sums[TOKENS] += finite * tokens
                    step_finite &= finite
                # ---- one optimizer step: the one host read per step says whether it was finite ----
                finite_step, preempt = dist.step_flags(step_finite, watch, accelerator)
                if not finite_step:
                    step_finite.fill_(True)
                    optimizer.zero_grad(set_to_none=True)
                    stop_reason, good_state = _handle_nan(
                        cfg, state, event, model, optimizer, scheduler, good_state, accelerator
                    )
                    if stop_reason:
                        break
                    if preempt and not last_micro:
                        preempt_now(epoch_start)
                    continue
                for cb in callbacks:
                    cb.on_after_backward(ctx)
                grad_norm = None
                if cfg.grad_clip is not None:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                ctx.step = state["step"]
                # Step 1 is always logged, so the diagnosis knows where the loss started.
                logged = state["step"] % cfg.log_every == 0 or state["step"] == 1
                record: dict[str, Any] = {}
                if logged:
                    elapsed = time.perf_counter() - window_start
                    window_loss, window_n, window_tokens = dist.sum_windows(
                        [window_loss, window_n, window_tokens], accelerator
                    )
                    n = float(window_n.item())
                    record = {
                        "kind": "step", "step": state["step"],
                        "epoch": round(epoch + state["batches_done"] / max(micro_per_epoch, 1), 4),
                        "loss": float(window_loss.item()) / n if n else float("nan"),
                        "lr": float(optimizer.param_groups[0]["lr"]),
                        "grad_norm": None if grad_norm is None else float(grad_norm),
                        "tokens_per_s": float(window_tokens.item()) / max(elapsed, 1e-9),
                        "time_s": state["train_time_s"] + time.perf_counter() - epoch_start,
                    }  # fmt: skip
                for cb in callbacks:
                    cb.on_step_end(ctx, record)
                if logged:
                    history.write(record)
                    progress.update(record["loss"], record["lr"], record["tokens_per_s"])
                    window_loss, window_n, window_tokens = zero.clone(), zero.clone(), zero.clone()
                    window_start = time.perf_counter()
                    if cfg.nan_policy == "rollback":
                        good_state = (
                            _rollback_snapshot(accelerator.unwrap_model(model)),
                            _optimizer_snapshot(optimizer),
                        )
                progress.advance()
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0 and not last_micro:
                    _add_time(state, epoch_start)
                    epoch_start = time.perf_counter()
                    save(best_is_current=False)
                if preempt and not last_micro:  # on the epoch's last step: after its end-of-epoch checkpoint
                    preempt_now(epoch_start)
            if stop_reason:
                break
            # ---- end of epoch: evaluate, record, callbacks, best weights, checkpoint ----
            _add_time(state, epoch_start)
            all_sums = dist.gather_sums(sums, accelerator)  # several processes: the epoch's totals
            record = {
                "kind": "epoch", "step": state["step"], "epoch": epoch + 1, **task.train_metrics(all_sums),
                "time_s": state["train_time_s"],
                "tokens_per_s": float(all_sums[TOKENS].item()) / max(state["epoch_time_s"], 1e-9),
            }  # fmt: skip
            if main:
                task.epoch_end(run_dir, epoch, all_sums)
            validation = _validate(task, model, val_data, recipe, accelerator)
            record.update(_val_keys(validation))
            record["peak_memory_mb"] = peak_memory_mb()
            ctx.extra["val_losses"] = validation.losses  # per-example: the monitor's paired noise estimate
            for cb in callbacks:
                cb.on_epoch_end(ctx, record)
            history.write(record)  # after the callbacks, so the keys they add are recorded
            value = float(record[f"val_{recipe.eval.metric}"])
            best = state["best_metric"]
            if best is None or (value > best if higher_is_better else value < best):
                state["best_metric"], state["best_epoch"] = value, epoch + 1
                best_weights = _snapshot(accelerator.unwrap_model(model))
                event("new_best", f"epoch {epoch + 1}: val_{recipe.eval.metric} {value:.4f} is the best so far",
                      metric=recipe.eval.metric, value=value)  # fmt: skip
            progress.end_epoch(record, recipe.eval.metric)
            state.update(epoch=epoch + 1, batches_done=0, epoch_time_s=0.0)
            sums = _new_sums(task, len(train_data), device)
            stop_reason = ctx.stop_reason
            if stop_reason:
                event("early_stop", stop_reason)
            save(best_is_current=state["best_epoch"] == epoch + 1)
            if preempt and not stop_reason:
                preempt_now(None)
    uncompile(accelerator.unwrap_model(model))
    for cb in callbacks:
        cb.on_train_end(ctx)
    if best_weights is not None:
        accelerator.unwrap_model(model).load_state_dict(best_weights)
    return TrainOutcome(
        best_epoch=state["best_epoch"], best_metric=state["best_metric"], epochs_run=state["epoch"],
        steps=state["step"], stop_reason=stop_reason, train_time_s=state["train_time_s"], events=events,
        start_metrics=state["start_metrics"],
    )  # fmt: skip


TOKENS = "loop.tokens"  # the loop's own entry in the epoch sums: real tokens of the finite micro-batches


def _new_sums(task: Task, n_train: int, device: torch.device) -> dict[str, torch.Tensor]:
    return {TOKENS: torch.zeros((), dtype=torch.int64, device=device), **task.new_sums(n_train, device)}


def _add_time(state: dict[str, Any], since: float) -> None:
    elapsed = time.perf_counter() - since
    state["train_time_s"] += elapsed
    state["epoch_time_s"] += elapsed


class _EpochBatches:
    """This process's share of an epoch's batches, from a position on, collated on the way.

    Yields (example indices on the device, real tokens in the batch, batch on the device). The token count
    is read from the CPU batch before the copy, so it costs no device sync.
    No torch DataLoader here on purpose: creating its iterator draws from the global RNG (for worker
    seeds), which would shift the dropout masks of a resumed run and break bit-exact resume.
    """

    def __init__(
        self, order: list[list[int]], data: Encoded, task: Task, accelerator: Accelerator, pad: Pad | None
    ) -> None:
        self.order, self.data, self.task, self.device = order, data, task, accelerator.device
        self.pad = pad  # train.compile: lengths padded to a few buckets

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Any:
        for indices in self.order:
            batch = self.task.collate(self.data, indices)
            batch = self.pad(batch) if self.pad else batch
            tokens = self.task.count_tokens(batch)
            index = torch.as_tensor(indices, dtype=torch.long).to(self.device, non_blocking=True)
            yield index, tokens, {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}


def _epoch_batches(
    order: list[list[int]],
    done: int,
    data: Encoded,
    task: Task,
    accelerator: Accelerator,
    pad: Pad | None = None,
) -> _EpochBatches:
    """Skip the `done` batches already trained on; with several processes, process i takes every n-th
    batch (the last round is padded with batches from the start so every process steps equally)."""
    n = accelerator.num_processes
    if n > 1 and len(order) % n:
        order = order + order[: n - len(order) % n]
    return _EpochBatches(order[done + accelerator.process_index :: n], data, task, accelerator, pad)


def _validate(
    task: Task, model: torch.nn.Module, data: Encoded, recipe: Recipe, accelerator: Accelerator
) -> Evaluation:
    return task.evaluate(model, data, batch_size=recipe.eval.batch_size, device=accelerator.device)


def _val_keys(validation: Evaluation) -> dict[str, Any]:
    """val_<metric> for every scalar metric, and the standard error of the per-example losses."""
    losses = validation.losses
    record = {f"val_{k}": v for k, v in validation.metrics.items() if isinstance(v, float)}
    record["val_loss_se"] = float(np.std(losses, ddof=1) / math.sqrt(len(losses))) if len(losses) > 1 else 0.0
    return record


def _handle_nan(
    cfg: Any, state: dict[str, Any], event: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: Any, good_state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None, accelerator: Accelerator,
) -> tuple[str | None, tuple[dict[str, torch.Tensor], dict[str, Any]] | None]:  # fmt: skip
    """Apply train.nan_policy to a step whose loss was NaN/Inf. Returns (stop_reason, good_state)."""
    where = f"step {state['step'] + 1} (epoch {state['epoch'] + 1})"
    if cfg.nan_policy == "stop":
        reason = f"non-finite loss at {where}; stopped (train.nan_policy=stop)"
        event("nan_stop", reason)
        return reason, good_state
    if cfg.nan_policy == "skip":
        event("nan_skip", f"non-finite loss at {where}; batch skipped (train.nan_policy=skip)")
        return None, good_state
    if state["rollbacks"] >= cfg.max_rollbacks:
        reason = (
            f"non-finite loss at {where} after {state['rollbacks']} rollbacks (train.max_rollbacks); stopped"
        )
        event("nan_stop", reason)
        return reason, good_state
    state["rollbacks"] += 1
    if good_state is not None:
        accelerator.unwrap_model(model).load_state_dict(good_state[0])
        optimizer.load_state_dict(good_state[1])
    scale_learning_rate(optimizer, scheduler, 0.5)
    event(
        "nan_rollback",
        f"non-finite loss at {where}; restored the last good weights and halved the learning rate "
        f"(rollback {state['rollbacks']} of {cfg.max_rollbacks})",
        lr=float(optimizer.param_groups[0]["lr"]),
    )
    return None, good_state
