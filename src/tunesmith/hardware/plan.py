"""The plan: will this run fit, how long will it take, and what should change (`tunesmith plan`).

Weights, gradients and optimizer state are counted from the tensors themselves; activations and the peak
are measured by the probe (tunesmith.hardware.probe) on the run's longest batch at its batch size and
length; the time comes from the probe's measured seconds against padded tokens, summed over the epoch's
real length-bucketed batches. Findings carry the config patch that fixes what is wrong.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from tunesmith.config.loader import recipe_to_yaml
from tunesmith.config.schema import Recipe
from tunesmith.data.batching import LengthBucketBatcher
from tunesmith.findings import Finding
from tunesmith.hardware.levers import (
    AUTO_PROBE_BATCH,
    HEADROOM,
    effective_batch,
    enable_gradient_checkpointing,
    micro_batch_choices,
    with_batch,
)
from tunesmith.hardware.memory import MIB, DeviceInfo, devices
from tunesmith.hardware.probe import ProbeResult, probe
from tunesmith.outputs import write_json
from tunesmith.strategies.base import Strategy
from tunesmith.tasks.base import Encoded, Task
from tunesmith.training.oom import is_oom
from tunesmith.training.precision import cpu_has_fast_bf16

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
SLOW_RUN_S = 3600.0  # a run estimated above an hour gets the speed levers
TIGHT_SHARE = 0.85  # a peak above this share of the memory there is leaves too little headroom
# Rough effect of bf16 on the measured activations (it halves most saved tensors); benchmarks/hardware.py
# measures the real savings. Gradient checkpointing's share is measured by a second probe when the plan
# recommends it (measure_checkpointing); this share (MiniLM, 16 x 128, benchmarks/hardware.py) is only
# the fallback for a model the probe cannot run checkpointed.
CHECKPOINTING_KEEPS = 0.58
BF16_KEEPS = 0.55


@dataclass
class Plan:
    devices: list[DeviceInfo]
    device: str
    precision: str
    probe: ProbeResult
    available_bytes: int
    batch_size: int
    grad_accum: int
    epochs: int
    steps_per_epoch: int
    train_epoch_s: float
    validation_s: float
    run_s: float
    tokens_per_s: float
    truncation: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    auto: dict[str, Any] | None = None  # how batch_size: auto chose
    checkpointing_keeps: float | None = None  # measured share of the activations checkpointing keeps
    copies_bytes: int = 0  # the loop's host copies: best-epoch weights, nan_policy rollback state
    snapshot_bytes: int = 0  # train.checkpoint_async: the host copy a background write holds
    snapshot_overlaps: bool = False  # ... while training steps run (another epoch or mid-epoch checkpoints)

    @property
    def needed_bytes(self) -> int:
        p = self.probe
        # a checkpoint serialises the weights and the optimizer state one file at a time (safetensors
        # builds each file in memory), between steps: activations are gone by then
        file = max(p.weights_bytes, p.optimizer_bytes)
        saving = p.weights_bytes + p.other_bytes + p.optimizer_bytes + file + self.snapshot_bytes
        # a background write (snapshot + the file being built) beside the next steps' activations
        training = p.peak_bytes + (self.snapshot_bytes + file if self.snapshot_overlaps else 0)
        return max(training, saving) + self.copies_bytes

    def to_dict(self) -> dict[str, Any]:
        p = self.probe
        return {
            "devices": [d.to_dict() for d in self.devices], "device": self.device, "precision": self.precision,
            "memory_mb": {"weights": p.weights_bytes / MIB, "gradients": p.gradients_bytes / MIB,
                          "optimizer": p.optimizer_bytes / MIB, "activations": p.activations_bytes / MIB,
                          "other": p.other_bytes / MIB, "train_peak": p.train_peak_bytes / MIB,
                          "eval_peak": p.eval_peak_bytes / MIB, "loop_copies": self.copies_bytes / MIB, "checkpoint_snapshot": self.snapshot_bytes / MIB,
                          "needed": self.needed_bytes / MIB,
                          "available": self.available_bytes / MIB},
            "batch_size": self.batch_size, "grad_accum": self.grad_accum, "length": p.length,
            "epochs": self.epochs, "steps_per_epoch": self.steps_per_epoch,
            "time_s": {"train_epoch": self.train_epoch_s, "validation": self.validation_s, "run": self.run_s},
            "tokens_per_s": self.tokens_per_s, "truncation": self.truncation, "auto": self.auto,
            "probe": p.to_dict(), "findings": [f.to_dict() for f in self.findings],
            "checkpointing_keeps": self.checkpointing_keeps,
        }  # fmt: skip

    def lines(self) -> list[str]:
        """What `tunesmith plan` prints and every run logs at its start, one line each."""
        p = self.probe
        found = "; ".join(f"{d.name} ({d.description}, {_gb(d.available_bytes)} free of {_gb(d.total_bytes)})"
                          for d in self.devices)  # fmt: skip
        share = self.needed_bytes / max(self.available_bytes, 1)
        lines = [
            f"devices: {found}; training on {self.device} in {self.precision}",
            f"memory: weights {_mb(p.weights_bytes)} + gradients {_mb(p.gradients_bytes)} + optimizer "
            f"{_mb(p.optimizer_bytes)} + activations {_mb(p.activations_bytes)} (measured: batch {p.batch_size}"
            f" x {p.length} tokens) + runtime {_mb(p.other_bytes)} + loop copies {_mb(self.copies_bytes)} = peak "
            f"{_mb(self.needed_bytes)} of "
            f"{_mb(self.available_bytes)} available ({share:.0%})",
            f"time: {self.tokens_per_s:,.0f} tokens/s in the probe -> epoch ~{_dur(self.train_epoch_s)} training"
            f" + {_dur(self.validation_s)} validation; {self.epochs} epochs ~{_dur(self.run_s)}",
        ]
        if self.auto:
            lines.append(f"batch_size auto: micro-batch {self.batch_size} x grad_accum {self.grad_accum} = "
                         f"effective batch {self.batch_size * self.grad_accum} ({self.auto['why']})")  # fmt: skip
        for f in self.findings:
            patch = f" [{', '.join(f'{k}={v}' for k, v in f.config_patch.items())}]" if f.config_patch else ""
            lines.append(f"[{f.severity}] {f.title} -> {f.recommendation}{patch}")
        return lines


def _mb(n: float) -> str:
    return f"{n / MIB:,.0f} MB"


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _dur(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _device_info(found: list[DeviceInfo], device: torch.device) -> DeviceInfo:
    name = "cpu" if device.type == "cpu" else f"cuda:{device.index or 0}"
    return next((d for d in found if d.name == name), found[0])


def _time_model(points: list[tuple[int, int, float]]) -> tuple[float, float]:
    """seconds(micro-batch) = c0 + c1 x padded tokens, through the probe's points."""
    if len(points) >= 2 and points[0][0] != points[1][0]:
        (p1, _, t1), (p2, _, t2) = points[0], points[1]
        c1 = (t1 - t2) / (p1 - p2)
        c0 = t1 - c1 * p1
        if c1 > 0 and c0 >= 0:
            return c0, c1
    padded = sum(p for p, _, _ in points)
    return 0.0, sum(t for _, _, t in points) / max(padded, 1)


def estimate_times(
    recipe: Recipe, result: ProbeResult, train: Encoded, val: Encoded | None
) -> dict[str, float]:
    cfg = recipe.train
    c0, c1 = _time_model(result.train_points)
    batches = LengthBucketBatcher(train.lengths, cfg.batch_size, seed=cfg.seed, shuffle=True).batches(0)
    lengths = train.lengths
    micro = sum(c0 + c1 * len(b) * max(lengths[i] for i in b) for b in batches)
    steps = math.ceil(len(batches) / cfg.grad_accum)
    train_s = micro + steps * result.optimizer_step_s
    val_s = (
        sum(val.lengths) / result.eval_tokens_per_s if val is not None and result.eval_tokens_per_s else 0.0
    )
    evaluations = cfg.epochs + (1 if recipe.eval.on_start else 0) + 1  # + the final evaluation
    real = sum(r for _, r, _ in result.train_points)
    seconds = sum(t for _, _, t in result.train_points)
    return {"train_epoch": train_s, "validation": val_s, "run": cfg.epochs * train_s + evaluations * val_s,
            "steps": float(steps), "tokens_per_s": real / max(seconds, 1e-9)}  # fmt: skip


def truncation_stats(recipe: Recipe, train: Encoded) -> dict[str, Any]:
    """How many training texts are cut at model.max_length, and a shorter length that would cut few."""
    limit = recipe.model.max_length
    lengths = sorted(train.lengths)
    if not lengths or "position_ids" in train.extra:  # packed windows are all max_length long
        return {}
    p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
    shorter = min(limit, max(8, -(-p95 // 8) * 8))
    return {
        "max_length": limit, "truncated_share": sum(n >= limit for n in lengths) / len(lengths),
        "p50": lengths[len(lengths) // 2], "p95": p95, "suggested_max_length": shorter,
        "truncated_share_at_suggested": sum(n > shorter for n in lengths) / len(lengths),
    }  # fmt: skip


def _memory_findings(
    plan: Plan, recipe: Recipe, model: torch.nn.Module, device: torch.device
) -> list[Finding]:
    p, cfg = plan.probe, recipe.train
    needed, available = plan.needed_bytes, plan.available_bytes
    if needed <= TIGHT_SHARE * available:
        return []
    fixed = p.train_peak_bytes - p.activations_bytes
    options: list[tuple[str, dict[str, Any], int]] = []  # (what, patch, predicted peak)
    if cfg.batch_size > 1:
        half = cfg.batch_size // 2
        options.append((f"micro-batch {half} with twice the accumulation (the same effective batch)",
                        {"train.batch_size": half, "train.grad_accum": cfg.grad_accum * 2},
                        fixed + p.activations_bytes * half // cfg.batch_size))  # fmt: skip
    if not cfg.gradient_checkpointing and getattr(model, "supports_gradient_checkpointing", False):
        keeps = plan.checkpointing_keeps if plan.checkpointing_keeps is not None else CHECKPOINTING_KEEPS
        options.append(("gradient checkpointing (recomputes activations, about 30% slower)",
                        {"train.gradient_checkpointing": True}, fixed + int(p.activations_bytes * keeps)))  # fmt: skip
    if recipe.strategy.name == "full":
        states = p.gradients_bytes + p.optimizer_bytes
        options.append(("LoRA: gradients and optimizer state for about 1% of the weights",
                        {"strategy.name": "lora", "train.lr": 5e-4}, p.train_peak_bytes - int(0.98 * states)))  # fmt: skip
    if plan.precision == "fp32" and (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        options.append(("bf16 autocast: most saved activations at half the size", {"train.precision": "bf16"},
                        fixed + int(p.activations_bytes * BF16_KEEPS)))  # fmt: skip
    t = plan.truncation
    if t and t["suggested_max_length"] < 0.8 * t["max_length"]:
        keep = t["suggested_max_length"] / t["max_length"]
        options.append((f"model.max_length {t['suggested_max_length']}: 95% of the training texts are no longer "
                        f"({t['truncated_share_at_suggested']:.1%} would be cut)",
                        {"model.max_length": t["suggested_max_length"]}, fixed + int(p.activations_bytes * keep)))  # fmt: skip
    options.sort(key=lambda o: o[2])
    fits = [o for o in options if o[2] <= TIGHT_SHARE * available]
    best = fits[0] if fits else (options[0] if options else None)
    fit = needed <= available
    evidence = {"needed_mb": needed / MIB, "available_mb": available / MIB, "device": plan.device,
                "options": [{"change": w, "config_patch": patch, "predicted_peak_mb": m / MIB} for w, patch, m in options]}  # fmt: skip
    title = (f"the run needs about {_mb(needed)} at its peak, {needed / available:.0%} of the {_mb(available)} "
             f"available on {plan.device}")  # fmt: skip
    title += "" if fit else ": it will not fit"
    advice = "; ".join(f"{w}: ~{_mb(m)}" for w, _, m in options) or "use a machine with more memory"
    return [Finding(
        "hardware.memory", "plan", "warning" if fit else "error", title, evidence, None,
        (f"Lower the peak: {advice}." if options else advice) + ("" if fit else " (train.oom_policy: retry halves "
        "the micro-batch when memory runs out, but a plan that fits loses no time)"),
        best[1] if best else None,
    )]  # fmt: skip


def _time_findings(plan: Plan, recipe: Recipe, device: torch.device) -> list[Finding]:
    if plan.run_s <= SLOW_RUN_S:
        return []
    patch: dict[str, Any] = {}
    advice = []
    if plan.precision == "fp32" and (
        (device.type == "cuda" and torch.cuda.is_bf16_supported())
        or (device.type == "cpu" and cpu_has_fast_bf16())
    ):
        patch["train.precision"] = "bf16"
        advice.append("bf16 autocast (this hardware runs it fast)")
    t = plan.truncation
    if t and t["suggested_max_length"] < 0.8 * t["max_length"]:
        patch["model.max_length"] = t["suggested_max_length"]
        advice.append(f"model.max_length {t['suggested_max_length']} (p95 of the training texts; "
                      f"{t['truncated_share_at_suggested']:.1%} would be cut)")  # fmt: skip
    if recipe.strategy.name == "full":
        advice.append("strategy.name: lora (a backward pass that skips most weight gradients)")
        patch.setdefault("strategy.name", "lora")
    if recipe.train.gradient_checkpointing:
        advice.append("train.gradient_checkpointing: false if memory allows (it recomputes every forward)")
    return [Finding(
        "hardware.time", "plan", "warning",
        f"the run will take about {_dur(plan.run_s)} ({_dur(plan.train_epoch_s)} per epoch at "
        f"{plan.tokens_per_s:,.0f} tokens/s on {plan.device})",
        {"run_s": plan.run_s, "train_epoch_s": plan.train_epoch_s, "tokens_per_s": plan.tokens_per_s},
        None, ("Faster: " + "; ".join(advice) + ".") if advice else "Use a faster machine or fewer epochs.",
        patch or None,
    )]  # fmt: skip


def make_plan(
    recipe: Recipe, task: Task, model: torch.nn.Module, strategy: Strategy, train_data: Encoded,
    val_data: Encoded | None, accelerator: Accelerator, precision: str,
) -> tuple[Recipe, Plan]:  # fmt: skip
    """Probe the run (resolving train.batch_size: auto first) and return the recipe to train with + plan."""
    device = accelerator.device
    found = devices()
    target = _device_info(found, device)
    available = target.available_bytes
    auto = None
    if recipe.train.batch_size == "auto":  # type: ignore[comparison-overlap]  # the schema's `auto`
        recipe, auto = _resolve_auto(recipe, task, model, strategy, train_data, accelerator, available)
    result = None
    while result is None:
        try:
            result = probe(recipe, task, model, strategy, train_data, val_data, accelerator,
                           batch_size=recipe.train.batch_size)  # fmt: skip
        except Exception as exc:  # out of memory in the probe itself: halve and say so
            if not is_oom(exc) or recipe.train.batch_size == 1:
                raise
            halved = with_batch(recipe, recipe.train.batch_size // 2, recipe.train.grad_accum * 2)
            log.warning("plan: out of memory at micro-batch %d; probing %d", recipe.train.batch_size,
                        halved.train.batch_size)  # fmt: skip
            recipe = halved
            _free(device)
    times = estimate_times(recipe, result, train_data, val_data)
    plan = Plan(
        devices=found, device=str(device), precision=precision, probe=result, available_bytes=available,
        batch_size=recipe.train.batch_size, grad_accum=recipe.train.grad_accum, epochs=recipe.train.epochs,
        steps_per_epoch=int(times["steps"]), train_epoch_s=times["train_epoch"], validation_s=times["validation"],
        run_s=times["run"], tokens_per_s=times["tokens_per_s"], truncation=truncation_stats(recipe, train_data),
        auto=auto, copies_bytes=loop_copies(recipe, result, device),
    )  # fmt: skip
    if recipe.train.checkpoint_async and device.type == "cpu":  # on a GPU the snapshot is host memory
        plan.snapshot_bytes = result.weights_bytes + result.optimizer_bytes
        plan.snapshot_overlaps = recipe.train.epochs > 1 or recipe.train.checkpoint_every > 0
    if plan.needed_bytes > TIGHT_SHARE * available:  # gradient checkpointing may be recommended: measure it
        plan.checkpointing_keeps = measure_checkpointing(recipe, task, model, strategy, train_data, accelerator,
                                                         result)  # fmt: skip
    plan.findings = _memory_findings(plan, recipe, model, device) + _time_findings(plan, recipe, device)
    return recipe, plan


def measure_checkpointing(
    recipe: Recipe, task: Task, model: torch.nn.Module, strategy: Strategy, train_data: Encoded,
    accelerator: Accelerator, plain: ProbeResult,
) -> float | None:  # fmt: skip
    """The share of the probe's activations left with gradient checkpointing on, from a second probe at
    the same micro-batch (checkpointing off again after it); None when the model cannot do it."""
    wrapped: Any = model
    base: Any = wrapped.get_base_model() if hasattr(wrapped, "get_base_model") else wrapped
    if recipe.train.gradient_checkpointing or not getattr(base, "supports_gradient_checkpointing", False):
        return None
    if plain.activations_bytes <= 0:
        return None
    try:
        enable_gradient_checkpointing(model)
        checkpointed = probe(recipe, task, model, strategy, train_data, None, accelerator,
                             batch_size=plain.batch_size, timed=False)  # fmt: skip
    except Exception as exc:
        if not is_oom(exc):
            raise
        return None
    finally:
        base.gradient_checkpointing_disable()
        _free(accelerator.device)
    return min(1.0, checkpointed.activations_bytes / plain.activations_bytes)


def loop_copies(recipe: Recipe, result: ProbeResult, device: torch.device) -> int:
    """Host copies the loop keeps: the best epoch's weights, and for nan_policy rollback the last good
    weights and optimizer state. They live in host memory, so they count on a CPU run only."""
    if device.type != "cpu":
        return 0
    copies = result.weights_bytes
    if recipe.train.nan_policy == "rollback":
        copies += result.weights_bytes + result.optimizer_bytes
    return copies


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _resolve_auto(
    recipe: Recipe, task: Task, model: torch.nn.Module, strategy: Strategy, train_data: Encoded,
    accelerator: Accelerator, available: int,
) -> tuple[Recipe, dict[str, Any]]:  # fmt: skip
    """The largest micro-batch (a divisor of the effective batch) whose predicted peak leaves HEADROOM."""
    target = effective_batch(recipe.train)
    choices = [m for m in micro_batch_choices(recipe.train) if m <= max(1, len(train_data))] or [1]
    # two small probes give activations = intercept + slope x micro-batch (workspaces do not scale)
    m0 = min(choices[0], AUTO_PROBE_BATCH)
    m1 = max(1, m0 // 2)
    small = probe(recipe, task, model, strategy, train_data, None, accelerator, batch_size=m0, timed=False)
    average = small.activations_bytes / max(small.batch_size, 1)
    per_example = average
    if m1 < small.batch_size:
        smaller = probe(
            recipe, task, model, strategy, train_data, None, accelerator, batch_size=m1, timed=False
        )
        slope = (small.activations_bytes - smaller.activations_bytes) / (
            small.batch_size - smaller.batch_size
        )
        # A slope under half the average is likelier the two probes' noise (resident memory moves by a few MB)
        # than a fixed workspace that large: take the average then, which errs towards a smaller batch.
        per_example = slope if slope >= 0.5 * average else average
    fixed = small.train_peak_bytes - per_example * small.batch_size
    budget = (1 - HEADROOM) * available
    chosen = next((m for m in choices if fixed + per_example * m <= budget), choices[-1])
    why = (f"predicted peak {_mb(fixed + per_example * chosen)} within {1 - HEADROOM:.0%} of {_mb(available)}, "
           f"from a probe at micro-batch {small.batch_size}")  # fmt: skip
    return with_batch(recipe, chosen, target // chosen), {
        "effective_batch": target, "probe_batch": small.batch_size, "per_example_activations_mb": per_example / MIB,
        "fixed_mb": fixed / MIB,
        "chosen": chosen, "why": why,
    }  # fmt: skip


def plan_for_run(
    recipe: Recipe, task: Task, model: torch.nn.Module, strategy: Strategy, train_data: Encoded,
    val_data: Encoded, accelerator: Accelerator, run_dir: Path, precision: str,
) -> Recipe:  # fmt: skip
    """The run's plan stage: memory levers on, probe, batch_size auto resolved, the plan logged one line
    each and saved as RUN_DIR/plan.json (its findings reach findings.json through the diagnosis)."""
    if recipe.train.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    auto = recipe.train.batch_size == "auto"  # type: ignore[comparison-overlap]
    recipe, plan = make_plan(recipe, task, model, strategy, train_data, val_data, accelerator, precision)
    for line in plan.lines():  # a finding's line is a warning: it shows under --quiet too
        (log.warning if line.startswith(("[warning]", "[error]")) else log.info)("plan: %s", line)
    if accelerator.is_main_process:
        write_json(run_dir / PLAN_FILE, plan.to_dict())
        if auto:  # config.yaml records the micro-batch and accumulation the run trains with
            (run_dir / "config.yaml").write_text(recipe_to_yaml(recipe))
    return recipe
