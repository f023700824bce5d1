"""`tunesmith export`: merged LoRA / IA3 models equal the adapters they come from and load without PEFT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForSequenceClassification
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.errors import UserError
from tunesmith.export import export_model, load_trained
from tunesmith.models.loader import load_tokenizer
from tunesmith.run import run

TEXTS = ["great relief, best drug", "awful pain and nausea", "okay i guess", "no change at all"]

# Loads the exported model in a fresh interpreter where `import peft` fails, and prints its logits.
WITHOUT_PEFT = """
import json, sys
sys.modules["peft"] = None  # any import of peft now raises ImportError
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
batch = tokenizer(json.loads(sys.argv[2]), padding=True, return_tensors="pt")
with torch.no_grad():
    print(json.dumps(model(**batch).logits.tolist()))
"""


def _run(recipe_dict: dict[str, Any], strategy: dict[str, Any], epochs: int = 2) -> Any:
    recipe_dict = json.loads(json.dumps(recipe_dict))
    recipe_dict["strategy"] = strategy
    recipe_dict["output"]["name"] = strategy["name"]
    recipe_dict["train"].update(epochs=epochs, lr=5e-3, early_stopping={"patience": None})
    return run(recipe_from_dict(recipe_dict), quiet=True)


def _logits(model: torch.nn.Module, tokenizer: Any) -> torch.Tensor:
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits


@pytest.mark.parametrize("name", ["lora", "ia3"])
def test_merged_export_equals_the_adapter_and_loads_without_peft(
    name: str, recipe_dict: dict[str, Any], tmp_path: Path, tiny_model: Path
) -> None:
    result = _run(recipe_dict, {"name": name})
    out = tmp_path / f"{name}-merged"
    cli = CliRunner().invoke(app, ["export", str(result.run_dir), "--merge", "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "labels.json", "tokenizer.json"} <= files
    assert not {"adapter_config.json", "adapter_model.safetensors"} & files

    tokenizer = load_tokenizer(out)
    unmerged = _logits(load_trained(result.run_dir / "model", result.run_dir), tokenizer)
    merged_model = AutoModelForSequenceClassification.from_pretrained(out)
    torch.testing.assert_close(_logits(merged_model, tokenizer), unmerged, atol=1e-5, rtol=0)
    assert merged_model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    # The training really changed the attention weights that the adapter was merged into.
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    key = "bert.encoder.layer.0.attention.self.value.weight"
    assert not torch.allclose(base.state_dict()[key], merged_model.state_dict()[key])

    # A Python without PEFT loads it and computes the same logits.
    proc = subprocess.run([sys.executable, "-c", WITHOUT_PEFT, str(out), json.dumps(TEXTS)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    torch.testing.assert_close(torch.tensor(json.loads(proc.stdout)), unmerged, atol=1e-5, rtol=0)


def test_export_without_merge_copies_the_model_and_never_overwrites(
    recipe_dict: dict[str, Any], tmp_path: Path
) -> None:
    result = _run(recipe_dict, {"name": "full"}, epochs=1)
    weights = (result.run_dir / "model/model.safetensors").read_bytes()
    out = export_model(result.run_dir, tmp_path / "copy", merge=False)
    assert (out / "model.safetensors").read_bytes() == weights
    merged = export_model(result.run_dir, tmp_path / "merged", merge=True)  # a plain model: nothing to merge
    assert (merged / "model.safetensors").read_bytes() == weights
    with pytest.raises(UserError, match=r"--out .* is not empty; choose a new directory"):
        export_model(result.run_dir, out, merge=False)
    cli = CliRunner().invoke(app, ["export", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "x")])
    assert cli.exit_code == 2 and "no trained model here" in cli.output
