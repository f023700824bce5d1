"""The loop reads from the device once per optimizer step (the NaN / preemption flags) and a few more times on
logged steps only: `.item()`, `.tolist()`, `.cpu()` and `.numpy()` are counted while `train()` runs."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
import torch

import tunesmith.run as run_module
from conftest import toy_rows, write_tsv
from tunesmith.config.loader import recipe_from_dict

READS_PER_STEP = 1  # README "Preemption, several processes and machines": the documented budget
EXTRA_READS_PER_LOGGED_STEP = (
    5  # the logged window (loss, count, tokens) and what callbacks log (4.1 measured)
)


def test_host_reads_per_optimizer_step(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts: collections.Counter[str] = collections.Counter()
    active = [False]
    train = run_module.train

    def counting_train(*args: Any, **kwargs: Any) -> Any:
        active[0] = True
        try:
            return train(*args, **kwargs)
        finally:
            active[0] = False

    monkeypatch.setattr(run_module, "train", counting_train)
    for name in ("item", "tolist", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def wrapper(
            self: torch.Tensor, *a: Any, _original: Any = original, _name: str = name, **k: Any
        ) -> Any:
            if active[0]:
                counts[_name] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapper)

    validation = write_tsv(tmp_path / "val.tsv", toy_rows(32, 2))

    def reads(rows: int, log_every: int) -> tuple[int, int]:
        recipe = recipe_from_dict({
            "model": {"name": str(tiny_model), "max_length": 64},
            "data": {"train": str(write_tsv(tmp_path / f"train{rows}.tsv", toy_rows(rows, 1))),
                     "validation": str(validation), "text": "review", "label": "rating"},
            "train": {"epochs": 1, "batch_size": 16, "precision": "fp32", "log_every": log_every},
            "eval": {"suite": [], "on_start": False}, "audit": {"gate": "off"},
            "output": {"dir": str(tmp_path / "runs"), "name": f"r{rows}-{log_every}"},
        }, "test")  # fmt: skip
        counts.clear()
        outcome = run_module.run(recipe, quiet=True).outcome
        assert outcome is not None
        return outcome.steps, sum(counts.values())

    # Same validation and checkpoints, twice the optimizer steps; only step 1 is logged in both.
    steps_a, reads_a = reads(64, 1000)
    steps_b, reads_b = reads(128, 1000)
    assert steps_b > steps_a
    assert (reads_b - reads_a) / (steps_b - steps_a) <= READS_PER_STEP
    # Every step logged: the extra reads per logged step stay within the documented few.
    steps_c, reads_c = reads(128, 1)
    assert steps_c == steps_b
    assert (reads_c - reads_b) / (steps_c - 1) <= EXTRA_READS_PER_LOGGED_STEP
