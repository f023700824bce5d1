"""Rules over the hardware plan (RUN_DIR/plan.json) and the loop's out-of-memory events."""

from __future__ import annotations

import json
from typing import Any

from tunesmith.diagnosis.registry import rule
from tunesmith.diagnosis.rundata import RunData
from tunesmith.findings import Finding

OOM_EVENTS = ("oom_retry", "oom_stop")


@rule("plan")
def plan_findings(data: RunData) -> list[Finding]:
    """The plan's own findings (will not fit, will be slow), as the run's start recorded them."""
    path = data.run_dir / "plan.json" if data.run_dir is not None else None
    if path is None or not path.is_file():
        return []
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [Finding.from_dict(f) for f in plan.get("findings", [])]


@rule("out_of_memory")
def out_of_memory(data: RunData) -> list[Finding]:
    events = [e for e in data.events if e.get("event") in OOM_EVENTS]
    if not events:
        return []
    last = events[-1]
    stopped = last["event"] == "oom_stop"
    micro, accum = int(last.get("micro_batch", 1)), int(last.get("grad_accum", 1))
    if stopped:
        patch: dict[str, Any] = {"train.batch_size": max(1, micro // 2), "train.grad_accum": accum * 2}
        advice = ("Training stopped. Halve the micro-batch and double the accumulation (the same effective "
                  "batch), or turn on train.gradient_checkpointing; train.oom_policy: retry does it by itself.")  # fmt: skip
    else:
        patch = {"train.batch_size": micro, "train.grad_accum": accum}
        advice = ("Training went on at the smaller micro-batch. Start with it (or train.batch_size: auto, "
                  "train.gradient_checkpointing: true) so no step is lost to the retry.")  # fmt: skip
    return [Finding(
        "out_of_memory", "training", "error" if stopped else "warning",
        f"out of memory {len(events)} time{'s' if len(events) != 1 else ''}, first at step "
        f"{events[0].get('step', 0) + 1}: {'training stopped' if stopped else f'continued at micro-batch {micro} x grad_accum {accum}'}",
        {"events": [str(e.get("message", "")) for e in events[:3]], "micro_batch": micro, "grad_accum": accum,
         "oom_policy": data.setting("train.oom_policy")},
        None, advice, patch,
    )]  # fmt: skip
