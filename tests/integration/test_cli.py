"""The real CLI: a run end to end, predict, config show, and bad input ending in one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tunesmith.cli import app

runner = CliRunner()


def _write(tmp_path: Path, recipe: dict[str, Any], name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    return path


def _fails_cleanly(args: list[str], *needles: str) -> str:
    result = runner.invoke(app, args)
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in output, f"{needle!r} not in {output!r}"
    return output


def test_console_script_runs_then_predicts(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"]["epochs"] = 1
    recipe = _write(tmp_path, recipe_dict)
    done = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "run", str(recipe), "--quiet"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "macro-F1" in done.stdout and "outputs:" in done.stdout
    run_dir = tmp_path / "runs" / "toy"
    texts = tmp_path / "texts.txt"
    texts.write_text("great relief best\nawful pain worst\n")
    result = runner.invoke(app, ["predict", str(run_dir), "okay fine", "--file", str(texts), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 3
    assert all(abs(sum(r["probs"].values()) - 1) < 1e-4 and r["label"] in r["probs"] for r in rows)
    # every run audits its data first, diagnoses itself and writes a self-contained report
    audit = json.loads((run_dir / "audit.json").read_text())
    assert "train" in audit["stats"]["splits"]
    findings = json.loads((run_dir / "findings.json").read_text())
    assert all({"id", "severity", "recommendation"} <= set(f) for f in findings)
    assert "<html" in (run_dir / "report.html").read_text()[:500].lower()
    assert "report:" in done.stdout


def test_audit_gate_error_stops_before_the_run_directory(
    tmp_path: Path, recipe_dict: dict[str, Any], toy_files: dict[str, Path]
) -> None:
    # plant leakage: the test file repeats half of the training texts
    train_lines = toy_files["train"].read_text().splitlines()
    toy_files["test"].write_text("\n".join(train_lines[:80]) + "\n")
    recipe_dict["audit"]["gate"] = "error"
    _fails_cleanly(["run", str(_write(tmp_path, recipe_dict)), "--quiet"], "leakage", "audit.gate=warn")
    assert not (tmp_path / "runs").exists()


def test_config_show_prints_defaults(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    result = runner.invoke(app, ["config", "show", str(_write(tmp_path, recipe_dict)), "train.lr=3e-4"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["train"]["lr"] == 3e-4 and shown["train"]["schedule"] == "linear"
    assert shown["strategy"]["name"] == "full"


def test_existing_run_needs_overwrite_or_resume(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"]["epochs"] = 1
    recipe = str(_write(tmp_path, recipe_dict))
    assert runner.invoke(app, ["run", recipe, "--quiet"]).exit_code == 0
    run_dir = tmp_path / "runs" / "toy"
    marker = run_dir / "mine.txt"
    marker.write_text("kept until --overwrite")
    before = (run_dir / "metrics.json").read_bytes()
    _fails_cleanly(["run", recipe, "--quiet"], "already holds a run", "--overwrite", "--resume")
    assert (
        marker.is_file() and (run_dir / "metrics.json").read_bytes() == before
    )  # the refusal touched nothing
    assert runner.invoke(app, ["run", recipe, "--quiet", "--overwrite"]).exit_code == 0
    assert not marker.exists() and (run_dir / "metrics.json").is_file()  # a fresh run replaced the old one


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("train.lr=-1", ["train.lr"]),
        ("train.epochs=0", ["train.epochs"]),
        ("train.batch_size=0", ["train.batch_size"]),
        ("train.ephocs=3", ["train.ephocs", "train.epochs"]),
    ],
)
def test_bad_recipe_values(
    tmp_path: Path, recipe_dict: dict[str, Any], override: str, needles: list[str]
) -> None:
    _fails_cleanly(["run", str(_write(tmp_path, recipe_dict)), override], *needles)
    assert not (tmp_path / "runs").exists(), "bad input must not leave a run directory"


def test_model_path_that_does_not_exist(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe_dict["model"]["name"] = str(tmp_path / "nope")
    _fails_cleanly(["run", str(_write(tmp_path, recipe_dict))], "model.name", "nope")
    assert not (tmp_path / "runs").exists()


def test_model_dir_without_safetensors(tmp_path: Path, recipe_dict: dict[str, Any], tiny_model: Path) -> None:
    pickled = tmp_path / "pickled-model"
    pickled.mkdir()
    (pickled / "config.json").write_text((tiny_model / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded, ever")
    recipe_dict["model"]["name"] = str(pickled)
    _fails_cleanly(["run", str(_write(tmp_path, recipe_dict))], "safetensors")
    assert not (tmp_path / "runs").exists()


def test_missing_data_file(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe_dict["data"]["train"] = str(tmp_path / "missing.tsv")
    _fails_cleanly(["run", str(_write(tmp_path, recipe_dict))], "missing.tsv")
    assert not (tmp_path / "runs").exists()


def test_output_name_cannot_escape(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe_dict["output"]["name"] = "../elsewhere"
    _fails_cleanly(["run", str(_write(tmp_path, recipe_dict))], "output.name", "plain directory name")
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "runs").exists()


def test_predict_errors(tmp_path: Path) -> None:
    _fails_cleanly(["predict", str(tmp_path), "some text"], "no trained model")
    _fails_cleanly(["predict", str(tmp_path), "--file", str(tmp_path / "absent.txt")], "absent.txt")


def test_a_full_disk_is_one_line_not_a_traceback(
    tmp_path: Path, recipe_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import tunesmith.run

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "runs/toy/checkpoints/.tmp-step-4")

    monkeypatch.setattr(tunesmith.run, "run", full)
    result = runner.invoke(app, ["run", str(_write(tmp_path, recipe_dict))])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: no space left on device" in result.output and "--resume" in result.output
