"""train.compile: the compiled training forward learns what the eager one learns, on a bounded number of
padded lengths; settings that cannot work end in one UserError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch._dynamo.utils import counters
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.run import run
from tunesmith.training.compile import BACKEND_ENV, BucketPad, buckets


def _losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if r["kind"] == "step"]


@pytest.mark.slow  # the first torch.compile in a process spends ~25 s setting dynamo up, even on a tiny model
def test_compiled_training_matches_eager(
    recipe_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # dropout off: compiled graphs draw their dropout masks from another generator
    recipe_dict["model"].update(dropout=0.0, classifier_dropout=0.0)
    recipe_dict["model"]["max_length"] = 24  # two buckets (16, 24): a few graphs to trace
    recipe_dict["train"].update(epochs=1, log_every=1)
    recipe_dict["eval"]["suite"] = []
    eager = run(recipe_from_dict(recipe_dict), quiet=True)
    monkeypatch.setenv(BACKEND_ENV, "aot_eager")  # the whole dynamo path without a C++ compile per shape
    torch._dynamo.reset()
    counters.clear()
    compiled_dict = dict(recipe_dict, output={**recipe_dict["output"], "name": "compiled"})
    compiled_dict["train"] = dict(recipe_dict["train"], compile=True)
    compiled = run(recipe_from_dict(compiled_dict), quiet=True)
    assert counters["stats"]["unique_graphs"] > 0, "the training forward should have been compiled"
    # one graph per (bucket, batch size) at most: never one per batch length
    frames = counters["frames"]["ok"]
    assert 0 < frames <= 2 * len(buckets(recipe_dict["model"]["max_length"]))
    a, b = _losses(eager.run_dir), _losses(compiled.run_dir)
    assert len(a) == len(b) and np.allclose(a, b, rtol=1e-4, atol=1e-5)
    assert abs(eager.metrics["test"]["macro_f1"] - compiled.metrics["test"]["macro_f1"]) < 1e-6


def test_bucket_padding_bounds_the_lengths() -> None:
    pad = BucketPad(max_length=256, pad_id=0)
    rng = np.random.default_rng(0)
    for width in rng.integers(1, 257, size=300):
        batch = {
            "input_ids": torch.ones((4, int(width)), dtype=torch.long),
            "attention_mask": torch.ones((4, int(width)), dtype=torch.long),
            "labels": torch.zeros(4, dtype=torch.long),
        }
        out = pad(batch)
        target = out["input_ids"].shape[1]
        assert width <= target <= max(16, int(width) * 3 // 2 + 1)  # at most ~50% (mostly <25%) extra
        assert int(out["attention_mask"].sum()) == 4 * width, "padding must be masked"
        assert out["labels"].shape == (4,)
    assert pad.seen <= set(buckets(256)) and len(buckets(256)) == 9


@pytest.mark.parametrize("case", ["packing", "short"])
def test_compile_that_cannot_work_is_one_line_and_leaves_no_run_directory(
    case: str, tmp_path: Path, recipe_dict: dict[str, Any], tiny_llama: Path
) -> None:
    recipe = dict(recipe_dict, train=dict(recipe_dict["train"], compile=True))
    if case == "packing":
        train = tmp_path / "train.jsonl"
        train.write_text(
            "".join(json.dumps({"text": f"the pain eased after {i} weeks"}) + "\n" for i in range(8))
        )
        recipe.update(task="causal-lm", model={"name": str(tiny_llama), "max_length": 32},
                      data={"train": str(train), "packing": True}, eval={"samples": 1})  # fmt: skip
        needles = ["train.compile", "data.packing: false"]
    else:
        recipe["model"] = dict(recipe["model"], max_length=8)
        needles = ["train.compile", "model.max_length", "at least 16"]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in " ".join(result.output.split()), (needle, result.output)
    assert not (tmp_path / "runs").exists()


def test_no_cpp_compiler_warns_once_and_trains_eagerly(
    recipe_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import tunesmith.training.compile as compile_module

    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    recipe = recipe_from_dict(dict(recipe_dict, train=dict(recipe_dict["train"], compile=True)))
    model = torch.nn.Linear(2, 2)
    with caplog.at_level("WARNING", logger="tunesmith.training.compile"):
        assert compile_module.compile_for_training(recipe, model, 0) is None
    assert "forward" not in model.__dict__, "the model must keep its eager forward"
    assert [r.message for r in caplog.records] == [
        "train.compile: no C++ compiler (g++/clang++) for inductor on this CPU; training eagerly"
    ]
