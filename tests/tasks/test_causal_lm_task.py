"""task: causal-lm end to end on a tiny random Llama (SmolLM2 tokenizer): runs, metrics, outputs, bad input."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from conftest import lm_text
from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.errors import UserError
from tunesmith.export import load_trained
from tunesmith.run import run
from tunesmith.tasks.registry import make_task


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [lm_text(rng, 6, 14) for _ in range(n)]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def lm_recipe(tmp_path: Path, tiny_llama: Path) -> dict[str, Any]:
    train = _jsonl(tmp_path / "train.jsonl", [{"text": t} for t in _texts(48, 1)])
    test = _jsonl(tmp_path / "test.jsonl", [{"text": t} for t in _texts(12, 2)])
    return {
        "task": "causal-lm",
        "model": {"name": str(tiny_llama), "max_length": 32},
        "data": {"train": str(train), "test": str(test)},
        "train": {"epochs": 2, "batch_size": 8, "lr": 5e-3, "precision": "fp32", "log_every": 2},
        "eval": {"samples": 2},
        "output": {"dir": str(tmp_path / "runs"), "name": "lm"},
        "audit": {"gate": "warn"},  # the language-model doctor runs first
    }


def test_text_run_learns_and_writes_lm_outputs(lm_recipe: dict[str, Any]) -> None:
    recipe = recipe_from_dict(lm_recipe)
    assert recipe.strategy.name == "lora" and recipe.eval.metric == "perplexity"  # the task's defaults
    result = run(recipe, quiet=True)
    m = result.metrics
    for split in ("validation", "test"):
        assert m[split]["perplexity"] == pytest.approx(math.exp(m[split]["loss"]), rel=1e-9)
        assert 0.0 <= m[split]["token_accuracy"] <= 1.0
    history = [json.loads(x) for x in (result.run_dir / "history.jsonl").read_text().splitlines()]
    start = next(r for r in history if r["kind"] == "epoch" and r["epoch"] == 0)
    epochs = [r for r in history if r["kind"] == "epoch" and r["epoch"] > 0]
    assert epochs[-1]["val_perplexity"] < start["val_perplexity"], (
        "repetitive text must get easier to predict"
    )
    assert epochs[-1]["train_perplexity"] == pytest.approx(math.exp(epochs[-1]["train_loss"]))
    generations = [json.loads(x) for x in (result.run_dir / "evaluation/generations.jsonl").open()]
    assert len(generations) == 2 and all(
        {"prompt", "reference", "start", "tuned"} <= g.keys() for g in generations
    )
    assert (result.run_dir / "model/adapter_config.json").is_file()  # lora: the adapter alone
    assert json.loads((result.run_dir / "model/adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"
    assert (result.run_dir / "report.html").is_file()
    assert json.loads((result.run_dir / "audit.json").read_text())["stats"]["task"] == "causal-lm"

    # generate: deterministic; export --merge: a plain model that reproduces the adapter's logits
    runner = CliRunner()
    outputs = [runner.invoke(app, ["generate", str(result.run_dir), "the patient", "--max-new-tokens", "8"])
               for _ in range(2)]  # fmt: skip
    assert outputs[0].exit_code == 0, outputs[0].output
    assert outputs[0].output == outputs[1].output and "the patient" in outputs[0].output
    merged_dir = result.run_dir.parent / "merged"
    exported = runner.invoke(app, ["export", str(result.run_dir), "--merge", "--out", str(merged_dir)])
    assert exported.exit_code == 0, exported.output
    assert not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    adapter = load_trained(result.run_dir / "model", result.run_dir)
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapter(input_ids=ids).logits, atol=1e-4)
    wrong = runner.invoke(app, ["predict", str(result.run_dir), "some text"])
    assert wrong.exit_code == 2 and "tunesmith generate" in wrong.output


def test_packed_and_chat_data_train(lm_recipe: dict[str, Any], tmp_path: Path) -> None:
    rows = [{"question": f"How was day {i}?", "answer": t} for i, t in enumerate(_texts(40, 3))]
    lm_recipe["data"] = {"train": str(_jsonl(tmp_path / "qa.jsonl", rows)), "prompt": "question",
                         "response": "answer", "packing": True}  # fmt: skip
    lm_recipe["train"]["epochs"] = 1
    lm_recipe["model"]["max_length"] = 128  # the chat template adds a system prompt of about 30 tokens
    result = run(recipe_from_dict(lm_recipe), quiet=True)
    steps = [json.loads(x) for x in (result.run_dir / "history.jsonl").read_text().splitlines()]
    assert all(math.isfinite(s["loss"]) for s in steps if s["kind"] == "step")
    # packed windows hold several examples each: fewer optimizer steps than unpacked batches of 8 would take
    assert result.metrics["steps"] < math.ceil(result.metrics["data"]["train"] / 8)


def test_step_loss_is_the_token_mean_and_ignores_the_prompt(
    lm_recipe: dict[str, Any], tmp_path: Path
) -> None:
    rows = [{"prompt": f"question {i} " * (i % 3 + 1), "response": t} for i, t in enumerate(_texts(8, 4))]
    lm_recipe["data"] = {
        "train": str(_jsonl(tmp_path / "pr.jsonl", rows)),
        "validation": str(tmp_path / "pr.jsonl"),
    }
    lm_recipe["model"]["max_length"] = 128
    task = make_task(recipe_from_dict(lm_recipe))
    _, bundle = task.prepare_data()
    model = task.load_model(bundle).model.eval()
    data = task.encode(bundle.train)
    out = task.step(model, task.collate(data, list(range(8))), torch.arange(8))
    assert float(out.loss.detach()) == pytest.approx(float(out.stats["nll"] / out.stats["count"]), rel=1e-6)
    responses = sum(sum(1 for y in labels if y != -100) for labels in data.labels)
    assert int(out.stats["count"]) == responses < sum(map(len, data.input_ids))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train": {"class_weights": True}}, "train.class_weights: a text-classification setting"),
        ({"strategy": "frozen"}, "strategy.name: frozen"),
        ({"eval": {"metric": "macro_f1"}}, "eval.metric: macro_f1 is not a causal-lm metric"),
        ({"data": {"prompt": "nope", "response": "answer"}}, "data.prompt: "),
    ],
)
def test_bad_causal_lm_recipes_are_one_line(
    lm_recipe: dict[str, Any], tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    for key, value in change.items():
        lm_recipe[key] = {**lm_recipe[key], **value} if isinstance(value, dict) else value
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(lm_recipe))
    result = CliRunner().invoke(app, ["run", str(path), "--quiet"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs" / "lm").exists()


def test_causal_lm_options_are_refused_for_classification(recipe_dict: dict[str, Any]) -> None:
    recipe_dict["data"]["packing"] = True
    with pytest.raises(UserError, match="data.packing: a causal-lm setting"):
        make_task(recipe_from_dict(recipe_dict))


def test_the_causal_lm_example_is_a_valid_recipe() -> None:
    from tunesmith.config.loader import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "examples" / "causal-lm.yaml")
    assert recipe.task == "causal-lm" and recipe.data.packing and recipe.eval.metric == "perplexity"
    make_task(recipe)  # every setting in it is one the task accepts


def test_perplexity_is_minimised_everywhere() -> None:
    from tunesmith.training.callbacks.early_stopping import EarlyStopping
    from tunesmith.tuning.search import direction

    assert (
        not EarlyStopping("perplexity", 2).higher_is_better and EarlyStopping("macro_f1", 2).higher_is_better
    )
    recipe = recipe_from_dict({"task": "causal-lm", "data": {"train": "x.jsonl"}})
    assert recipe.eval.metric == "perplexity" and direction(recipe) == "minimize"


def test_demo_with_an_unknown_task_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", "--task", "vision", "--quiet"])
    assert result.exit_code == 2 and "--task: 'vision' has no demo" in result.output
    assert not (tmp_path / "runs").exists()
