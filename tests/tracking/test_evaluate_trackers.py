"""`tunesmith run` logs the suite's numbers to its trackers, and `tunesmith evaluate` adds to the same stores."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tunesmith.config.loader import recipe_from_dict
from tunesmith.run import run

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


def _tsv(path: Path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["good", "bad"])
        words = rng.choices(["the", "pill", "made", "me", "feel", "today"], k=6) + [label]
        rows.append(f"{' '.join(words)}\t{label}\n")
    path.write_text("text\tlabel\n" + "".join(rows))
    return str(path)


def test_evaluate_logs_into_the_runs_tensorboard_and_mlflow_stores(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from typer.testing import CliRunner

    from tunesmith.cli import app

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    recipe = recipe_from_dict({
        "model": {"name": str(tiny_model), "max_length": 16},
        "data": {"train": _tsv(tmp_path / "train.tsv", 80, 1), "test": _tsv(tmp_path / "test.tsv", 40, 2)},
        "train": {"epochs": 1, "batch_size": 16, "precision": "fp32"},
        "eval": {"suite": ["calibration"]}, "report_to": ["tensorboard", "mlflow"],
        "output": {"dir": str(tmp_path / "runs"), "name": "tracked"}, "audit": {"gate": "off"},
    }, "test recipe")  # fmt: skip
    result = run(recipe, quiet=True)
    run_dir = result.run_dir
    steps = int(result.metrics["steps"])

    def tensorboard_tags() -> set[str]:
        events = EventMultiplexer().AddRunsFromDirectory(str(run_dir / "tensorboard"))
        events.Reload()
        return {tag for tags in events.Runs().values() for tag in tags.get("scalars", [])}

    assert "evaluation/calibration/ece" in tensorboard_tags()  # the run's own suite, at its end
    assert "evaluation/baseline/baseline_macro_f1" not in tensorboard_tags()

    outcome = CliRunner().invoke(app, ["evaluate", str(run_dir), "--only", "calibration,baseline"])
    assert outcome.exit_code == 0, outcome.output
    assert "evaluation/baseline/baseline_macro_f1" in tensorboard_tags()

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir.resolve()}/mlflow.db")
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("tunesmith").experiment_id])
    history = client.get_metric_history(mlflow_run.info.run_id, "evaluation/baseline/baseline_macro_f1")
    assert [m.step for m in history] == [steps] and 0.0 <= history[0].value <= 1.0
    assert len(client.get_metric_history(mlflow_run.info.run_id, "evaluation/calibration/ece")) == 2
    artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id, "evaluation")}
    assert {"evaluation/baseline.json", "evaluation/calibration.json"} <= artifacts
