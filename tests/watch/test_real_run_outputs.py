"""One real tiny run with every tracker on: what history.jsonl holds, what TensorBoard and MLflow hold when
read back with their own readers, and what a browser shows of its report.html."""

from __future__ import annotations

import html
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from watch_runs import recipe, records, run_recipe

from conftest import toy_rows
from report_browser import inspect_report, needs_browser
from tunesmith.cli import app
from tunesmith.report import section_ids
from tunesmith.run import RunResult
from tunesmith.training.callbacks.base import Callback

LAYERS = ["embeddings", "block.0", "block.1", "head"]  # the tiny BERT: 2 transformer blocks
MONITOR_EVERY = 3


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> RunResult:
    tmp_path = tmp_path_factory.mktemp("real-run")
    config = recipe(
        tmp_path, tiny_model, toy_rows(120, seed=1), test_rows=toy_rows(40, seed=2), name="real", epochs=3,
        lr=1e-2, grad_clip=None, monitor_every=MONITOR_EVERY,
    )  # fmt: skip
    config["report_to"] = ["jsonl", "tensorboard", "mlflow"]
    return run_recipe(config)


def test_history_has_step_and_epoch_monitoring(real_run: RunResult) -> None:
    steps = records(real_run.run_dir, "step")
    assert [s["step"] for s in steps] == list(range(1, real_run.metrics["steps"] + 1))  # log_every 1
    for s in steps:
        assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= s.keys()
        assert math.isfinite(s["loss"]) and s["lr"] >= 0  # the linear schedule ends at 0
        norms = [s[f"grad_norm/{layer}"] for layer in LAYERS]
        assert all(n > 0 for n in norms)
        # No clipping (grad_clip null): the monitor supplies the global norm, the norm of the layer norms.
        assert s["grad_norm"] == pytest.approx(math.sqrt(sum(n * n for n in norms)), rel=1e-5)
    with_ratio = [s["step"] for s in steps if "update_ratio/head" in s]
    assert with_ratio == [s for s in range(1, len(steps) + 1) if s % MONITOR_EVERY == 0]
    for s in steps:
        if s["step"] in with_ratio:
            assert all(0 < s[f"update_ratio/{layer}"] < 1 for layer in LAYERS)

    epochs = records(real_run.run_dir, "epoch")
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    (start,) = records(real_run.run_dir, "start")  # eval.on_start: the validation before step 1
    assert start["step"] == 0 and math.isfinite(start["val_loss"]) and "train_loss" not in start
    for e in epochs:
        for key in ("train_loss", "train_accuracy", "train_macro_f1", "val_loss", "val_accuracy", "val_macro_f1",
                    "val_loss_se", "tokens_per_s", "time_s", "peak_memory_mb"):  # fmt: skip
            assert isinstance(e[key], float) and math.isfinite(e[key]), key
        assert e["tokens_per_s"] > 0 and e["peak_memory_mb"] > 0
    assert epochs[1]["val_loss_ref_epoch"] == 1 and epochs[1]["val_loss_paired_se"] > 0


def test_tensorboard_event_files_read_back(real_run: RunResult) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = real_run.run_dir / "tensorboard"
    assert list(log_dir.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(log_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "epoch/val_loss", "epoch/val_macro_f1"} <= tags
    assert {f"grad_norm/{layer}" for layer in LAYERS} | {f"update_ratio/{layer}" for layer in LAYERS} <= tags
    history = {s["step"]: s["loss"] for s in records(real_run.run_dir, "step")}
    logged = {e.step: e.value for e in events.Scalars("train/loss")}
    assert logged == pytest.approx(history, rel=1e-6)
    val = [e.value for e in events.Scalars("epoch/val_loss")]
    assert val == pytest.approx([e["val_loss"] for e in records(real_run.run_dir, "epoch")], rel=1e-6)
    assert "config/text_summary" in events.Tags()["tensors"]  # the recipe as text
    final = events.Scalars("test/macro_f1")
    assert [(e.step, e.value) for e in final] == [
        (real_run.metrics["steps"], pytest.approx(real_run.metrics["test"]["macro_f1"], rel=1e-6))
    ]


def test_mlflow_store_reads_back(real_run: RunResult) -> None:
    from mlflow.tracking import MlflowClient

    store = real_run.run_dir / "mlflow.db"
    assert store.is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("tunesmith")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "real"
    assert run.data.params["train.lr"] == "0.01" and run.data.params["train.monitor_every"] == str(
        MONITOR_EVERY
    )
    loss = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss"))
    history = [(s["step"], s["loss"]) for s in records(real_run.run_dir, "step")]
    assert [s for s, _ in loss] == [s for s, _ in history]
    assert [v for _, v in loss] == pytest.approx([v for _, v in history], rel=1e-6)
    epoch_f1 = [m.value for m in client.get_metric_history(run.info.run_id, "epoch/val_macro_f1")]
    assert epoch_f1 == pytest.approx([e["val_macro_f1"] for e in records(real_run.run_dir, "epoch")])
    assert client.get_metric_history(run.info.run_id, "grad_norm/block.0")
    for split in ("validation", "test"):
        for key in ("accuracy", "macro_f1", "loss"):
            assert run.data.metrics[f"{split}/{key}"] == pytest.approx(real_run.metrics[split][key], rel=1e-6)
    severities = [f.severity for f in real_run.findings]
    assert run.data.metrics["findings/warning"] == severities.count("warning")
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "findings.json",
        "metrics.json",
        "report.html",
    }


def test_a_failed_run_is_marked_failed_in_mlflow(tmp_path: Path, tiny_model: Path) -> None:
    from mlflow.tracking import MlflowClient

    class Boom(Callback):
        name = "boom"

        def on_epoch_end(self, ctx: Any, record: dict[str, Any]) -> None:
            raise RuntimeError("planted failure")

    config = recipe(tmp_path, tiny_model, toy_rows(60, seed=1), name="failing", epochs=2)
    config["report_to"] = ["mlflow"]
    with pytest.raises(RuntimeError, match="planted failure"):
        run_recipe(config, callbacks=[Boom()])
    store = tmp_path / "runs" / "failing" / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("tunesmith").experiment_id])
    assert run.info.status == "FAILED"


def test_findings_and_report_written_and_rewritten(real_run: RunResult, tmp_path: Path) -> None:
    run_dir = real_run.run_dir
    written = json.loads((run_dir / "findings.json").read_text())
    assert [f["id"] for f in written] == [f.id for f in real_run.findings]
    copy = shutil.copytree(run_dir, tmp_path / "copy", ignore=shutil.ignore_patterns("checkpoints", "model"))
    (copy / "report.html").unlink()
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"report: {copy / 'report.html'}"
    page = (copy / "report.html").read_text(encoding="utf-8")  # rebuilt from the copy's own files
    assert written and all(html.escape(f["title"]) in page for f in written)
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "RUN_DIR" in missing.output


EXPECTED_PLOTS = ["step-loss", "epoch-loss", "epoch-metrics", "lr", "grad-flow", "update-ratio", "grad-norm",
                  "confusion-validation", "confusion-test", "cartography"]  # fmt: skip


@needs_browser
def test_real_report_in_chromium(real_run: RunResult, tmp_path: Path) -> None:
    seen = inspect_report(real_run.run_dir / "report.html", screenshot=tmp_path / "report.png")
    ids = section_ids()  # the built-in sections and those registered by imported features (tuning, images)
    assert seen["sections"] == list(ids) and seen["sections"][0] == "verdict"
    assert seen["nav"] == [f"#{s}" for s in ids]
    assert sorted(seen["plots"]) == sorted(EXPECTED_PLOTS)
    for plot_id, drawn in seen["plots"].items():
        assert drawn["svg"] > 0 and drawn["traces"] > 0 and drawn["points"] > 0, (plot_id, drawn)
        assert drawn["marks"] > 0 and drawn["w"] > 100 and drawn["h"] > 100, (plot_id, drawn)
    assert seen["console"] == []
    assert seen["requests"] and all(url.startswith("file:") for url in seen["requests"]), seen["requests"]
    # The verdict leads with the findings the run wrote, each with its recommendation.
    assert seen["findings"] == [f.id for f in sorted(real_run.findings, key=_severity_rank)]
    texts = seen["texts"]
    assert "macro-F1" in texts["verdict"]
    assert "monitor_every: 3" in texts["config"]  # the resolved recipe, defaults included
    assert "Not run" not in texts["audit"]
    assert seen["plots"]["grad-flow"]["rows"] == LAYERS  # one heatmap row per layer, input to output
    assert seen["plots"]["update-ratio"]["rows"] == LAYERS
    assert "negative" in texts["per-class"] and "macro average" in texts["per-class"]
    assert "most confident first" in texts["errors"]
    shot = os.environ.get("TUNESMITH_SCREENSHOT")
    if shot:
        shutil.copy(tmp_path / "report.png", shot)


def _severity_rank(finding: Any) -> int:
    return -{"error": 2, "warning": 1, "info": 0}[finding.severity]


def test_logged_loss_is_the_mean_of_its_window(tmp_path: Path, tiny_model: Path) -> None:
    # 7 steps per epoch, logged at step 1 and then every 2: the first record of epoch 2 covers one step only.
    # It must be that step's loss, not half of it (a false "fell, then climbed back" for the diagnosis).
    config = recipe(
        tmp_path, tiny_model, toy_rows(120, seed=1), name="window", epochs=2, lr=1e-6, log_every=2
    )
    result = run_recipe(config)
    losses = [s["loss"] for s in records(result.run_dir, "step")]
    assert [s["step"] for s in records(result.run_dir, "step")] == [1, 2, 4, 6, 8, 10, 12, 14]
    assert all(0.9 < loss < 1.3 for loss in losses), losses  # ln 3 = 1.0986 at this learning rate
