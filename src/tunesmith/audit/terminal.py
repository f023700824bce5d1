"""The audit in the terminal: a rich table of findings by severity, then one summary line.

Data values are passed as rich Text, never as markup, so a "[bold]" inside a text prints as written.
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tunesmith.audit.report import AuditReport

STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def summary_line(report: AuditReport) -> str:
    counts = report.counts()
    rows = sum(s.get("rows", 0) for s in report.stats.get("splits", {}).values())
    parts = [f"{n} {sev}{'s' if n != 1 and sev != 'info' else ''}" for sev, n in counts.items()]
    return f"data audit of {rows:,} rows: {', '.join(parts)}"


def render(report: AuditReport, console: Console, quiet: bool = False) -> None:
    if not quiet and report.findings:
        console.print(findings_table(report))
    console.print(Text(summary_line(report), style="bold"))


def findings_table(report: AuditReport) -> Table:
    table = Table(title="Data audit", show_lines=True, expand=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("finding", ratio=3)
    table.add_column("split", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("recommendation", ratio=4)
    for finding in report.findings:
        title = Text(finding.title)
        title.append(f"\n{finding.id}", style="dim")
        advice = Text(finding.recommendation)
        if finding.config_patch:
            patch = ", ".join(f"{k}={json.dumps(v)}" for k, v in finding.config_patch.items())
            advice.append(f"\nrecipe: {patch}", style="green")
        table.add_row(
            Text(finding.severity, style=STYLES.get(finding.severity, "")),
            title,
            Text(str(finding.evidence.get("split", ""))),
            Text(f"{len(finding.rows):,}" if finding.rows else "-"),
            advice,
        )
    return table
