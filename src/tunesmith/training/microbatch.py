"""One optimizer step's forward and backward passes, and what `train.oom_policy` does on out-of-memory.

The loop hands over the step's micro-batches (already on the device); each runs forward (task.step plus
the callbacks' extra loss terms) and backward with weight 1 / grad_accum. When memory runs out, the
step's partial gradients are dropped and, with `oom_policy: retry`, every micro-batch from then on runs
as two halves with half the weight each: half the micro-batch and twice the accumulation, the same
effective batch. The step is then redone from its first micro-batch. `oom_policy: stop` ends training
(best weights so far kept, like nan_policy: stop). Either way a history event says what happened and the
diagnosis turns it into a finding with the config patch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from accelerate import Accelerator

from tunesmith.config.schema import TrainConfig
from tunesmith.tasks.base import StepOutput, Task
from tunesmith.training.callbacks.base import Callback, TrainContext
from tunesmith.training.oom import is_oom

MicroBatch = tuple[torch.Tensor, int, dict[str, torch.Tensor]]  # (example indices, real tokens, batch)
Done = tuple[StepOutput, torch.Tensor, int]  # (detached output, loss finite, real tokens)


def _pieces(item: MicroBatch, parts: int) -> list[MicroBatch]:
    index, tokens, batch = item
    n = min(parts, len(index))
    if n <= 1:
        return [item]
    size = len(index)
    split = {k: (v.tensor_split(n) if v.dim() and v.shape[0] == size else [v] * n) for k, v in batch.items()}
    # the whole micro-batch's token count goes with its first piece: the sums stay exact
    return [(idx, tokens if j == 0 else 0, {k: v[j] for k, v in split.items()})
            for j, idx in enumerate(index.tensor_split(n))]  # fmt: skip


class MicroSteps:
    def __init__(
        self, task: Task, cfg: TrainConfig, accelerator: Accelerator, event: Callable[..., None]
    ) -> None:
        self.task, self.cfg, self.accelerator, self.event = task, cfg, accelerator, event
        self.parts = 1  # pieces per micro-batch, doubled on each out-of-memory retry

    def run(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[MicroBatch],
        callbacks: list[Callback], ctx: TrainContext,
    ) -> tuple[list[Done], str | None]:  # fmt: skip
        """Backward passes of the step's micro-batches -> (per piece outputs, stop reason or None)."""
        while True:
            error = ""
            try:
                return self._backward(model, batches, callbacks, ctx), None
            except Exception as exc:
                if not is_oom(exc):
                    raise
                error = str(exc).splitlines()[0][:200]
            # outside the except block, so the failed pass's tensors are already freed
            optimizer.zero_grad(set_to_none=True)  # a backward cut short left some gradients half-summed
            if self.accelerator.device.type == "cuda":
                torch.cuda.empty_cache()
            micro = max(1, -(-self.cfg.batch_size // self.parts))
            accum = self.cfg.grad_accum * self.parts
            where = f"step {ctx.step + 1} (epoch {ctx.epoch + 1})"
            if self.cfg.oom_policy == "stop" or micro <= 1:
                why = (
                    "train.oom_policy=stop"
                    if self.cfg.oom_policy == "stop"
                    else "the micro-batch is already 1"
                )
                reason = f"out of memory at {where} with micro-batch {micro}; stopped ({why})"
                self.event("oom_stop", reason, micro_batch=micro, grad_accum=accum, error=error)
                return [], reason
            self.parts *= 2
            new_micro, new_accum = max(1, -(-self.cfg.batch_size // self.parts)), accum * 2
            self.event(
                "oom_retry",
                f"out of memory at {where}: micro-batch {micro} -> {new_micro}, grad_accum {accum} -> {new_accum} "
                "(the same effective batch); the step is redone (train.oom_policy=retry)",
                micro_batch=new_micro, grad_accum=new_accum, previous_micro_batch=micro, error=error,
            )  # fmt: skip

    def _backward(
        self, model: torch.nn.Module, batches: list[MicroBatch], callbacks: list[Callback], ctx: TrainContext
    ) -> list[Done]:
        done: list[Done] = []
        for item in batches:
            pieces = _pieces(item, self.parts)
            for index, tokens, batch in pieces:
                out = self.task.step(model, batch, index)
                objective = out.loss
                for cb in callbacks:
                    term = cb.extra_loss(ctx, batch)
                    if term is not None:
                        objective = objective + term
                finite = torch.isfinite(objective.detach())
                # A non-finite micro-batch spoils its whole optimizer step, which the loop drops; its
                # backward pass only adds to gradients that are thrown away.
                self.accelerator.backward(objective / (self.cfg.grad_accum * len(pieces)))
                done.append((StepOutput(out.loss.detach(), out.stats), finite, tokens))
        return done
