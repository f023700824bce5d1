"""Pick the numeric precision: bf16 where the hardware runs it fast, fp16 (loss-scaled) on GPUs without bf16,
fp32 elsewhere."""

from __future__ import annotations

from pathlib import Path

import torch

from tunesmith.errors import UserError


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls run about twice as fast as fp32 on such CPUs."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str) -> str:
    """Return "fp32", "bf16" or "fp16" for the recipe's `train.precision`."""
    cuda = torch.cuda.is_available()
    if requested == "auto":
        if cuda:
            # GPUs without bf16 (before Ampere): fp16 autocast with Accelerate's dynamic loss scaling
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if requested == "fp16" and not cuda:
        raise UserError("train.precision: fp16 needs a CUDA GPU; use bf16 or fp32 on this machine.")
    return requested


def accelerate_mixed_precision(precision: str) -> str:
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]
