"""Preemption: a real training process sent SIGTERM mid-epoch writes a checkpoint and exits 75; the requeued
`--resume` continues it to weights identical to an uninterrupted run's, and a further `--resume` of the
finished run changes nothing. `--resume` where nothing exists yet starts the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from typer.testing import CliRunner

from kill_resume import history, strip_timing, write_recipes
from tunesmith.cli import app
from tunesmith.training.checkpoint import latest_checkpoint
from tunesmith.training.preemption import EXIT_CODE, STEP_DELAY_ENV


def _logged_steps(run_dir: Path) -> list[int]:
    path = run_dir / "history.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [r["step"] for r in map(json.loads, lines[:-1]) if r["kind"] == "step"]  # last: maybe half-written


def _files(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_sigterm_checkpoints_and_resume_is_idempotent(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"].update(epochs=1, log_every=1)
    recipe_dict["eval"].update(suite=[], on_start=False)
    recipe_dict["audit"]["gate"] = "off"
    paths = write_recipes(tmp_path, recipe_dict, ("reference", "preempted"))
    runs = tmp_path / "runs"
    runner = CliRunner()

    # --resume with nothing there yet (a job killed before its run directory existed) starts the run.
    result = runner.invoke(app, ["run", str(paths["reference"]), "--quiet", "--resume"])
    assert result.exit_code == 0, result.output

    run_dir = runs / "preempted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "run", str(paths["preempted"]), "--quiet", "--resume"],
        env={**os.environ, STEP_DELAY_ENV: "0.05"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(s >= 2 for s in _logged_steps(run_dir)):
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert time.monotonic() < deadline, "the run never reached step 2"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == EXIT_CODE, out
    assert "preempted" in out and "--resume" in out
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None, "SIGTERM must leave a checkpoint"
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["epoch"] == 0 and state["batches_done"] > 0, (
        "the checkpoint is the mid-epoch one SIGTERM wrote"
    )
    assert not (run_dir / "metrics.json").exists()

    # The requeued job resumes to exactly the uninterrupted run's weights, metrics and history.
    result = runner.invoke(app, ["run", str(paths["preempted"]), "--quiet", "--resume"])
    assert result.exit_code == 0, result.output
    ref = load_file(str(runs / "reference" / "model" / "model.safetensors"))
    got = load_file(str(run_dir / "model" / "model.safetensors"))
    assert ref.keys() == got.keys() and all(ref[k].equal(got[k]) for k in ref)
    assert history(run_dir) == history(runs / "reference")
    metrics = [
        strip_timing(json.loads((d / "metrics.json").read_text())) for d in (run_dir, runs / "reference")
    ]
    assert metrics[0] == metrics[1]

    # Requeued once more after it finished: exit 0, says so, touches nothing.
    before = _files(run_dir)
    result = runner.invoke(app, ["run", str(paths["preempted"]), "--quiet", "--resume"])
    assert result.exit_code == 0, result.output
    assert "is finished; nothing to resume" in " ".join(result.output.split())
    assert _files(run_dir) == before
