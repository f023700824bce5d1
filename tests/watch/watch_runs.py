"""Real tiny runs for the watch tests: the tiny random BERT on small toy files, provoked into failure."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from conftest import toy_rows, write_tsv
from tunesmith.config.loader import recipe_from_dict
from tunesmith.findings import Finding
from tunesmith.run import RunResult, run
from tunesmith.training.callbacks.base import Callback

LABELS = ("negative", "neutral", "positive")
Row = tuple[str, str, str]


def noisy_rows(n: int, seed: int) -> list[Row]:
    """Toy rows with every second label redrawn at random: there is noise to memorise."""
    rng, labels = random.Random(0), ["positive", "negative", "neutral"]
    return [
        (t, rng.choice(labels) if i % 2 else label, g) for i, (t, label, g) in enumerate(toy_rows(n, seed))
    ]


def recipe(
    tmp_path: Path,
    model: Path,
    train_rows: list[Row],
    *,
    validation_rows: list[Row] | None = None,
    test_rows: list[Row] | None = None,
    name: str = "watch",
    **train: Any,
) -> dict[str, Any]:
    """A fp32 recipe on the tiny model over the given rows; `train` overrides the train section."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    data: dict[str, Any] = {"train": str(write_tsv(data_dir / f"{name}-train.tsv", train_rows)), "text": "review",
                            "label": "rating", "group": "condition"}  # fmt: skip
    if validation_rows is not None:
        data["validation"] = str(write_tsv(data_dir / f"{name}-validation.tsv", validation_rows))
    if test_rows is not None:
        data["test"] = str(write_tsv(data_dir / f"{name}-test.tsv", test_rows))
    return {
        "model": {"name": str(model), "max_length": 48},
        "data": data,
        "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "log_every": 1, **train},
        "output": {"dir": str(tmp_path / "runs"), "name": name},
        "audit": {"label_errors": False},
        "eval": {"suite": []},  # these runs watch training; the evaluation suite has its own tests
    }


@contextmanager
def one_thread() -> Iterator[None]:
    """A model this small gains nothing from intra-op threads, and on a shared CPU their spinning costs
    10-50x (measured: 1.0-1.6 s vs 0.02-0.03 s per forward+backward under load 7 on 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_recipe(recipe_dict: dict[str, Any], callbacks: list[Callback] | None = None) -> RunResult:
    with one_thread():
        return run(recipe_from_dict(recipe_dict), quiet=True, extra_callbacks=callbacks)


def findings(run_dir: Path) -> dict[str, Finding]:
    """findings.json by id (the file the run wrote, not the in-memory list)."""
    return {f["id"]: Finding.from_dict(f) for f in json.loads((run_dir / "findings.json").read_text())}


def records(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    """History records of one kind; for "epoch", the training epochs (the validation at the start, epoch 0,
    is `records(run_dir, "start")`)."""
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    if kind == "start":
        return [r for r in map(json.loads, lines) if r["kind"] == "epoch" and r["epoch"] == 0]
    return [
        r for r in map(json.loads, lines) if r["kind"] == kind and not (kind == "epoch" and r["epoch"] == 0)
    ]


class PoisonForward(Callback):
    """Makes the logits of the `at`-th training forward pass NaN: one non-finite loss, as a fault would."""

    name = "poison"

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_start(self, ctx: Any) -> None:
        calls = {"n": 0}

        def hook(module: Any, args: Any, output: Any) -> Any:
            if module.training:
                calls["n"] += 1
                if calls["n"] == self.at:
                    output.logits = output.logits * float("nan")
            return output

        ctx.model.register_forward_hook(hook)
