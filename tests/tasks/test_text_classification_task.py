"""The text-classification task through the task interface: device-side sums, training dynamics, metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tunesmith.config.loader import recipe_from_dict
from tunesmith.errors import UserError
from tunesmith.evaluation.metrics import classification_metrics
from tunesmith.run import run
from tunesmith.tasks.registry import make_task


def _task(recipe_dict: dict[str, Any]) -> Any:
    task = make_task(recipe_from_dict(recipe_dict))
    _, bundle = task.prepare_data()
    task.load_model(bundle)
    return task, bundle


def test_device_sums_give_the_metrics_of_the_predictions(recipe_dict: dict[str, Any]) -> None:
    task, bundle = _task(recipe_dict)
    model = task.load_model(bundle).model.eval()
    data = task.encode(bundle.train)
    sums = task.new_sums(len(data), torch.device("cpu"))
    preds, labels = [], []
    for start, keep in ((0, True), (16, False), (32, True)):
        indices = list(range(start, start + 16))
        out = task.step(model, task.collate(data, indices), torch.tensor(indices))
        task.accumulate(sums, out, torch.tensor(keep))
        if keep:  # a dropped (non-finite) micro-batch adds nothing
            preds += out.stats["preds"].tolist()
            labels += out.stats["labels"].tolist()
    got = task.train_metrics(sums)
    expected = classification_metrics(labels, preds, bundle.labels)
    assert got["train_accuracy"] == expected["accuracy"]
    assert got["train_macro_f1"] == expected["macro_f1"]
    assert int(sums["n"]) == 32
    seen = ~torch.isnan(sums["margin"])
    assert seen.sum() == 32 and not seen[16:32].any()
    # the margin is the label's logit minus the best other: positive exactly where the prediction is right
    first = task.step(model, task.collate(data, list(range(16))), torch.arange(16))
    assert ((first.stats["margin"] > 0) == (first.stats["preds"] == first.stats["labels"])).all()


def test_a_run_records_step_one_and_the_training_dynamics(recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"].update(epochs=2, log_every=5)
    result = run(recipe_from_dict(recipe_dict), quiet=True)
    lines = [json.loads(line) for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if r["kind"] == "step"]
    assert steps[0] == 1 and steps[1] == 5  # step 1 always, then every log_every
    with np.load(result.run_dir / "dynamics.npz") as dynamics:
        margin, p_label, rows = dynamics["margin"], dynamics["p_label"], dynamics["rows"]
    n_train = result.metrics["data"]["train"]
    assert margin.shape == p_label.shape == (2, n_train) and rows.shape == (n_train,)
    assert np.isfinite(margin).all() and ((p_label > 0) & (p_label < 1)).all()
    predictions = [json.loads(line) for line in (result.run_dir / "predictions/validation.jsonl").open()]
    assert not set(rows) & {p["row"] for p in predictions}, "dynamics are of training rows only"
    assert p_label[1].mean() > p_label[0].mean(), "the model grows more sure of the labels as it learns"


def test_a_metric_of_another_task_is_refused(recipe_dict: dict[str, Any]) -> None:
    recipe = recipe_from_dict(recipe_dict)
    recipe.eval.__dict__["metric"] = "perplexity"  # past the schema, as a future metric would be
    with pytest.raises(UserError, match="eval.metric: perplexity is not a text-classification metric"):
        make_task(recipe)


def test_no_run_directory_without_a_validation_start(recipe_dict: dict[str, Any], tmp_path: Path) -> None:
    recipe_dict["train"]["epochs"] = 1
    recipe_dict["eval"] = {"on_start": False}
    result = run(recipe_from_dict(recipe_dict), quiet=True)
    epochs = [json.loads(x) for x in (result.run_dir / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["kind"] == "epoch"] == [1]


def test_group_weights_weigh_every_group_the_same(recipe_dict: dict[str, Any]) -> None:
    from tunesmith.tasks.text_classification import group_weights

    weights = group_weights(["a", "a", "a", "b"])
    assert weights.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0])  # each group sums to 2, mean 1
    recipe_dict["train"]["group_weights"] = True
    task, bundle = _task(recipe_dict)
    model = task.load_model(bundle).model.eval()
    data = task.encode(bundle.train)
    task.start_training(data, torch.device("cpu"))
    indices = list(range(16))
    batch = task.collate(data, indices)
    out = task.step(model, batch, torch.tensor(indices))
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    per_example = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
    w = group_weights(bundle.train.groups)[indices]
    expected = float((per_example * w).sum().detach() / w.sum())
    assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-5)
    del recipe_dict["data"]["group"]
    with pytest.raises(UserError, match="train.group_weights: weights by group need a group column"):
        make_task(recipe_from_dict(recipe_dict))
