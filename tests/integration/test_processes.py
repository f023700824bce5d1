"""train.processes / --processes: more processes than this machine has devices is one line, exit 2, no run
directory; the Python API refuses several processes without a launcher; the launch command is Accelerate's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.errors import UserError
from tunesmith.launch import launch_command
from tunesmith.run import run


def test_more_processes_than_devices_is_refused(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict))
    too_many = str((os.cpu_count() or 1) + 1)
    for args in (["--processes", too_many], [f"train.processes={too_many}"]):
        result = CliRunner().invoke(app, ["run", str(recipe), *args])
        assert result.exit_code == 2, result.output
        assert "train.processes" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) <= 3  # one message (wrapped by the console)
    assert not (tmp_path / "runs").exists()


def test_several_processes_need_a_launcher(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe_dict["train"]["processes"] = 2
    with pytest.raises(UserError, match="train.processes"):
        run(recipe_from_dict(recipe_dict, "test"))
    assert not (tmp_path / "runs").exists()


def test_the_launch_is_accelerate_launch() -> None:
    command = launch_command(2, ["run", "r.yaml", "--quiet"])
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "2"
    assert command[-5:] == ["-m", "tunesmith", "run", "r.yaml", "--quiet"]
