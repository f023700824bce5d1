"""The probe: a few real training steps on the run's own model and longest batch, measured.

A probe step is the loop's step (task.step, backward, the run's own optimizer) with every learning rate
set to 0, so the weights do not move (AdamW with lr 0 adds exactly 0); the optimizer is thrown away
afterwards, gradients are cleared and the RNG is put back, so a run trains exactly as it would without a
plan. The steps: one warm-up on the longest batch (it also allocates the optimizer state), one measured on
the longest batch (the peak memory of a steady-state step: optimizer state present, activations,
gradients, the optimizer's temporaries), one timed on the longest batch and one on a median-length batch
(two points for time against padded tokens), and one evaluation batch of the longest validation examples
through task.evaluate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from accelerate import Accelerator

from tunesmith.config.schema import Recipe
from tunesmith.hardware.memory import PeakMeter, in_use_bytes
from tunesmith.strategies.base import Strategy
from tunesmith.tasks.base import Encoded, Task
from tunesmith.training.optim import make_optimizer


@dataclass
class ProbeResult:
    batch_size: int
    length: int  # padded length of the longest batch
    weights_bytes: int  # parameters and buffers
    gradients_bytes: int  # one gradient per trainable parameter
    optimizer_bytes: int  # the optimizer's state tensors (AdamW: two per trainable parameter)
    activations_bytes: int  # the rest of a step's peak: saved activations and temporaries (measured)
    other_bytes: int  # what the process held besides the weights before the probe (CPU: runtime, data)
    train_peak_bytes: int  # in use before the probe + optimizer state + the step's measured peak
    eval_peak_bytes: int  # in use before the probe + the evaluation batch's measured peak
    # (padded tokens, real tokens, seconds) of the timed training micro-batches (forward + backward)
    train_points: list[tuple[int, int, float]] = field(default_factory=list)
    optimizer_step_s: float = 0.0
    eval_tokens_per_s: float = 0.0

    @property
    def peak_bytes(self) -> int:
        return max(self.train_peak_bytes, self.eval_peak_bytes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tensor_bytes(tensors: Iterator[torch.Tensor] | list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def longest(data: Encoded, n: int) -> list[int]:
    """Indices of the `n` longest examples (the batch that needs the most memory)."""
    return sorted(range(len(data)), key=lambda i: -len(data.input_ids[i]))[: max(1, n)]


def median_batch(data: Encoded, n: int) -> list[int]:
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    mid = max(0, len(order) // 2 - n // 2)
    return order[mid : mid + n]


def subset(data: Encoded, indices: list[int]) -> Encoded:
    return Encoded(
        [data.input_ids[i] for i in indices],
        [data.labels[i] for i in indices],
        {k: [v[i] for i in indices] for k, v in data.extra.items()},
    )


@contextmanager
def untouched(model: torch.nn.Module, strategy: Strategy) -> Iterator[None]:
    """Put back what a probe changes: RNG streams, train/eval mode, gradients, a feature cache's entries."""
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    # A strategy's feature cache (frozen: features; progressive: frozen blocks' outputs): its attributes,
    # dicts copied, so entries and counters the probe adds are dropped again.
    cache = getattr(strategy, "cache", None)
    cache_state = (
        {k: dict(v) if isinstance(v, dict) else v for k, v in vars(cache).items()}
        if cache is not None
        else None
    )
    try:
        yield
    finally:
        for p in model.parameters():
            p.grad = None
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        model.train(was_training)
        if cache is not None and cache_state is not None:
            vars(cache).clear()
            vars(cache).update(cache_state)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def probe(
    recipe: Recipe,
    task: Task,
    model: torch.nn.Module,
    strategy: Strategy,
    train_data: Encoded,
    val_data: Encoded | None,
    accelerator: Accelerator,
    *,
    batch_size: int,
    timed: bool = True,
) -> ProbeResult:
    """Measure memory (and, when `timed`, speed) of the run's steps at micro-batch `batch_size`."""
    device = accelerator.device
    model.to(device)
    weights = tensor_bytes(list(model.parameters()) + list(model.buffers()))
    trainable = [p for p in model.parameters() if p.requires_grad]
    base = in_use_bytes(device)
    big = longest(train_data, batch_size)
    length = max(len(train_data.input_ids[i]) for i in big)

    def micro(indices: list[int]) -> tuple[int, int]:
        batch = task.collate(train_data, indices)
        real = task.count_tokens(batch)
        # images carry pixel_values: one "token" per image, nothing padded
        padded = int(batch["input_ids"].numel()) if "input_ids" in batch else real
        on_device = {k: v.to(device) for k, v in batch.items()}
        with accelerator.autocast():
            loss = task.step(model, on_device, torch.as_tensor(indices, device=device)).loss
        loss.backward()
        return padded, real

    points: list[tuple[int, int, float]] = []
    with untouched(model, strategy):
        model.train()
        train_cfg = recipe.train.model_copy(update={"lr": 0.0})  # also when lr is still "auto"
        optimizer = make_optimizer(strategy.param_groups(model, train_cfg), train_cfg)
        for group in optimizer.param_groups:
            group["lr"] = 0.0  # the weights must not move
        micro(big)  # warm-up: lazily created buffers and the optimizer state
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state = tensor_bytes([v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)])
        with PeakMeter(device) as meter:  # memory only: the meter's reset makes this step's pages cold
            micro(big)
            gradients = tensor_bytes([p.grad for p in trainable if p.grad is not None])
            optimizer.step()
            _sync(device)
        optimizer.zero_grad(set_to_none=True)
        optimizer_s = 0.0
        if timed:  # the longest batch again (warm), its optimizer step, and a median-length batch
            _sync(device)
            start = time.perf_counter()
            padded, real = micro(big)
            _sync(device)
            points.append((padded, real, time.perf_counter() - start))
            start = time.perf_counter()
            optimizer.step()
            _sync(device)
            optimizer_s = time.perf_counter() - start
            optimizer.zero_grad(set_to_none=True)
            mid = median_batch(train_data, batch_size)
            if mid and len(train_data.input_ids[mid[-1]]) < length:
                start = time.perf_counter()
                padded, real = micro(mid)
                _sync(device)
                points.append((padded, real, time.perf_counter() - start))
                optimizer.zero_grad(set_to_none=True)
        del optimizer
        eval_peak, eval_speed = base, 0.0
        if val_data is not None and len(val_data):
            sample = subset(val_data, longest(val_data, recipe.eval.batch_size))
            with PeakMeter(device) as eval_meter, accelerator.autocast():
                start = time.perf_counter()
                task.evaluate(model, sample, batch_size=recipe.eval.batch_size, device=device)
                _sync(device)
                seconds = time.perf_counter() - start
            # during a run the optimizer state stays while the model is validated
            eval_peak = eval_meter.start + state + eval_meter.peak_delta
            eval_speed = sum(sample.lengths) / max(seconds, 1e-9)
    train_peak = meter.start + meter.peak_delta
    return ProbeResult(
        batch_size=len(big), length=length, weights_bytes=weights, gradients_bytes=gradients,
        optimizer_bytes=state,
        # the step's peak above its start, less the gradients: saved activations and temporaries
        activations_bytes=max(0, meter.peak_delta - gradients),
        other_bytes=max(0, meter.start - weights - state),
        train_peak_bytes=train_peak, eval_peak_bytes=eval_peak, train_points=points,
        optimizer_step_s=optimizer_s, eval_tokens_per_s=eval_speed,
    )  # fmt: skip
