"""The recipe knobs act: model.dropout / classifier_dropout, model.num_layers, train.l1, train.label_smoothing;
each is recorded in config.yaml, searchable, and bad values are one line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.config.schema import ModelConfig
from tunesmith.errors import UserError
from tunesmith.models.loader import load_classifier
from tunesmith.models.shaping import shaped_kwargs
from tunesmith.run import run
from tunesmith.tasks.registry import make_task
from tunesmith.tuning.space import check_space

LABELS = ["negative", "neutral", "positive"]


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1000, 2000, (4, 12), generator=generator),
            "attention_mask": torch.ones(4, 12, dtype=torch.long)}  # fmt: skip


def _two_passes(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    model.train()
    batch = _batch()
    with torch.no_grad():
        return model(**batch).logits, model(**batch).logits


def test_dropout_zero_makes_train_mode_deterministic(tiny_model: Path) -> None:
    stock, _tok, _dir = load_classifier(str(tiny_model), LABELS, seed=0)
    first, second = _two_passes(stock)
    assert not torch.equal(first, second)  # BERT's default 0.1 dropout: two passes differ
    shape = ModelConfig(name=str(tiny_model), dropout=0.0, classifier_dropout=0.0)
    off, _tok, _dir = load_classifier(str(tiny_model), LABELS, seed=0, shape=shape)
    assert off.config.hidden_dropout_prob == 0.0 and off.config.attention_probs_dropout_prob == 0.0
    assert off.config.classifier_dropout == 0.0
    first, second = _two_passes(off)
    assert torch.equal(first, second)


def _block_params(layers: torch.nn.ModuleList) -> int:
    return sum(p.numel() for p in layers.parameters())


def test_num_layers_keeps_the_bottom_blocks(tiny_model: Path, tiny_llama: Path) -> None:
    full, _tok, _dir = load_classifier(str(tiny_model), LABELS, seed=0)
    one, _tok, _dir = load_classifier(
        str(tiny_model), LABELS, seed=0, shape=ModelConfig(name=str(tiny_model), num_layers=1)
    )
    assert len(full.bert.encoder.layer) == 2 and len(one.bert.encoder.layer) == 1
    assert _block_params(one.bert.encoder.layer) * 2 == _block_params(full.bert.encoder.layer)
    # the bottom block keeps its pre-trained weights
    assert torch.equal(
        one.bert.encoder.layer[0].output.dense.weight, full.bert.encoder.layer[0].output.dense.weight
    )
    # causal LM (Llama): the same key, and model.dropout is its attention_dropout
    shape = ModelConfig(name=str(tiny_llama), num_layers=1, dropout=0.3)
    llama = AutoModelForCausalLM.from_pretrained(tiny_llama, **shaped_kwargs(tiny_llama, shape))
    stock = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert len(llama.model.layers) == 1 and llama.config.attention_dropout == 0.3
    assert _block_params(llama.model.layers) * 2 == _block_params(stock.model.layers)


def _abs_weights(run_dir: Path) -> float:
    weights = load_file(run_dir / "model" / "model.safetensors")
    return float(sum(t.abs().sum() for t in weights.values() if t.ndim >= 2))


def test_l1_shrinks_weights_and_knobs_are_recorded(recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"].update(epochs=1, batch_size=16)
    recipe_dict["eval"]["suite"] = []
    plain = run(recipe_from_dict(recipe_dict, "test"), quiet=True)
    recipe_dict["output"]["name"] = "l1"
    recipe_dict["train"].update(l1=1e-3, label_smoothing=0.1)
    recipe_dict["model"].update(dropout=0.0, num_layers=1)
    shrunk = run(recipe_from_dict(recipe_dict, "test"), quiet=True)
    saved = yaml.safe_load((shrunk.run_dir / "config.yaml").read_text())
    assert saved["train"]["l1"] == 1e-3 and saved["train"]["label_smoothing"] == 0.1
    assert saved["model"]["dropout"] == 0.0 and saved["model"]["num_layers"] == 1
    # per weight matrix: the shrunk run has one block fewer, so compare the shared ones
    plain_w = load_file(plain.run_dir / "model" / "model.safetensors")
    shrunk_w = load_file(shrunk.run_dir / "model" / "model.safetensors")
    shared = [k for k, t in shrunk_w.items() if t.ndim >= 2 and k in plain_w]
    assert shared
    assert sum(float(shrunk_w[k].abs().sum()) for k in shared) < 0.8 * sum(
        float(plain_w[k].abs().sum()) for k in shared
    )
    assert shrunk.metrics["total_params"] < plain.metrics["total_params"]


def test_label_smoothing_raises_the_loss_of_confident_right_answers(recipe_dict: dict[str, Any]) -> None:
    losses = []
    for smoothing in (0.0, 0.2):
        recipe_dict["train"]["label_smoothing"] = smoothing
        task = make_task(recipe_from_dict(recipe_dict, "test"))
        _tables, bundle = task.prepare_data()
        model = task.load_model(bundle).model.eval()
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 8.0]))  # sure of "positive"
        batch = {**_batch(), "labels": torch.full((4,), 2)}
        losses.append(float(task.step(model, batch, torch.arange(4)).loss.detach()))
    assert losses[0] < 0.01 and losses[1] > 0.1


def test_knobs_are_searchable(recipe_dict: dict[str, Any]) -> None:
    recipe_dict["search"] = {"model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
                             "train.l1": {"type": "float", "low": 1e-6, "high": 1e-3, "log": True},
                             "model.num_layers": {"type": "int", "low": 1, "high": 2}}  # fmt: skip
    assert set(check_space(recipe_from_dict(recipe_dict, "test"), "r.yaml")) == set(recipe_dict["search"])
    recipe_dict["search"] = {"model.num_layers": {"type": "int", "low": 1, "high": 4}}
    with pytest.raises(UserError, match=r"search.model.num_layers: the value 4 .*at most|between 1 and 2"):
        check_space(recipe_from_dict(recipe_dict, "test"), "r.yaml")


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("model.dropout=1.0", ["model.dropout"]),
        ("model.classifier_dropout=-0.1", ["model.classifier_dropout"]),
        ("train.l1=-0.01", ["train.l1", "at least 0"]),
        ("model.num_layers=0", ["model.num_layers"]),
        ("model.num_layers=3", ["model.num_layers", "2 transformer blocks", "between 1 and 2"]),
    ],
)
def test_bad_knob_values_are_one_line_exit_2(
    tmp_path: Path, recipe_dict: dict[str, Any], override: str, words: list[str]
) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    result = CliRunner().invoke(app, ["run", str(path), override, "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output
    assert not (tmp_path / "runs").exists()


def test_classification_knobs_are_refused_for_causal_lm(tiny_llama: Path, tmp_path: Path) -> None:
    data = tmp_path / "lm.jsonl"
    data.write_text("".join(f'{{"text": "line {i} of text"}}\n' for i in range(8)))
    base = {"task": "causal-lm", "model": {"name": str(tiny_llama)}, "data": {"train": str(data)},
            "output": {"dir": str(tmp_path / "runs")}}  # fmt: skip
    for key, value in (("train", {"label_smoothing": 0.1}), ("model", {"classifier_dropout": 0.1})):
        recipe = recipe_from_dict({**base, key: {**base.get(key, {}), **value}}, "test")
        with pytest.raises(UserError, match="text-classification setting"):
            make_task(recipe)
    recipe = recipe_from_dict({**base, "model": {"name": str(tiny_llama), "num_layers": 3}}, "test")
    with pytest.raises(UserError, match="between 1 and 2"):
        make_task(recipe).check_model()
