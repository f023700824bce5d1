"""Out-of-memory errors: recognising them, and a memory cap that provokes a real one (tests, rehearsals).

`MemoryCap` is a callback: it hooks every module of the run's model and raises torch.OutOfMemoryError
(the class CUDA raises) once one forward pass with gradients has produced more than `max_bytes` of module
outputs, the tensors autograd keeps for the backward pass. Inject it with run(..., extra_callbacks=[...]).
"""

from __future__ import annotations

from typing import Any

import torch

from tunesmith.training.callbacks.base import Callback, TrainContext


def is_oom(exc: BaseException) -> bool:
    """CUDA's torch.OutOfMemoryError, and the RuntimeError other backends raise for the same thing."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _output_bytes(output: Any) -> int:
    if torch.is_tensor(output):
        return output.numel() * output.element_size()
    if isinstance(output, dict):
        return sum(_output_bytes(v) for v in output.values())
    if isinstance(output, tuple | list):
        return sum(_output_bytes(v) for v in output)
    return 0


class MemoryCap(Callback):
    name = "memory_cap"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.raised = 0
        self.handles: list[Any] = []

    def on_train_start(self, ctx: TrainContext) -> None:
        model = ctx.accelerator.unwrap_model(ctx.model)
        self.handles.append(model.register_forward_pre_hook(self._reset))
        for module in model.modules():
            if module is not model:
                self.handles.append(module.register_forward_hook(self._count))

    def _reset(self, *_: Any) -> None:
        self.used = 0

    def _count(self, _module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        if not torch.is_grad_enabled():
            return  # evaluation keeps nothing for a backward pass
        self.used += _output_bytes(output)
        if self.used > self.max_bytes:
            self.raised += 1
            raise torch.OutOfMemoryError(
                f"out of memory: the forward pass needs more than the {self.max_bytes} bytes of the memory cap"
            )

    def on_train_end(self, ctx: TrainContext) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
