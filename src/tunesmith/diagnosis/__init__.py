"""Training diagnosis: rules over the history, predictions and data audit of a run -> findings with fixes.

`diagnose(run_dir)` returns the data audit's findings followed by every rule's findings: exactly what
findings.json holds. Rules live in the rules_* modules and register themselves in `RULES`.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.diagnosis import (
    dynamics,
    rules_epochs,
    rules_events,
    rules_gradients,
    rules_hardware,
    rules_lm,
    rules_loss,
    rules_predictions,
    rules_start,
)
from tunesmith.diagnosis.registry import RULES, Rule, rule
from tunesmith.diagnosis.rundata import RunData, load_run
from tunesmith.findings import SEVERITY_ORDER, Finding

__all__ = ["RULES", "Rule", "RunData", "diagnose", "diagnose_data", "load_run", "rule"]
_RULE_MODULES = (
    rules_loss,
    rules_epochs,
    rules_events,
    rules_predictions,
    rules_gradients,
    rules_start,
    rules_lm,
    dynamics,
    rules_hardware,
)  # registers them


def diagnose_data(data: RunData, rules: list[str] | None = None) -> list[Finding]:
    """Audit findings, then rule findings sorted by severity (errors first), each rule in registry order."""
    names = list(RULES) if rules is None else rules
    found = [f for name in names for f in RULES[name](data)]
    found.sort(key=lambda f: -SEVERITY_ORDER[f.severity])
    return data.audit_findings + found


def diagnose(run_dir: Path) -> list[Finding]:
    return diagnose_data(load_run(run_dir))
