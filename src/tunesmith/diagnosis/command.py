"""`tunesmith diagnose RUN_DIR`: the training diagnosis of a run again (from its files), in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def diagnose_command(
    run_dir: Annotated[
        Path, typer.Argument(help="run directory (runs/<name>) holding history.jsonl, metrics.json")
    ],
    all_findings: Annotated[bool, typer.Option("--all", help="also print info findings")] = False,
) -> None:
    """Diagnose a finished or stopped run: every finding with its evidence, the fix and the recipe patch."""
    from tunesmith.diagnosis import diagnose
    from tunesmith.findings_view import print_findings

    findings = diagnose(run_dir)
    console = Console()
    print_findings(console, findings, min_severity="info" if all_findings else "warning")
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "info")}
    console.print(f"{run_dir}: " + ", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)
