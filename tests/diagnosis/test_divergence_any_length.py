"""Divergence at any run length (a few steps; a 1-epoch run that blows up in its last steps), and findings
printed in the terminal with their evidence (`tunesmith run` / `tunesmith diagnose`)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from rich.console import Console
from scripted import RECIPE, decaying, make_run
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.diagnosis import RULES
from tunesmith.findings import Finding
from tunesmith.findings_view import print_findings


def test_a_three_point_run_that_explodes_is_divergence() -> None:
    found = RULES["divergence"](make_run(losses=[1.1, 3.0, 9.5]))
    assert len(found) == 1 and "short run" in found[0].evidence["reason"]
    assert found[0].evidence["logged_points"] == 3 and found[0].config_patch["train.lr"] < 5e-5
    assert RULES["divergence"](make_run(losses=[1.1, 1.0, 0.9])) == []  # a short healthy run stays quiet


def test_a_one_epoch_run_whose_loss_explodes_in_its_last_steps() -> None:
    losses = decaying(16)[:14] + [7.5, 12.0]  # healthy for 14 logged steps, then it blows up
    found = RULES["divergence"](make_run(losses=losses))
    assert len(found) == 1 and "last 2 logged steps" in found[0].evidence["reason"]
    assert found[0].evidence["confidence"] == "high" and found[0].config_patch["train.lr"] == 5e-6
    assert RULES["divergence"](make_run(losses=decaying(16))) == []


def test_terminal_prints_evidence_lines_not_only_titles(tmp_path: Path) -> None:
    finding = Finding(
        id="audit.leakage", stage="audit", severity="error", title="3 test rows also in train",
        evidence={"other_share": 0.05, "count": 3, "examples": [{"row": 4, "text": "[bold]x[/bold] y", "other_row": 9}]},
        rows=[4], recommendation="Remove them.", config_patch={"train.lr": 1e-4},
    )  # fmt: skip
    console = Console(record=True, width=200)
    print_findings(console, [finding])
    out = console.export_text()
    assert "other share 5%" in out and "count 3" in out  # units, no JSON
    assert "examples: row 4, text [bold]x[/bold] y, other split's row 9" in out  # data printed as written
    assert "fix: Remove them." in out and "recipe: train.lr=0.0001" in out
    assert "{" not in out

    # `tunesmith diagnose RUN_DIR` on a run whose loss blew up at the end
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    steps = [
        {"kind": "step", "step": 10 * (i + 1), "loss": v, "lr": 5e-5}
        for i, v in enumerate(decaying(12)[:10] + [8.0, 15.0])
    ]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(RECIPE))
    (run_dir / "metrics.json").write_text(json.dumps({"labels": ["a", "b"]}))
    result = CliRunner().invoke(app, ["diagnose", str(run_dir)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # rich wraps to the terminal width
    assert "Training diverged" in out and "confidence high" in out and "recipe: train.lr=" in out
    missing = CliRunner().invoke(app, ["diagnose", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "run directory" in missing.output
