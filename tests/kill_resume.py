"""Kill-and-resume helpers: recipes for a reference run and an interrupted one, a real `tunesmith run`
process, killed with SIGKILL at a chosen point, and the outputs compared with the timing fields left out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

TIMING_KEYS = {
    "time_s",
    "tokens_per_s",
    "train_time_s",
    "train_loop_s",
    "peak_memory_mb",
    "message",
    "seconds",
}  # seconds: each evaluation check


def write_recipes(tmp_path: Path, recipe: dict[str, Any], names: tuple[str, ...]) -> dict[str, Path]:
    """tmp_path/<name>.yaml for each name: `recipe` with its run in tmp_path/runs/<name>."""
    paths = {}
    for name in names:
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(
            yaml.safe_dump({**recipe, "output": {"dir": str(tmp_path / "runs"), "name": name}})
        )
    return paths


def run_cli(recipe: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "run", str(recipe), "--quiet", *extra],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish(proc: subprocess.Popen[bytes]) -> None:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out.decode()


def kill_when(proc: subprocess.Popen[bytes], ready: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def strip_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def history(run_dir: Path) -> list[dict[str, Any]]:
    return [strip_timing(json.loads(line)) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def complete_steps(run_dir: Path) -> list[int]:
    root = run_dir / "checkpoints"
    return sorted(int(p.parent.name[5:]) for p in root.glob("step-*/manifest.json")) if root.exists() else []
