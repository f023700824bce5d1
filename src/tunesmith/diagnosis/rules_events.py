"""Rules over the loop's events: NaN/Inf losses and what the nan_policy did about them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tunesmith.diagnosis.common import finding, lr_of, sig
from tunesmith.diagnosis.registry import rule
from tunesmith.diagnosis.rundata import RunData, finite
from tunesmith.findings import Finding

NAN_EVENTS = ("nan_rollback", "nan_skip", "nan_stop")


@rule("nonfinite")
def nonfinite_loss(data: RunData) -> list[Finding]:
    events = [e for e in data.events if e.get("event") in NAN_EVENTS]
    bad_steps = [r.get("step") for r in data.steps if "loss" in r and not finite(r["loss"])]
    if not events and not bad_steps:
        return []
    counts = Counter(e["event"] for e in events)
    stopped = counts["nan_stop"] > 0
    first = min([e.get("step", 0) for e in events] + [s for s in bad_steps if isinstance(s, int)])
    evidence: dict[str, Any] = {
        "events": dict(counts),
        "first_step": first,
        "logged_nonfinite_losses": len(bad_steps),
        "messages": [str(e.get("message", "")) for e in events[:3]],
        "nan_policy": data.setting("train.nan_policy"),
        "precision": data.metrics.get("precision") or data.setting("train.precision"),
        "lr": lr_of(data),
    }
    precision = evidence["precision"]
    if precision == "fp16":
        patch: dict[str, Any] = {"train.precision": "bf16"}
        advice = "fp16 overflows easily; train in bf16 (or fp32), which has the range of fp32."
    else:
        patch = {"train.lr": sig(lr_of(data) / 3)}
        advice = "Lower train.lr about 3x and keep gradient clipping on."
        if data.setting("train.grad_clip", 1.0) is None:
            patch["train.grad_clip"] = 1.0
    total = sum(counts.values()) or len(bad_steps)
    outcome = (
        "training stopped" if stopped else f"handled by nan_policy ({', '.join(sorted(counts)) or 'none'})"
    )
    return [
        finding(
            "nonfinite",
            "error" if stopped else "warning",
            f"NaN/Inf loss {total} time{'s' if total != 1 else ''}, first at step {first}: {outcome}",
            evidence,
            f"A non-finite loss means a numerical blow-up. {advice}"
            + (
                " A single event can be one bad batch; act on it if it repeats."
                if total == 1 and not stopped
                else ""
            ),
            patch,
        )
    ]
