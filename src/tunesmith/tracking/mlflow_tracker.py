"""MLflow: params (the flattened recipe), step and epoch metrics, final results and files in a local store.

The store is `sqlite:///RUN_DIR/mlflow.db` unless MLFLOW_TRACKING_URI says otherwise (`mlflow ui
--backend-store-uri sqlite:///RUN_DIR/mlflow.db` opens it). The run id is checkpointed so a resumed run
keeps logging into the same MLflow run. The final validation / test metrics (`test/macro_f1`...) and the
number of findings per severity are logged as metrics, findings.json, metrics.json and report.html as
artifacts; a run that raises is marked FAILED (KILLED when interrupted). `tunesmith evaluate` finds the run
by its `tunesmith.run_dir` tag and adds the suite's numbers (`evaluation/...`) and evaluation/*.json.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.findings import Finding
from tunesmith.tracking.common import (
    Tracker,
    evaluation_scalars,
    flatten,
    metric_name,
    recipe_dict,
    result_scalars,
    scalars,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from tunesmith.training.callbacks.base import TrainContext

EXPERIMENT = "tunesmith"
_PARAM_VALUE_LIMIT = 500  # the smallest limit across MLflow versions and backends
_TAG_VALUE_LIMIT = 5000  # MLflow's limit on a tag value
_ARTIFACTS = ("findings.json", "metrics.json", "report.html")
RUN_DIR_TAG = "tunesmith.run_dir"  # how `tunesmith evaluate` finds the MLflow run of a run directory
_BATCH = 900  # MLflow accepts at most 1000 metrics / 100 params per log_batch


class MLflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str = EXPERIMENT) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_id: str | None = None
        self._client: MlflowClient | None = None

    def on_train_start(self, ctx: TrainContext) -> None:
        if not ctx.accelerator.is_main_process:
            return
        from mlflow.tracking import MlflowClient

        run_dir = Path(ctx.extra["run_dir"])
        uri = (
            self.tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{run_dir.resolve()}/mlflow.db"
        )
        self.tracking_uri = uri
        client = MlflowClient(tracking_uri=uri)
        self._client = client
        if self.run_id is not None:  # resumed: keep logging into the same run
            client.update_run(self.run_id, status="RUNNING")
            return
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            # Keep artifacts beside the run instead of ./mlruns in whatever directory the user started from.
            artifacts = (run_dir.resolve() / "mlartifacts").as_uri()
            experiment_id = client.create_experiment(self.experiment, artifact_location=artifacts)
        else:
            experiment_id = experiment.experiment_id
        recipe = recipe_dict(ctx.recipe)
        run_name = str(recipe.get("output", {}).get("name") or run_dir.name)
        run = client.create_run(experiment_id, run_name=run_name, tags={RUN_DIR_TAG: str(run_dir.resolve())})
        self.run_id = run.info.run_id
        self._log_params(flatten(recipe))

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        assert self._client is not None and self.run_id is not None
        items = [Param(key, value[:_PARAM_VALUE_LIMIT]) for key, value in params.items()]
        for start in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[start : start + 100])

    def _log(self, kind: str, ctx: TrainContext, record: dict[str, Any]) -> None:
        if record:
            values = {metric_name(kind, k): v for k, v in scalars(record).items()}
            self._log_metrics(values, int(record.get("step", ctx.step)))

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        if self._client is None or self.run_id is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, step) for name, value in values.items()]
        for start in range(0, len(metrics), _BATCH):
            self._client.log_batch(self.run_id, metrics=metrics[start : start + _BATCH])

    def on_step_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        self._log("step", ctx, record)

    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        self._log("epoch", ctx, record)

    def log_results(self, run_dir: Path, metrics: dict[str, Any], findings: list[Finding], step: int) -> None:
        if self._client is None or self.run_id is None:
            return
        self._log_metrics(result_scalars(metrics, findings), step)
        ids = ", ".join(dict.fromkeys(f.id for f in findings)) or "none"
        self._client.set_tag(self.run_id, "tunesmith.findings", ids[:_TAG_VALUE_LIMIT])
        for name in _ARTIFACTS:
            if (run_dir / name).is_file():
                self._client.log_artifact(self.run_id, str(run_dir / name))
        self._finish("FINISHED")

    def log_evaluation(
        self, run_dir: Path, summary: dict[str, Any], findings: list[Finding], step: int
    ) -> None:
        from mlflow.tracking import MlflowClient

        uri = (
            self.tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{run_dir.resolve()}/mlflow.db"
        )
        self._client = MlflowClient(tracking_uri=uri)
        experiment = self._client.get_experiment_by_name(self.experiment)
        found = self._client.search_runs(
            [experiment.experiment_id], f"tags.`{RUN_DIR_TAG}` = '{run_dir.resolve()}'", max_results=1
        ) if experiment is not None else []  # fmt: skip
        if not found:  # trained without MLflow, or its store moved: nothing to add to
            self._client = None
            return
        self.run_id = found[0].info.run_id
        self._log_metrics(evaluation_scalars(summary), step)
        self._client.set_tag(self.run_id, "tunesmith.evaluation_findings",
                             (", ".join(dict.fromkeys(f.id for f in findings)) or "none")[:_TAG_VALUE_LIMIT])  # fmt: skip
        if (run_dir / "evaluation").is_dir():
            self._client.log_artifacts(self.run_id, str(run_dir / "evaluation"), artifact_path="evaluation")
        self._client = None

    def abort(self, error: BaseException) -> None:
        self._finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")

    def _finish(self, status: str) -> None:
        if self._client is not None and self.run_id is not None:
            self._client.set_terminated(self.run_id, status=status)
        self._client = None

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")
