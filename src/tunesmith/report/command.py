"""`tunesmith report RUN_DIR`: (re)write report.html for a finished or stopped run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunesmith.report.render import render_report


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="run directory (runs/<name>) holding history.jsonl, metrics.json")
    ],
) -> None:
    """Write RUN_DIR/report.html: verdict, findings with fixes, curves, gradient flow, errors. Opens offline."""
    path = render_report(run_dir)
    typer.echo(f"report: {path}")
