"""Two processes through Accelerate (DDP on CPU, gloo): `tunesmith run RECIPE --processes 2` with micro-batch
b ends with the same weights as one process with micro-batch b and grad_accum 2 (dropout off), the training
metrics are gathered over both processes, and the run records its world size. The 2-process run is preempted
by SIGTERM mid-epoch and resumed with 2 processes on the way, so resume under several processes is tested too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import toy_rows, write_tsv
from tunesmith.cli import app
from tunesmith.data.batching import LengthBucketBatcher
from tunesmith.testing import make_tiny_bert
from tunesmith.training.preemption import EXIT_CODE, STEP_DELAY_ENV

pytestmark = pytest.mark.slow


def _cli(recipe: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "run", str(recipe), "--quiet", "--processes", "2", *extra],
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def _epochs(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "epoch"]


def test_two_processes_equal_one_with_accumulation(tmp_path: Path) -> None:
    model = make_tiny_bert(tmp_path / "tiny-bert", dropout=0.0)
    train, val = (
        write_tsv(tmp_path / "train.tsv", toy_rows(128, 1)),
        write_tsv(tmp_path / "val.tsv", toy_rows(32, 2)),
    )
    assert len(LengthBucketBatcher([1] * 128, 16, seed=42).batches(0)) % 2 == 0  # no padded last round
    base = {
        "model": {"name": str(model), "max_length": 64},
        "data": {"train": str(train), "validation": str(val), "text": "review", "label": "rating"},
        "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "log_every": 1},
        "eval": {"suite": [], "on_start": False}, "audit": {"gate": "off"},
    }  # fmt: skip
    recipes, runs = {}, tmp_path / "runs"
    for name, accum in (("one", 2), ("two", 1)):
        recipe = {
            **base,
            "train": {**base["train"], "grad_accum": accum},
            "output": {"dir": str(runs), "name": name},
        }
        recipes[name] = tmp_path / f"{name}.yaml"
        recipes[name].write_text(yaml.safe_dump(recipe))

    result = CliRunner().invoke(app, ["run", str(recipes["one"]), "--quiet"])
    assert result.exit_code == 0, result.output

    # 2 processes, preempted by SIGTERM mid-epoch, then resumed with 2 processes (the requeued job).
    run_dir = runs / "two"
    proc = _cli(recipes["two"], env={STEP_DELAY_ENV: "0.1"})
    deadline = time.monotonic() + 200
    history = run_dir / "history.jsonl"
    while not (history.is_file() and '"step": 2,' in history.read_text()):
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == EXIT_CODE, out
    assert not (run_dir / "metrics.json").exists()
    proc = _cli(recipes["two"], "--resume")
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, out

    one = load_file(str(runs / "one" / "model" / "model.safetensors"))
    two = load_file(str(run_dir / "model" / "model.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        assert (one[key] - two[key]).abs().max() <= 1e-5, key
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (
        metrics["world_size"] == 2
        and json.loads((runs / "one" / "metrics.json").read_text())["world_size"] == 1
    )
    assert "world size" in (run_dir / "report.html").read_text()
    # the training metrics count both processes' examples: the same as the single process's
    for a, b in zip(_epochs(runs / "one"), _epochs(run_dir), strict=True):
        assert a["train_accuracy"] == b["train_accuracy"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_accuracy"] == b["val_accuracy"]
