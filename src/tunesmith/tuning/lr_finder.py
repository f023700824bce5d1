"""Learning-rate range test (Smith 2017): train briefly while the learning rate grows exponentially.

The loss first stays flat (too small to matter), then falls (useful), then blows up (too large). The
default pick ("auto") is the **valley** of the smoothed curve (as in fastai 2.x): the longest decreasing
stretch of the curve between the end of the flat start and the minimum, and the point half-way through
it. That sits well below the minimum (where the loss is about to diverge) and above the flat start, and is
usually steadier than the steepest-descent point. But a pre-trained model swept for one epoch often shows
no descent beyond the batch-to-batch noise: the valley of noise is meaningless (on the demo task it
picked 1.8e-5 where 1e-4 was best). Then "auto" takes **rise**, a tenth of the learning rate at which the
smoothed loss climbs back above its starting level (Smith's rule: an order of magnitude below where
training breaks down). The steepest-descent point ("steep"), minimum / 10 ("minimum"), valley and rise are
all recorded, and any of them can be asked for.

Smoothing is a centred Gaussian window over the steps, not fastai's exponential moving average: with the
~30 steps an epoch allows, an EMA lags the raw loss by several steps, which shifts every suggestion to
too-large learning rates. An EMA is still used online, only to stop the sweep once the loss diverges.

The sweep runs on the model and optimizer it is given and puts back everything it touched: weights,
optimizer state and hyperparameters, gradients, train/eval mode, and the RNG states (so a run that used
`lr: auto` trains exactly like one given the suggested learning rate).
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

Method = Literal["auto", "valley", "steep", "minimum", "rise"]
METHODS: tuple[Method, ...] = ("auto", "valley", "steep", "minimum", "rise")
SIGNIFICANT_DROP = 2.0  # a descent counts when the smoothed loss falls this many noise SDs below its start


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # raw loss of each step's batch
    smoothed: list[float]
    suggestion: float
    method: str  # the candidate used (auto resolves to valley or rise)
    candidates: dict[str, float]  # every method's pick, for the report
    start_lr: float
    end_lr: float
    steps_planned: int
    stop_reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lr_schedule(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """`steps` learning rates spaced evenly on a log scale from start_lr to end_lr, both included."""
    if not 0.0 < start_lr < end_lr:
        raise ValueError(f"`start_lr` must be positive and below `end_lr`; got {start_lr} and {end_lr}")
    if steps < 2:
        raise ValueError(f"`steps` must be at least 2; got {steps}")
    return np.geomspace(start_lr, end_lr, steps)


def smooth(losses: Sequence[float], sigma: float | None = None) -> np.ndarray:
    """Centred Gaussian smoothing (no lag); sigma defaults to ~1/15 of the curve, at least one step."""
    array = np.asarray(losses, dtype=np.float64)
    if array.size < 3:
        return array.copy()
    sigma = sigma if sigma is not None else max(1.0, array.size / 15.0)
    return gaussian_filter1d(array, sigma=sigma, mode="nearest")


def suggest(lrs: Sequence[float], smoothed: Sequence[float], noise: float = 0.0) -> dict[str, float]:
    """Every method's suggested learning rate from a (smoothed) range-test curve (auto excluded).

    `noise` (the SD of the raw losses around the smoothed curve) sets how far above its start the curve
    must climb to count as a rise: SIGNIFICANT_DROP noise SDs, so noise alone never makes one."""
    lrs_a, loss = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    if lrs_a.size != loss.size or lrs_a.size < 3:
        raise ValueError(
            f"`lrs` and `smoothed` must be equally long, at least 3; got {lrs_a.size}, {loss.size}"
        )
    lowest = int(np.argmin(loss))
    # Only the part before the minimum is meaningful: past it the loss is diverging.
    span = max(lowest, 2)
    slope = np.gradient(loss[: span + 1], np.log(lrs_a[: span + 1]))
    begin = _descent_start(loss, lowest)
    above = np.flatnonzero(loss[lowest:] > loss[0] + SIGNIFICANT_DROP * noise)
    rise = lowest + int(above[0]) if above.size else lrs_a.size - 1  # no rise in the sweep: its end
    return {
        "valley": float(lrs_a[begin + _valley_index(loss[begin : lowest + 1])]),
        "steep": float(lrs_a[int(np.argmin(slope[:span]))]),
        "minimum": float(lrs_a[lowest] / 10.0),
        "rise": float(lrs_a[rise] / 10.0),
    }


def noise_sd(raw: Sequence[float], smoothed: Sequence[float]) -> float:
    """Batch-to-batch noise: the SD of the raw losses around the smoothed curve, up to its minimum."""
    raw_a, loss = np.asarray(raw, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    upto = max(int(np.argmin(loss)), 2) + 1
    return float(np.std(raw_a[:upto] - loss[:upto], ddof=1))


def descent_is_significant(smoothed: Sequence[float], noise: float) -> bool:
    """Whether the smoothed curve falls below its start by more than SIGNIFICANT_DROP noise SDs."""
    loss = np.asarray(smoothed, dtype=np.float64)
    lowest = int(np.argmin(loss))
    return lowest >= 2 and float(loss[0] - loss[lowest]) > SIGNIFICANT_DROP * noise


def pick(method: Method, candidates: dict[str, float], significant: bool) -> tuple[str, float]:
    """The candidate `method` names; auto is the valley when the descent is significant, else rise."""
    name = ("valley" if significant else "rise") if method == "auto" else method
    return name, candidates[name]


def _descent_start(loss: np.ndarray, lowest: int) -> int:
    """Where the flat start ends: the last point before the minimum still within 5% of the total drop.

    Smoothing makes a flat start decrease by tiny amounts, which the valley's longest decreasing run would
    otherwise take in and so pick too small a learning rate.
    """
    drop = float(loss[0] - loss[lowest])
    if drop <= 0 or lowest < 2:
        return 0
    flat = np.flatnonzero(loss[: lowest + 1] >= loss[0] - 0.05 * drop)
    return int(flat[-1]) if flat.size else 0


def _valley_index(loss: np.ndarray) -> int:
    """fastai's valley: the longest (not necessarily contiguous) decreasing run, then a point inside it."""
    n = loss.size
    longest = [1] * n
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if loss[i] < loss[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[end]:
            end = i
            start = end - longest[end]
    third = (end - start) / 3.0
    return min(n - 1, max(0, start + int(third) + int(third / 2.0)))


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def find_lr(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[], Iterator[dict[str, torch.Tensor]]],
    loss_fn: Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    steps: int = 100,
    base_lr: float | None = None,
    grad_clip: float | None = 1.0,
    method: Method = "auto",
    diverge_factor: float = 4.0,
    backward: Callable[[torch.Tensor], None] | None = None,
) -> LRFindResult:
    """Run the range test and restore the model and optimizer; see the module docstring.

    `batches()` yields training batches (called again when exhausted, so short data still gives `steps`
    points). Parameter groups keep their ratios to `base_lr` (default: the largest group lr), so
    discriminative or head-multiplied learning rates are swept together and the suggestion is the
    value to put in `train.lr`.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}; got {method!r}")
    schedule = lr_schedule(start_lr, end_lr, steps)
    groups = optimizer.param_groups
    reference = base_lr if base_lr is not None else max(g["lr"] for g in groups)
    ratios = [g["lr"] / reference for g in groups]
    saved_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_grads = {id(p): p.grad.detach().clone() for p in model.parameters() if p.grad is not None}
    saved_rng, was_training = _rng_state(), model.training
    params = [p for g in groups for p in g["params"]]
    lrs: list[float] = []
    losses: list[float] = []
    stop_reason = f"reached end_lr {end_lr:g}"
    try:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        source = batches()
        ema, best = 0.0, math.inf
        for i, lr in enumerate(schedule):
            batch = next(source, None)
            if batch is None:
                source = batches()
                batch = next(source)
            for group, ratio in zip(groups, ratios, strict=True):
                group["lr"] = float(lr) * ratio
            loss = loss_fn(model, batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                stop_reason = f"loss became non-finite at lr {lr:.3g}"
                break
            (backward or torch.Tensor.backward)(loss)
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            lrs.append(float(lr))
            losses.append(value)
            ema = 0.7 * ema + 0.3 * value
            smoothed_now = ema / (1.0 - 0.7 ** (i + 1))
            best = min(best, smoothed_now)
            if i >= 5 and smoothed_now > diverge_factor * best:
                stop_reason = f"loss diverged (over {diverge_factor:g}x its minimum) at lr {lr:.3g}"
                break
    finally:
        model.load_state_dict(saved_weights)
        optimizer.load_state_dict(saved_optimizer)
        for p in model.parameters():
            p.grad = saved_grads.get(id(p))
        _set_rng_state(saved_rng)
        model.train(was_training)
    if len(losses) < 3:
        raise RuntimeError(
            f"the learning-rate range test stopped after {len(losses)} steps ({stop_reason}); "
            "lower start_lr or check the data"
        )
    curve = smooth(losses)
    noise = noise_sd(losses, curve.tolist())
    candidates = suggest(lrs, curve.tolist(), noise)
    chosen, suggestion = pick(method, candidates, descent_is_significant(curve.tolist(), noise))
    return LRFindResult(
        lrs=lrs, losses=losses, smoothed=curve.tolist(), suggestion=suggestion, method=chosen,
        candidates=candidates, start_lr=start_lr, end_lr=end_lr, steps_planned=steps, stop_reason=stop_reason,
    )  # fmt: skip
