"""Exact resume: a real training process killed with SIGKILL (mid-epoch, and while a background checkpoint
write is in flight behind the training), resumed, ends with weights bit-identical to an uninterrupted
run's and identical metrics and history."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from kill_resume import complete_steps, finish, history, kill_when, run_cli, strip_timing, write_recipes
from tunesmith.training.checkpoint import DELAY_ENV


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
    runs = write_recipes(tmp_path, recipe_dict, ("reference", "killed"))
    ref_dir, run_dir = tmp_path / "runs" / "reference", tmp_path / "runs" / "killed"
    finish(run_cli(runs["reference"]))

    # 1. Killed while a checkpoint is written in the background: the slow write leaves a temporary
    # directory to catch, and the loop has already logged steps past the one being written.
    slow = {DELAY_ENV: "0.5"}
    proc = run_cli(runs["killed"], env=slow)
    kill_when(proc, lambda: 2 in complete_steps(run_dir) and _write_in_flight_behind_training(run_dir))
    assert any((run_dir / "checkpoints").glob(".tmp-step-*")), (
        "the kill should land inside a checkpoint write"
    )

    # 2. Resumed, then killed again part-way through the second epoch, between checkpoints.
    proc = run_cli(runs["killed"], "--resume")
    kill_when(proc, lambda: any(s > 12 for s in complete_steps(run_dir)))

    # 3. Resumed to the end.
    finish(run_cli(runs["killed"], "--resume"))

    ref_weights = load_file(str(ref_dir / "model" / "model.safetensors"))
    weights = load_file(str(run_dir / "model" / "model.safetensors"))
    assert ref_weights.keys() == weights.keys()
    for key, tensor in ref_weights.items():
        assert tensor.equal(weights[key]), f"{key} differs after resume"
    ref_metrics = strip_timing(json.loads((ref_dir / "metrics.json").read_text()))
    assert strip_timing(json.loads((run_dir / "metrics.json").read_text())) == ref_metrics
    assert history(run_dir) == history(ref_dir)
    assert not list((run_dir / "checkpoints").glob(".tmp-step-*"))
