"""Reading a run directory: diagnose(run_dir) puts the audit's findings first; bad directories are UserErrors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.diagnosis import diagnose, load_run
from tunesmith.errors import UserError
from tunesmith.findings import Finding


def write_run(run_dir: Path, history: list[dict], confusion: list[list[int]]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text("train:\n  lr: 5.0e-05\n  class_weights: false\n", encoding="utf-8")
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")
    metrics = {
        "labels": ["a", "b"],
        "best_epoch": 1,
        "epochs_run": 1,
        "stop_reason": None,
        "validation": {"macro_f1": 0.4, "confusion_matrix": confusion},
        "test": None,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    audit = Finding("audit.class_imbalance", "audit", "warning", "Class imbalance", {"ratio": 9.0})
    (run_dir / "audit.json").write_text(
        json.dumps({"findings": [audit.to_dict()], "stats": {}}), encoding="utf-8"
    )


def test_diagnose_run_dir(tmp_path: Path) -> None:
    steps = [{"kind": "step", "step": 10 * i, "loss": 0.7 - 0.01 * i} for i in range(1, 11)]
    write_run(tmp_path, steps, [[0, 10], [0, 90]])
    found = diagnose(tmp_path)
    assert [f.id for f in found][:2] == ["audit.class_imbalance", "training.collapsed_predictions"]
    assert found[1].evidence["audit"] == ["audit.class_imbalance"]
    assert found[1].evidence["predicted_share"] == 1.0 and found[1].evidence["true_share"] == 0.9
    assert load_run(tmp_path).setting("train.lr") == 5e-5


def test_torn_last_history_line_is_ignored(tmp_path: Path) -> None:
    write_run(tmp_path, [{"kind": "step", "step": 10, "loss": 0.7}], [[5, 5], [5, 5]])
    with (tmp_path / "history.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"kind": "step", "st')
    assert len(load_run(tmp_path).history) == 1


def test_corrupt_history_line_names_the_file_and_line(tmp_path: Path) -> None:
    write_run(tmp_path, [{"kind": "step", "step": 10, "loss": 0.7}], [[5, 5], [5, 5]])
    with (tmp_path / "history.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("garbage\n{}\n")
    with pytest.raises(UserError, match=r"history.jsonl line 2"):
        load_run(tmp_path)


def test_missing_or_foreign_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a directory"):
        load_run(tmp_path / "nope")
    with pytest.raises(UserError, match="has none of them"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match="metrics.json is not valid JSON"):
        load_run(tmp_path)
