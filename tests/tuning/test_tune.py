"""`tunesmith tune`: the search spec of the issue, a study killed part-way that resumes without repeating
finished trials, best.yaml and tune.html, and bad search specs ending in one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config.loader import load_recipe

runner = CliRunner()
ISSUE_SPACE = {
    "train.lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True},
    "strategy.name": {"type": "categorical", "choices": ["frozen", "lora", "full"]},
}


def _write(tmp_path: Path, recipe: dict[str, Any]) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize(
    ("search", "needle"),
    [
        (
            {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-5}},
            "search.train.lr: low must be below high",
        ),
        ({"train.lrr": {"type": "float", "low": 1e-5, "high": 1e-3}}, "search.train.lrr"),
        ({"strategy.name": {"type": "categorical", "choices": ["lora", "nonsense"]}}, "search.strategy.name"),
        ({"train.epochs": {"type": "int", "low": 0, "high": 3}}, "search.train.epochs"),
        ({"train.lr": {"type": "float", "low": 0, "high": 1e-3, "log": True}}, "log: true needs low > 0"),
        ({"output.name": {"type": "categorical", "choices": ["a", "b"]}}, "search.output.name"),
        ({}, "no search: section"),
    ],
)
def test_bad_search_spec_is_one_line_and_exit_2(
    tmp_path: Path, recipe_dict: dict[str, Any], search: dict[str, Any], needle: str
) -> None:
    path = _write(tmp_path, {**recipe_dict, "search": search})
    result = runner.invoke(app, ["tune", str(path), "--trials", "2"])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1
    assert not (tmp_path / "runs" / "toy" / "trials").exists(), "nothing may run on a bad spec"


def _finished(storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name="toy", storage=storage)
    except Exception:  # not created yet, or the database is busy
        return []
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def test_killed_study_resumes_without_repeating_trials(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"]["epochs"] = 1
    recipe_dict["search"] = ISSUE_SPACE
    recipe_dict["tune"] = {"sampler": "random", "pruner": "none"}
    path = _write(tmp_path, recipe_dict)
    root = tmp_path / "runs" / "toy"
    storage = f"sqlite:///{root / 'study.db'}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "tune", str(path), "--trials", "3", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while len(_finished(storage)) < 2 and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)  # mid-way through the third trial: no clean-up at all
    worker.wait()
    before = {t.number: t for t in _finished(storage)}
    assert len(before) == 2, "the worker should have been killed after exactly two trials"
    stamps = {n: (root / "trials" / str(n) / "metrics.json").stat().st_mtime_ns for n in before}

    result = runner.invoke(app, ["tune", str(path), "--trials", "3", "--quiet"])
    assert result.exit_code == 0, result.output

    study = optuna.load_study(study_name="toy", storage=storage)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(complete) == 3, "the study resumes to 3 finished trials, not 3 more"
    for number, trial in before.items():  # finished trials are kept, never run again
        again = next(t for t in complete if t.number == number)
        assert again.value == trial.value and again.params == trial.params
        assert (root / "trials" / str(number) / "metrics.json").stat().st_mtime_ns == stamps[number]
    assert sum(1 for t in study.trials if t.state == TrialState.RUNNING) <= 1  # the one the kill interrupted
    for number in (t.number for t in complete):  # a finished trial keeps its model, not its checkpoints
        assert (root / "trials" / str(number) / "model").is_dir()
        assert not (root / "trials" / str(number) / "checkpoints").exists()
    summary = json.loads((root / "tune.json").read_text())
    best = summary["best"]
    assert best["value"] == max(t.value for t in complete if t.value is not None)
    recipe = load_recipe(root / "best.yaml")  # the best trial, runnable as a recipe
    assert recipe.train.lr == pytest.approx(best["params"]["train.lr"])
    assert recipe.strategy.name == best["params"]["strategy.name"] and not recipe.search
    page = (root / "tune.html").read_text()
    assert "Optimisation history" in page and "Plotly" in page and "https://" not in page.split("<script>")[0]


def test_median_pruning_stops_a_clearly_worse_trial_after_its_first_epoch(
    tmp_path: Path, recipe_dict: dict[str, Any]
) -> None:
    recipe_dict["search"] = {"train.lr": {"type": "categorical", "choices": [3e-3, 1e-9]}}
    recipe_dict["tune"] = {"sampler": "random", "pruner": "median", "startup_trials": 1, "warmup_epochs": 0}
    path = _write(tmp_path, recipe_dict)
    root = tmp_path / "runs" / "toy"
    storage = f"sqlite:///{root / 'study.db'}"
    root.mkdir(parents=True)
    study = optuna.create_study(study_name="toy", storage=storage, direction="maximize")
    study.enqueue_trial({"train.lr": 3e-3})  # a good run first, then one that cannot learn
    study.enqueue_trial({"train.lr": 1e-9})

    result = runner.invoke(app, ["tune", str(path), "--trials", "2", "--quiet"])
    assert result.exit_code == 0, result.output

    good, bad = optuna.load_study(study_name="toy", storage=storage).get_trials(deepcopy=False)
    assert good.state == TrialState.COMPLETE and sorted(good.intermediate_values) == [1, 2, 3]
    assert bad.state == TrialState.PRUNED and list(bad.intermediate_values) == [1]
    assert bad.intermediate_values[1] < good.intermediate_values[1]
    metrics = json.loads((root / "trials" / "1" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and "pruned by Optuna after epoch 1" in metrics["stop_reason"]
    assert json.loads((root / "tune.json").read_text())["counts"]["pruned"] == 1


def test_warmup_epochs_are_never_pruned() -> None:
    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.tuning.search import make_pruner

    recipe = recipe_from_dict({"data": {"train": "t.csv"}, "tune": {"startup_trials": 1, "warmup_epochs": 2}})
    study = optuna.create_study(direction="maximize", pruner=make_pruner(recipe))
    first = study.ask()
    for epoch in (1, 2, 3):
        first.report(0.9, epoch)
    study.tell(first, 0.9)
    worse = study.ask()
    pruned = []
    for epoch in (1, 2, 3):
        worse.report(0.1, epoch)
        pruned.append(worse.should_prune())
    assert pruned == [False, False, True]


def test_processes_share_one_study(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    """Two commands on one storage, as on two machines, one of them with a helper process (--workers 2)."""
    recipe_dict["train"]["epochs"] = 1
    recipe_dict["search"] = {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
    recipe_dict["tune"] = {"sampler": "random", "pruner": "none"}
    path = _write(tmp_path, recipe_dict)
    root = tmp_path / "runs" / "toy"
    command = [sys.executable, "-m", "tunesmith.cli", "tune", str(path), "--trials", "6", "--quiet"]
    processes = [
        subprocess.Popen(command + extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for extra in (["--workers", "2"], [])
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert not any("exited with an error" in output for output in outputs), outputs

    trials = optuna.load_study(study_name="toy", storage=f"sqlite:///{root / 'study.db'}").get_trials()
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert 6 <= len(trials) <= 8  # each of 3 workers may start one trial before it sees the sixth finish
    for t in trials:  # each trial its own run, none overwritten by another worker
        assert Path(t.user_attrs["run_dir"]) == root / "trials" / str(t.number)
        assert json.loads((root / "trials" / str(t.number) / "metrics.json").read_text())["epochs_run"] == 1
    assert len({t.user_attrs["worker"] for t in trials}) >= 2


def test_storage_retries_when_another_worker_is_creating_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers started together race to create the tables; the loser sees the winner's schema on retry."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    from tunesmith.errors import UserError
    from tunesmith.tuning import search

    real, calls = search.RDBStorage, []

    def racing(url: str, **kwargs: Any) -> Any:
        calls.append(url)
        if len(calls) == 1:
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE constraint failed"))
        return real(url, **kwargs)

    monkeypatch.setattr(search, "RDBStorage", racing)
    storage = search.make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert len(calls) == 2 and storage is not None

    def unreachable(url: str, **kwargs: Any) -> Any:
        calls.append(url)
        raise OperationalError("connect", {}, Exception("could not connect to server"))

    calls.clear()
    monkeypatch.setattr(search, "RDBStorage", unreachable)
    with pytest.raises(UserError, match="--storage: cannot open"):
        search.make_storage("postgresql://nobody@nowhere/db")
    assert len(calls) == 1  # a real failure is not retried
