"""Findings in the terminal (`tunesmith run`, `tunesmith diagnose`): title, evidence as a person reads it,
the fix and its recipe patch. The evidence uses the report's formatting (tunesmith.report.evidence):
numbers with their unit, short lists compact, example rows one line each; never a JSON dump.
Data values go out as rich Text, never markup, so a "[bold]" in a text prints as written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.text import Text

from tunesmith.findings import SEVERITY_ORDER, Finding
from tunesmith.report.evidence import HEADERS, _cell, compact, scalar

STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}
EXAMPLE_ROWS = 3  # example rows printed per finding (the report shows them all)


def evidence_lines(evidence: dict[str, Any]) -> list[str]:
    """The scalars and short lists as one `key value; ...` line, then one line per example row."""
    pairs: list[str] = []
    rows: list[str] = []
    for key, value in evidence.items():
        name = key.replace("_", " ")
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value[:EXAMPLE_ROWS]:
                cells = ", ".join(
                    f"{HEADERS.get(k, k.replace('_', ' '))} {_cell(k, v)}" for k, v in item.items()
                )
                rows.append(f"{name}: {cells}")
            if len(value) > EXAMPLE_ROWS:
                rows.append(f"{name}: (+{len(value) - EXAMPLE_ROWS} more in the report)")
        elif isinstance(value, list):
            pairs.append(f"{name} {compact(key, value)}")
        elif isinstance(value, dict):
            inner = ", ".join(f"{k} {scalar(k, v) if not isinstance(v, list | dict) else _cell(k, v)}"
                              for k, v in value.items())  # fmt: skip
            pairs.append(f"{name} ({inner})")
        else:
            pairs.append(f"{name} {scalar(key, value)}")
    return (["; ".join(pairs)] if pairs else []) + rows


def print_findings(console: Console, findings: Iterable[Finding], *, min_severity: str = "warning") -> None:
    floor = SEVERITY_ORDER[min_severity]
    for finding in findings:
        if SEVERITY_ORDER[finding.severity] < floor:
            continue
        head = Text(f"[{finding.severity}] ", style=STYLES.get(finding.severity, ""))
        head.append(finding.title, style="bold")
        head.append(f"  {finding.id}", style="dim")
        console.print(head)
        for line in evidence_lines(finding.evidence):
            console.print(Text(f"    {line}", style="dim"))
        console.print(Text(f"    fix: {finding.recommendation}"))
        if finding.config_patch:
            patch = " ".join(f"{k}={json.dumps(v)}" for k, v in finding.config_patch.items())
            console.print(Text(f"    recipe: {patch}", style="green"))
