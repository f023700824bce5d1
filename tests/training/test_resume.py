"""Exact resume: a real training process killed with SIGKILL (mid-epoch, and while a background checkpoint
write is in flight behind the training), resumed, ends with weights bit-identical to an uninterrupted
run's and identical metrics and history."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import load_file

from tunesmith.training.checkpoint import DELAY_ENV

TIMING_KEYS = {
    "time_s",
    "tokens_per_s",
    "train_time_s",
    "train_loop_s",
    "peak_memory_mb",
    "message",
    "seconds",
}  # seconds: each evaluation check


def _cli(recipe: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "run", str(recipe), "--quiet", *extra],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _finish(proc: subprocess.Popen[bytes]) -> None:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out.decode()


def _kill_when(proc: subprocess.Popen[bytes], ready: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _history(run_dir: Path) -> list[dict[str, Any]]:
    return [_strip(json.loads(line)) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def _complete_steps(run_dir: Path) -> list[int]:
    root = run_dir / "checkpoints"
    return sorted(int(p.parent.name[5:]) for p in root.glob("step-*/manifest.json")) if root.exists() else []


def _write_in_flight_behind_training(run_dir: Path) -> bool:
    """A checkpoint write of step N is in flight while history.jsonl already holds a step after N."""
    writing = [int(p.name.split("-")[2]) for p in (run_dir / "checkpoints").glob(".tmp-step-*")]
    if not writing or not (run_dir / "history.jsonl").exists():
        return False
    logged = []
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line being written
            logged.append(int(json.loads(line)["step"]))
    return bool(logged) and max(logged) > min(writing)


def test_killed_run_resumes_bit_for_bit(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"].update(checkpoint_every=2, keep_checkpoints=3, epochs=3)
    recipe_dict["train"]["early_stopping"] = {"patience": 5}
    runs = {}
    for name in ("reference", "killed"):
        recipe = dict(recipe_dict, output={"dir": str(tmp_path / "runs"), "name": name})
        runs[name] = tmp_path / f"{name}.yaml"
        runs[name].write_text(yaml.safe_dump(recipe))
    ref_dir, run_dir = tmp_path / "runs" / "reference", tmp_path / "runs" / "killed"
    _finish(_cli(runs["reference"]))

    # 1. Killed while a checkpoint is written in the background: the slow write leaves a temporary
    # directory to catch, and the loop has already logged steps past the one being written.
    slow = {DELAY_ENV: "0.5"}
    proc = _cli(runs["killed"], env=slow)
    _kill_when(proc, lambda: 2 in _complete_steps(run_dir) and _write_in_flight_behind_training(run_dir))
    assert any((run_dir / "checkpoints").glob(".tmp-step-*")), (
        "the kill should land inside a checkpoint write"
    )

    # 2. Resumed, then killed again part-way through the second epoch, between checkpoints.
    proc = _cli(runs["killed"], "--resume")
    _kill_when(proc, lambda: any(s > 12 for s in _complete_steps(run_dir)))

    # 3. Resumed to the end.
    _finish(_cli(runs["killed"], "--resume"))

    ref_weights = load_file(str(ref_dir / "model" / "model.safetensors"))
    weights = load_file(str(run_dir / "model" / "model.safetensors"))
    assert ref_weights.keys() == weights.keys()
    for key, tensor in ref_weights.items():
        assert tensor.equal(weights[key]), f"{key} differs after resume"
    ref_metrics = _strip(json.loads((ref_dir / "metrics.json").read_text()))
    assert _strip(json.loads((run_dir / "metrics.json").read_text())) == ref_metrics
    assert _history(run_dir) == _history(ref_dir)
    assert not list((run_dir / "checkpoints").glob(".tmp-step-*"))
