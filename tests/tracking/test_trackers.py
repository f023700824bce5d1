"""Trackers write real stores; the tests read them back with each tool's own reader."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tunesmith.config.schema import Recipe
from tunesmith.errors import UserError
from tunesmith.findings import Finding
from tunesmith.tracking import (
    MLflowTracker,
    TensorBoardTracker,
    aborted_on_error,
    flatten,
    make_trackers,
    metric_name,
)

STEPS = [
    {
        "kind": "step",
        "step": s,
        "epoch": s / 20,
        "loss": 1.2 - 0.02 * s,
        "lr": 1e-5 * s,
        "grad_norm": 2.0,
        "grad_norm/block.0": 0.5 + s / 100,
        "update_ratio/head": 1e-3,
    }
    for s in (10, 20, 30)
]
EPOCH = {
    "kind": "epoch",
    "step": 30,
    "epoch": 1,
    "train_loss": 0.9,
    "val_loss": 0.8,
    "val_macro_f1": 0.55,
    "early": True,
}


RESULTS = {
    "steps": 30,
    "validation": {"accuracy": 0.6, "macro_f1": 0.55, "per_class": {"a": {"f1": 0.5}}},
    "test": {"accuracy": 0.58, "macro_f1": 0.52, "loss": 0.9},
}
FINDINGS = [
    Finding("training.overfitting", "training", "warning", "Validation loss rose for 2 epochs"),
    Finding("training.early_stopped", "training", "info", "Early stopping at epoch 3"),
]


def fake_ctx(run_dir: Path) -> Any:
    recipe = Recipe.model_validate({"data": {"train": "train.csv"}, "output": {"name": "demo-run"}})
    return SimpleNamespace(
        recipe=recipe,
        step=0,
        stop_reason=None,
        extra={"run_dir": run_dir},
        accelerator=SimpleNamespace(is_main_process=True),
    )


def drive(tracker: Any, ctx: Any) -> None:
    tracker.on_train_start(ctx)
    for record in STEPS:
        ctx.step = record["step"]
        tracker.on_step_end(ctx, dict(record))
        tracker.on_step_end(ctx, {})  # unlogged steps pass an empty record
    tracker.on_epoch_end(ctx, dict(EPOCH))
    tracker.on_train_end(ctx)
    tracker.log_results(ctx.extra["run_dir"], RESULTS, FINDINGS, 30)


def test_metric_names_and_flatten() -> None:
    assert metric_name("step", "loss") == "train/loss"
    assert metric_name("step", "grad_norm/block.0") == "grad_norm/block.0"
    assert metric_name("epoch", "val_loss") == "epoch/val_loss"
    assert flatten({"train": {"lr": 1e-5, "early_stopping": {"patience": 3}}, "report_to": ["jsonl"]}) == {
        "train.lr": "1e-05",
        "train.early_stopping.patience": "3",
        "report_to": "['jsonl']",
    }


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
def test_tensorboard_event_files(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    drive(TensorBoardTracker(), fake_ctx(tmp_path))
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "grad_norm/block.0", "update_ratio/head"} <= tags
    assert {"epoch/train_loss", "epoch/val_loss", "epoch/val_macro_f1"} <= tags
    assert "epoch/early" not in tags
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [10, 20, 30]
    assert [e.value for e in loss] == pytest.approx([1.0, 0.8, 0.6])
    assert events.Scalars("epoch/val_loss")[0].value == pytest.approx(0.8)
    # the final results, at the last step
    assert {"validation/macro_f1", "test/accuracy", "test/macro_f1", "test/loss", "findings/warning"} <= tags
    assert [(e.step, e.value) for e in events.Scalars("test/macro_f1")] == [(30, pytest.approx(0.52))]
    assert events.Scalars("findings/warning")[0].value == 1 and events.Scalars("findings/error")[0].value == 0
    assert "findings/text_summary" in events.Tags()["tensors"]


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
def test_mlflow_local_sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tracker = MLflowTracker()
    drive(tracker, fake_ctx(run_dir))
    assert (run_dir / "mlflow.db").is_file()
    assert not (tmp_path / "mlruns").exists()

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    run = client.get_run(tracker.state_dict()["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "demo-run"
    assert run.data.params["train.lr"] == "5e-05"
    assert run.data.params["data.train"] == "train.csv"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, round(m.value, 6)) for m in history] == [(10, 1.0), (20, 0.8), (30, 0.6)]
    assert run.data.metrics["epoch/val_macro_f1"] == pytest.approx(0.55)
    assert run.data.metrics["grad_norm/block.0"] == pytest.approx(0.8)
    assert run.data.metrics["test/macro_f1"] == pytest.approx(0.52)
    assert run.data.metrics["validation/accuracy"] == pytest.approx(0.6)
    assert run.data.metrics["findings/warning"] == 1 and run.data.metrics["findings/info"] == 1
    assert run.data.tags["tunesmith.findings"] == "training.overfitting, training.early_stopped"

    resumed = MLflowTracker()
    resumed.load_state_dict(tracker.state_dict())
    ctx = fake_ctx(run_dir)
    resumed.on_train_start(ctx)
    resumed.on_step_end(ctx, {"kind": "step", "step": 40, "loss": 0.5})
    resumed.on_train_end(ctx)
    assert client.get_run(run.info.run_id).info.status == "RUNNING"  # until the results are logged
    resumed.log_results(run_dir, RESULTS, [], 40)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [10, 20, 30, 40]


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
def test_mlflow_tracking_uri_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/shared.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tracker = MLflowTracker()
    drive(tracker, fake_ctx(run_dir))
    assert not (run_dir / "mlflow.db").exists()
    metrics = MlflowClient(tracking_uri=uri).get_run(tracker.run_id).data.metrics
    assert metrics["epoch/val_loss"] == pytest.approx(0.8)


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
def test_mlflow_artifacts_and_failed_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "findings.json").write_text("[]")
    (run_dir / "report.html").write_text("<html></html>")
    finished = MLflowTracker()
    drive(finished, fake_ctx(run_dir))
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    artifacts = {a.path for a in client.list_artifacts(finished.run_id)}
    assert artifacts == {"findings.json", "report.html"}  # metrics.json was not there to log

    statuses = []
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        tracker = MLflowTracker()
        tracker.on_train_start(fake_ctx(run_dir))
        with pytest.raises(type(error)), aborted_on_error([tracker]):
            raise error
        statuses.append(client.get_run(tracker.run_id).info.status)
    assert statuses == ["FAILED", "KILLED"]


def test_make_trackers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_trackers(["jsonl"]) == []
    with pytest.raises(UserError, match="report_to"):
        make_trackers(["wandb"])
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real_find_spec(name, *a)
    )
    with pytest.raises(UserError, match=r"pip install 'tunesmith\[tracking\]'") as error:
        make_trackers(["jsonl", "mlflow"])
    assert "mlflow" in str(error.value)


@pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None or importlib.util.find_spec("tensorboard") is None,
    reason="tracking extras not installed",
)
def test_make_trackers_builds_each_once() -> None:
    trackers = make_trackers(["jsonl", "tensorboard", "mlflow", "tensorboard"])
    assert [type(t) for t in trackers] == [TensorBoardTracker, MLflowTracker]
