"""The audit gate of `tunesmith run`: audit.gate = off | warn | error."""

from __future__ import annotations

from tunesmith.audit.report import AuditReport
from tunesmith.errors import UserError

GATES = ("off", "warn", "error")


def check_gate(report: AuditReport, gate: str) -> None:
    """Raise UserError when gate is "error" and the audit found errors; "off" and "warn" never stop."""
    if gate not in GATES:
        raise UserError(f"audit.gate must be one of {', '.join(GATES)}; got '{gate}'.")
    errors = report.by_severity("error")
    if gate != "error" or not errors:
        return
    ids = ", ".join(dict.fromkeys(f.id for f in errors))
    raise UserError(
        f"the data audit found {len(errors)} error finding{'s' if len(errors) != 1 else ''} ({ids}); "
        "see audit.json, clean the data with `tunesmith doctor TRAIN --text COL --label COL --fix OUT` "
        "and point the recipe at the cleaned files (causal-lm data: `tunesmith doctor TRAIN --task causal-lm` "
        "names the rows to drop), or set audit.gate=warn to train anyway."
    )
