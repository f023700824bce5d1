"""What the loop needs from several processes, on torch.distributed (Accelerate set up the process group).

With one process every function here is a no-op or a plain read, so single-process runs are unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from accelerate import Accelerator

from tunesmith.training.preemption import PreemptionWatch


def step_flags(
    step_finite: torch.Tensor, watch: PreemptionWatch, accelerator: Accelerator
) -> tuple[bool, bool]:
    """(was the step finite everywhere, stop for preemption) at an optimizer-step boundary: the one host
    read per optimizer step. With several processes one all-reduce makes every process agree, so a NaN or
    a SIGTERM seen by one process drops (or ends) the same step on all of them."""
    watch.at_step_boundary()
    if accelerator.num_processes == 1:
        return bool(step_finite.item()), watch.requested
    flags = torch.stack([(~step_finite).to(torch.float32), torch.tensor(float(watch.requested))]).to(
        accelerator.device
    )
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    bad, stop = flags.tolist()
    return bad == 0.0, stop > 0.0


def sum_windows(values: list[torch.Tensor], accelerator: Accelerator) -> list[torch.Tensor]:
    """Sum the logged window's running totals (loss, count, tokens) over the processes."""
    if accelerator.num_processes == 1:
        return values
    stacked = torch.stack([v.double() for v in values])
    dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
    return list(stacked.unbind())


def gather_sums(sums: dict[str, torch.Tensor], accelerator: Accelerator) -> dict[str, torch.Tensor]:
    """The epoch sums of every process combined: counts and totals add up; per-example float arrays
    (NaN where a process did not see the example) take the value of a process that saw it."""
    if accelerator.num_processes == 1:
        return sums
    combined: dict[str, torch.Tensor] = {}
    for key in sorted(sums):  # the same order everywhere (a resumed process has them in the checkpoint's)
        value = sums[key]
        parts = [torch.empty_like(value) for _ in range(accelerator.num_processes)]
        dist.all_gather(parts, value.contiguous())
        if value.is_floating_point() and any(bool(torch.isnan(p).any()) for p in parts):
            merged = parts[0].clone()
            for part in parts[1:]:
                merged = torch.where(torch.isnan(merged), part, merged)
            combined[key] = merged
        else:
            combined[key] = torch.stack(parts).sum(0).to(value.dtype)
    return combined
