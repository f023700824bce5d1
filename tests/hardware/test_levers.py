"""Memory levers: gradient checkpointing gives every trainable parameter its gradient (full and LoRA, on
an encoder and a decoder), evaluation memory does not grow with the examples, and bad settings are one line."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from transformers import MPNetConfig, MPNetModel
from typer.testing import CliRunner

from conftest import lm_text
from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.hardware.levers import enable_gradient_checkpointing
from tunesmith.hardware.memory import PeakMeter
from tunesmith.models.loader import load_tokenizer
from tunesmith.models.registry import resolve_model_dir
from tunesmith.strategies.registry import get_strategy
from tunesmith.tasks.base import Encoded
from tunesmith.tasks.registry import make_task

runner = CliRunner()


def lm_recipe(tmp_path: Path, tiny_llama: Path, n: int = 24) -> dict[str, Any]:
    rng = random.Random(0)
    train = tmp_path / "lm.jsonl"
    train.write_text("".join(json.dumps({"text": lm_text(rng, 6, 14)}) + "\n"
                             for _ in range(n)))  # fmt: skip
    return {"task": "causal-lm", "model": {"name": str(tiny_llama), "max_length": 32}, "data": {"train": str(train)},
            "train": {"precision": "fp32", "batch_size": 4}, "eval": {"samples": 0},
            "output": {"dir": str(tmp_path / "runs"), "name": "lm"}, "audit": {"gate": "off"}}  # fmt: skip


def _prepared(recipe_dict: dict[str, Any], strategy: str) -> tuple[Any, torch.nn.Module, Encoded]:
    recipe = recipe_from_dict({**recipe_dict, "strategy": {"name": strategy}})
    task = make_task(recipe)
    _, bundle = task.prepare_data()
    model = get_strategy(recipe.strategy).prepare(task.load_model(bundle).model)
    return task, model, task.encode(bundle.train)


@pytest.mark.parametrize("kind", ["bert", "llama"])
@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_gradient_checkpointing_leaves_no_trainable_parameter_without_a_gradient(
    kind: str, strategy: str, recipe_dict: dict[str, Any], tmp_path: Path, tiny_llama: Path
) -> None:
    base = recipe_dict if kind == "bert" else lm_recipe(tmp_path, tiny_llama)
    task, model, data = _prepared(base, strategy)
    enable_gradient_checkpointing(model)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    assert inner.is_gradient_checkpointing
    with torch.no_grad():  # LoRA starts with B = 0, which gives A an exactly zero gradient
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.1)
    model.train()
    batch = task.collate(data, list(range(4)))
    task.step(model, batch, torch.arange(4)).loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    missing = [n for n, p in trainable.items() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not missing, f"no gradient under gradient checkpointing: {missing[:5]}"


def test_evaluation_memory_does_not_grow_with_the_examples(tmp_path: Path, tiny_llama: Path) -> None:
    # A batch of logits is 8 x 32 x 49,152 floats (50 MB): keeping them per batch would add 50 MB a batch.
    task, model, data = _prepared(lm_recipe(tmp_path, tiny_llama, n=112), "full")
    few = Encoded(data.input_ids[:8], data.labels[:8])  # one batch
    peaks = []
    for split in (few, data):  # about 12 batches
        with PeakMeter(torch.device("cpu")) as meter:
            task.evaluate(model, split, batch_size=64, device=torch.device("cpu"))
        peaks.append(meter.peak_delta)
    assert peaks[1] < peaks[0] + 50 * 2**20, peaks  # measured: -12 MB as is, +140 MB keeping the logits


def _write(tmp_path: Path, recipe: dict[str, Any]) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def _tiny_mpnet(out: Path) -> Path:
    tokenizer = load_tokenizer(resolve_model_dir("minilm"))
    config = MPNetConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=514)  # fmt: skip
    MPNetModel(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["train.batch_size=auto", "train.effective_batch_size=16", "train.grad_accum=3"],
         ["train.grad_accum", "effective batch of 16", "1, 2, 4, 8, 16"]),
        (["train.effective_batch_size=32"], ["train.effective_batch_size", "batch_size: auto"]),
        (["train.precision=fp16"], ["train.precision", "fp16", "bf16 or fp32"]),
        (["train.gradient_checkpointing=true", "model.name=MPNET"],
         ["train.gradient_checkpointing", "MPNetForSequenceClassification", "does not support"]),
        (["train.batch_size=0"], ["train.batch_size"]),
    ],
)  # fmt: skip
def test_bad_lever_settings_are_one_line_and_leave_no_run_directory(
    overrides: list[str], needles: list[str], tmp_path: Path, recipe_dict: dict[str, Any]
) -> None:
    if torch.cuda.is_available() and "train.precision=fp16" in overrides:
        pytest.skip("fp16 is valid on a CUDA machine")
    overrides = [o.replace("MPNET", str(_tiny_mpnet(tmp_path / "mpnet"))) for o in overrides]
    for command in ("run", "plan") if "train.grad_accum=3" in overrides else ("run",):
        result = runner.invoke(app, [command, _write(tmp_path, recipe_dict), *overrides])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        for needle in needles:
            assert needle in " ".join(result.output.split()), (needle, result.output)
        assert not (tmp_path / "runs").exists()
