"""A causal-LM run (packed, LoRA) killed with SIGKILL mid-epoch resumes to the same weights, metrics and history."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from kill_resume import complete_steps, finish, history, kill_when, run_cli, strip_timing, write_recipes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from test_causal_lm_task import _jsonl, _texts  # noqa: E402


def test_killed_causal_lm_run_resumes_bit_for_bit(tmp_path: Path, tiny_llama: Path) -> None:
    rows = [{"prompt": f"question {i}", "response": t} for i, t in enumerate(_texts(64, 5))]
    base: dict[str, Any] = {
        "task": "causal-lm",
        "model": {"name": str(tiny_llama), "max_length": 96},
        "data": {"train": str(_jsonl(tmp_path / "train.jsonl", rows)), "packing": True},
        "train": {"epochs": 2, "batch_size": 2, "lr": 5e-3, "precision": "fp32", "log_every": 1,
                  "checkpoint_every": 2, "keep_checkpoints": 3, "early_stopping": {"patience": 5}},
        "eval": {"samples": 1},
        "audit": {"gate": "off"},
    }  # fmt: skip
    paths = write_recipes(tmp_path, base, ("reference", "killed"))
    ref_dir, run_dir = tmp_path / "runs" / "reference", tmp_path / "runs" / "killed"
    finish(run_cli(paths["reference"]))
    proc = run_cli(paths["killed"])
    kill_when(proc, lambda: 4 in complete_steps(run_dir))
    finish(run_cli(paths["killed"], "--resume"))
    ref = load_file(str(ref_dir / "model" / "adapter_model.safetensors"))
    got = load_file(str(run_dir / "model" / "adapter_model.safetensors"))
    assert ref.keys() == got.keys() and all(ref[k].equal(got[k]) for k in ref)
    assert strip_timing(json.loads((run_dir / "metrics.json").read_text())) == strip_timing(
        json.loads((ref_dir / "metrics.json").read_text())
    )
    assert history(run_dir) == history(ref_dir)
