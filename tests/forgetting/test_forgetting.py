"""Forgetting control on the tiny BERT: the penalties, replay, and forgetting measured on a planted task."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import toy_rows, write_tsv
from tunesmith.config.loader import recipe_from_dict
from tunesmith.data.batching import tokenize_texts
from tunesmith.errors import UserError
from tunesmith.evaluation.inference import Encoded
from tunesmith.evaluation.metrics import classification_metrics
from tunesmith.export import load_trained
from tunesmith.forgetting.penalties import Penalty, anchored, diagonal_fisher
from tunesmith.forgetting.replay import Replay
from tunesmith.forgetting.retain import build_retain_head, fit_probe, predict_retain
from tunesmith.models.loader import load_classifier, load_tokenizer
from tunesmith.run import run
from tunesmith.tasks.text_classification import make_collate

TOPICS = {"acne": ["skin", "face", "pimples", "cream"], "migraine": ["head", "light", "aura", "throbbing"],
          "pain": ["back", "knee", "joint", "ache"]}  # fmt: skip
SENTIMENT = ["negative", "neutral", "positive"]


def topic_rows(n: int, seed: int) -> list[tuple[str, str, str]]:
    """Task B: which condition a text is about (topic words), independent of its sentiment."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(list(TOPICS))
        words = rng.choices(["the", "drug", "i", "took", "it", "for", "weeks"], k=rng.randint(4, 12))
        words += rng.choices(TOPICS[label], k=3)
        rng.shuffle(words)
        rows.append((" ".join(words), "x", label))
    return rows


@pytest.fixture(scope="module")
def task_a(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Path]:
    """Task A (sentiment) learned by the tiny model: the starting point of task B, with its own head."""
    root = tmp_path_factory.mktemp("task-a")
    files = {"train": write_tsv(root / "a_train.tsv", toy_rows(200, seed=1)),
             "retain": write_tsv(root / "a_test.tsv", toy_rows(90, seed=2)),
             "b_train": write_tsv(root / "b_train.tsv", topic_rows(200, seed=3)),
             "b_test": write_tsv(root / "b_test.tsv", topic_rows(60, seed=4))}  # fmt: skip
    result = run(
        _recipe(root, "A", str(tiny_model), files["train"], files["retain"], "rating", epochs=6), quiet=True
    )
    assert result.metrics["test"]["macro_f1"] > 0.9, "task A must be learned for forgetting to be measurable"
    return files | {"model": result.run_dir / "model", "root": root}


def _recipe(root: Path, name: str, model: str, train: Path, test: Path, label: str, epochs: int = 4,
            forgetting: dict[str, Any] | None = None, strategy: str = "full") -> Any:  # fmt: skip
    return recipe_from_dict({
        "model": {"name": model, "max_length": 64}, "strategy": strategy,
        "data": {"train": str(train), "test": str(test), "text": "review", "label": label},
        "train": {"epochs": epochs, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "early_stopping": {"patience": None}},
        "forgetting": forgetting or {}, "output": {"dir": str(root / "runs"), "name": name},
    })  # fmt: skip


def _task_b(task_a: dict[str, Path], name: str, **forgetting: Any) -> Any:
    forgetting = {"retain": str(task_a["retain"]), "label": "rating", **forgetting}
    recipe = _recipe(task_a["root"], name, str(task_a["model"]), task_a["b_train"], task_a["b_test"], "condition",
                     forgetting=forgetting)  # fmt: skip
    return run(recipe, quiet=True)


def _retain_f1(model: torch.nn.Module, head_model: torch.nn.Module, path: Path, tokenizer: Any) -> float:
    """Task-A macro-F1 of `model`'s encoder under `head_model`'s classifier, computed without tunesmith's code."""
    lines = path.read_text().splitlines()[1:]
    texts, labels = (
        [line.split("\t")[0] for line in lines],
        [SENTIMENT.index(line.split("\t")[1]) for line in lines],
    )
    model.classifier = head_model.classifier
    batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        preds = model.eval()(**batch).logits.argmax(-1).tolist()
    return float(classification_metrics(labels, preds, SENTIMENT)["macro_f1"])


def test_forgetting_is_measured_on_a_planted_sequential_task(task_a: dict[str, Path]) -> None:
    result = _task_b(task_a, "B-none")
    f = result.metrics["forgetting"]
    tokenizer = load_tokenizer(task_a["model"])
    start = load_trained(task_a["model"])
    assert f["head"] == "starting model's head" and f["labels"] == "retain label column"
    assert f["before"]["macro_f1"] == pytest.approx(
        _retain_f1(load_trained(task_a["model"]), start, task_a["retain"], tokenizer)
    )
    after = _retain_f1(load_trained(result.run_dir / "model"), start, task_a["retain"], tokenizer)
    assert f["after"]["macro_f1"] == pytest.approx(after)
    assert f["drop"] == pytest.approx(f["before"]["macro_f1"] - after) and f["drop"] > 0.1
    assert json.loads((result.run_dir / "metrics.json").read_text())["forgetting"]["drop"] == pytest.approx(
        f["drop"]
    )
    [finding] = [x for x in result.findings if x.id == "forgetting.drop"]
    # The warning names the method and the setting to try, and carries them as a config patch.
    assert finding.severity == "warning" and finding.evidence["method"] == "none"
    assert "forgetting.method: ewc" in finding.recommendation
    assert "forgetting.ewc_weight: 1.0" in finding.recommendation
    assert finding.config_patch == {"forgetting.method": "ewc", "forgetting.ewc_weight": 1.0}


@pytest.mark.parametrize("method", ["l2sp", "ewc"])
def test_penalties_keep_what_the_model_knew(task_a: dict[str, Path], method: str) -> None:
    result = _task_b(task_a, f"B-{method}", method=method, l2sp_weight=10.0, ewc_weight=10.0)
    assert result.metrics["forgetting"]["drop"] <= 0.05
    assert not [x for x in result.findings if x.id == "forgetting.drop"]


def test_task_b_with_another_label_count_gets_a_new_head_and_keeps_a_s_as_retain_head(
    task_a: dict[str, Path],
) -> None:
    root = task_a["root"]
    two = [r for r in topic_rows(300, seed=6) if r[2] != "pain"]
    train, test = write_tsv(root / "b2_train.tsv", two[:160]), write_tsv(root / "b2_test.tsv", two[160:])
    forgetting = {"retain": str(task_a["retain"]), "label": "rating", "method": "replay"}
    recipe = _recipe(root, "B-two-labels", str(task_a["model"]), train, test, "condition", epochs=2,
                     forgetting=forgetting)  # fmt: skip
    result = run(recipe, quiet=True)
    assert result.metrics["labels"] == ["acne", "migraine"]
    f = result.metrics["forgetting"]
    assert f["head"] == "starting model's head" and f["before"]["macro_f1"] > 0.9


def test_without_labels_the_starting_predictions_are_kept(task_a: dict[str, Path]) -> None:
    f = _task_b(task_a, "B-pseudo", label=None).metrics["forgetting"]
    assert f["labels"] == "starting model's predictions" and f["before"]["macro_f1"] == 1.0


def test_a_probe_scores_a_model_without_a_head_and_frozen_forgets_nothing(
    task_a: dict[str, Path], tiny_model: Path
) -> None:
    forgetting = {"retain": str(task_a["retain"]), "label": "rating"}
    recipe = _recipe(task_a["root"], "probe-frozen", str(tiny_model), task_a["b_train"], task_a["b_test"], "condition",
                     epochs=2, forgetting=forgetting, strategy="frozen")  # fmt: skip
    f = run(recipe, quiet=True).metrics["forgetting"]
    assert f["head"] == "linear probe on the starting features" and f["drop"] == 0.0


def test_bad_retain_input_fails_before_the_run_directory_exists(
    task_a: dict[str, Path], tiny_model: Path
) -> None:
    root = task_a["root"]
    missing = _recipe(root, "bad-1", str(tiny_model), task_a["b_train"], task_a["b_test"], "condition",
                      forgetting={"retain": str(root / "nope.tsv"), "label": "rating"})  # fmt: skip
    with pytest.raises(UserError, match=r"forgetting\.retain: .*nope\.tsv does not exist"):
        run(missing, quiet=True)
    no_head = _recipe(root, "bad-2", str(tiny_model), task_a["b_train"], task_a["b_test"], "condition",
                      forgetting={"retain": str(task_a["retain"])})  # fmt: skip
    with pytest.raises(
        UserError, match=r"forgetting\.label: the starting model has no trained classification head"
    ):
        run(no_head, quiet=True)
    wrong_column = _recipe(root, "bad-3", str(tiny_model), task_a["b_train"], task_a["b_test"], "condition",
                           forgetting={"retain": str(task_a["retain"]), "label": "stars"})  # fmt: skip
    with pytest.raises(UserError, match=r"forgetting\.label: column 'stars' is not in"):
        run(wrong_column, quiet=True)
    assert not (root / "runs" / "bad-1").exists() and not (root / "runs" / "bad-2").exists()


@pytest.fixture()
def retain_setup(tiny_model: Path) -> tuple[Any, Any, Encoded, Any]:
    model, tokenizer, _dir = load_classifier(str(tiny_model), SENTIMENT, seed=0)
    rows = toy_rows(40, seed=5)
    data = Encoded(tokenize_texts([r[0] for r in rows], tokenizer, 64), [SENTIMENT.index(r[1]) for r in rows])
    collate = make_collate(tokenizer)
    head = build_retain_head(model, SENTIMENT, None)
    fit_probe(model, head, data, collate)
    return model, head, data, collate


def _sgd_step(model: torch.nn.Module, data: Encoded, collate: Any) -> None:
    batch = collate(data.input_ids[:8], data.labels[:8])
    labels = batch.pop("labels")
    F.cross_entropy(model(**batch).logits, labels).backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    model.zero_grad()


def test_ewc_and_l2sp_penalties_are_zero_at_the_anchor_and_grow_after_a_step(retain_setup: Any) -> None:
    model, head, data, collate = retain_setup
    params = anchored(model, {id(p) for p in model.classifier.parameters()})
    fisher = diagonal_fisher(model, head, data, collate, params, samples=16)
    values = np.concatenate([f.flatten().numpy() for f in fisher.values()])
    assert values.max() == 1.0 and values.min() >= 0.0 and 0.005 < np.mean(values == 1.0) < 0.02
    ewc, l2sp = Penalty("ewc", params, 1.0, fisher), Penalty("l2sp", params, 1.0)
    assert float(ewc.penalty().detach()) == 0.0 and float(l2sp.penalty().detach()) == 0.0
    _sgd_step(model, data, collate)
    first_ewc, first_l2sp = float(ewc.penalty().detach()), float(l2sp.penalty().detach())
    assert first_ewc > 0.0 and first_l2sp > 0.0
    _sgd_step(model, data, collate)
    assert float(l2sp.penalty().detach()) > first_l2sp
    # The penalty's gradient pulls each weight back towards its anchor.
    ewc.penalty().backward()
    p, a = params[0][1], ewc.anchor[0]
    assert float(((p - a) * p.grad).sum().detach()) > 0


def test_replay_draws_seeded_retain_batches(retain_setup: Any) -> None:
    from types import SimpleNamespace

    model, head, data, collate = retain_setup
    replay = Replay(head, data, collate, fraction=0.25, seed=7)
    ctx: Any = SimpleNamespace(step=3, model=model, accelerator=SimpleNamespace(unwrap_model=lambda m: m))
    batch = collate(data.input_ids[:16], data.labels[:16])
    first = replay.extra_loss(ctx, batch)
    second = replay.extra_loss(ctx, batch)
    assert first is not None and second is not None and float(first) > 0 and first.requires_grad
    replay.micro = 0
    again = replay.extra_loss(ctx, batch)
    assert again is not None and float(again) == float(first) != float(second)
    assert predict_retain(model, head, data, collate).shape == (len(data),)
