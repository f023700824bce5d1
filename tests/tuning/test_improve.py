"""`tunesmith improve`: a planted too-low learning rate is fixed by the lr finding's patch (accepted only
because it is significantly better), the budget of trainings holds, and a rerun after a crash reuses
the finished runs and reaches the same decisions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.config.loader import recipe_from_dict
from tunesmith.tuning.compare_stats import UnitRun
from tunesmith.tuning.improve import Improver, Scored, best_model, improve, recipe_key, undecided_finding
from tunesmith.tuning.space import base_data


def _recipe(tmp_path: Path, recipe_dict: dict[str, Any]) -> Path:
    # 3.3e-3 is far too low for the tiny random BERT in 3 epochs: it predicts one class. The collapsed-
    # predictions / flat-loss findings propose train.lr 3x higher, where it learns the toy keywords.
    recipe_dict["train"].update(epochs=3, batch_size=8, lr=3.3e-3)
    recipe_dict["data"]["validation_split"] = 0.3
    recipe_dict["eval"]["suite"] = []
    recipe_dict["audit"]["gate"] = "off"  # its findings' patches are tried too; here only training's matter
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    return path


def _unit_dirs(root: Path) -> dict[str, float]:
    return {
        str(p.parent.relative_to(root)): p.stat().st_mtime for p in root.glob("runs/*/seed-*/metrics.json")
    }


def test_improve_accepts_the_lr_patch_within_budget_and_reuses_runs(
    tmp_path: Path, recipe_dict: dict[str, Any]
) -> None:
    path = _recipe(tmp_path, recipe_dict)
    args = ["improve", str(path), "--seeds", "1", "--budget", "2", "--rounds", "2", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    root = tmp_path / "runs" / "toy" / "improve"
    report = json.loads((root / "improve.json").read_text())
    assert len(report["chain"]) == 1
    accepted = report["chain"][0]
    assert set(accepted["patch"]) == {"train.lr"} and accepted["patch"]["train.lr"] > 3.3e-3
    assert {f["id"] for f in accepted["findings"]} & {"training.collapsed_predictions", "training.flat_loss"}
    assert accepted["gain"] > 0.1 and accepted["ci"][0] > 0 and accepted["p_holm"] < 0.05
    assert report["best"]["score"] > report["start"]["score"] + 0.1
    # the budget: the baseline and one variant, then no room for round 2
    assert report["trainings"] == 2 and len(_unit_dirs(root)) == 2
    for unit in root.glob("runs/*/seed-*"):  # finished units keep their model, not their checkpoints
        assert (unit / "model").is_dir() and not (unit / "checkpoints").exists()
    assert "budget" in report["stop_reason"] and len(report["rounds"]) == 1
    best = yaml.safe_load((root / "best.yaml").read_text())
    assert best["train"]["lr"] == accepted["patch"]["train.lr"]
    model = report["best"]["model"]  # the trained model handed over: the best recipe's only seed here
    assert model["seed"] == 42 and model["score"] == report["best"]["score"]
    assert Path(model["model_dir"]).is_dir() and str(Path(model["model_dir"]).parent).endswith(
        accepted["key"] + "/seed-42"
    )
    assert "bestmodel:" + model["model_dir"] in "".join(result.output.split())  # rich wraps long paths
    html = (root / "improve.html").read_text()
    assert "Accepted changes" in html and "training.collapsed_predictions" in html

    # A crash: the variant never finished and the outputs were not written. The rerun trains only it.
    before = _unit_dirs(root)
    shutil.rmtree(root / "runs" / accepted["key"])
    for name in ("improve.json", "improve.html", "best.yaml"):
        (root / name).unlink()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    again = json.loads((root / "improve.json").read_text())
    after = _unit_dirs(root)
    baseline = f"runs/{report['start']['key']}/seed-42"
    assert after[baseline] == before[baseline]  # reused, not retrained
    assert after[f"runs/{accepted['key']}/seed-42"] > before[baseline]
    assert again["chain"][0]["patch"] == accepted["patch"] and again["trainings"] == 2
    assert again["best"]["score"] == report["best"]["score"]


def test_improve_bad_input_is_one_line_exit_2(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    path = _recipe(tmp_path, recipe_dict)
    result = CliRunner().invoke(app, ["improve", str(path), "--seeds", "2", "--budget", "3"])
    assert result.exit_code == 2 and "--budget" in result.output and "Traceback" not in result.output
    # the audit gate stops the baseline: the test file repeats the training rows (leakage is an error)
    recipe_dict["data"]["test"] = recipe_dict["data"]["train"]
    recipe_dict["audit"]["gate"] = "error"
    path.write_text(yaml.safe_dump(recipe_dict))
    result = CliRunner().invoke(app, ["improve", str(path), "--seeds", "1", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "audit" in result.output.lower()
    assert not (tmp_path / "runs").exists()


def _write_findings(imp: Improver, key: str, per_seed: list[list[dict[str, Any]]]) -> None:
    for seed, found in zip(imp.seed_list, per_seed, strict=True):
        unit = imp.root / "runs" / key / f"seed-{seed}"
        unit.mkdir(parents=True, exist_ok=True)
        (unit / "findings.json").write_text(json.dumps(found))


def test_proposals_put_retried_runners_up_first_then_the_most_supported(
    tmp_path: Path, recipe_dict: dict[str, Any]
) -> None:
    imp = Improver(recipe_from_dict(recipe_dict, "recipe"), seeds=2)
    data = base_data(imp.base)
    key = recipe_key(data)
    lone = {"id": "training.a", "title": "A", "config_patch": {"train.weight_decay": 0.1}}
    both = {"id": "training.b", "title": "B", "config_patch": {"train.lr": 1e-3}}
    same = {"id": "training.c", "title": "C", "config_patch": {"train.lr": 1e-3}}  # the same recipe as B
    _write_findings(imp, key, [[lone, both], [same]])
    runner_up = {"patch": {"train.class_weights": True}, "findings": [{"id": "training.d", "title": "D"}]}
    carried_again = {"patch": {"train.lr": 1e-3}, "findings": [{"id": "training.e", "title": "E"}]}

    found = imp.proposals(data, Scored(key, []), tried=set(), carried=[runner_up])
    assert [c["patch"] for c in found] == [{"train.class_weights": True}, {"train.lr": 1e-3},
                                           {"train.weight_decay": 0.1}]  # fmt: skip
    assert found[0]["carried"] and not any(c.get("carried") for c in found[1:])
    assert [f["id"] for f in found[1]["findings"]] == ["training.b", "training.c"]  # two proposals, one run
    assert all("support" not in c for c in found)
    # a carried patch that makes an already-tried recipe is not run again; nor one equal to the baseline
    tried = {found[0]["key"]}
    again = imp.proposals(data, Scored(key, []), tried=tried, carried=[runner_up, carried_again])
    assert [c["patch"] for c in again] == [{"train.lr": 1e-3}, {"train.weight_decay": 0.1}]
    assert again[0]["carried"]
    assert {f["id"] for f in again[0]["findings"]} == {"training.e", "training.b", "training.c"}


def test_a_significant_runner_up_is_retried_on_top_of_the_accepted_change(
    tmp_path: Path, recipe_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy forward selection: two changes both help in round 1; the larger is accepted and the other is
    tried on top of it in round 2 (no finding proposes it again), where it is accepted too. Training is
    replaced by predictions whose accuracy the two changes set, so only the loop and its statistics run."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 400)
    draws = rng.random(400)

    def fake_train(imp: Improver, data: dict[str, Any]) -> Scored:
        accuracy = 0.45 + 0.25 * (data["train"]["lr"] == 1e-2) + 0.15 * bool(data["train"]["class_weights"])
        y_pred = np.where(draws < accuracy, y_true, (y_true + 1) % 3)
        key = recipe_key(data)
        first = not imp.trainings
        for seed in imp.seed_list:
            imp.trainings.add((key, seed))
        patches = [{"train.lr": 1e-2}, {"train.class_weights": True}] if first else []
        found = [{"id": f"training.p{i}", "title": f"P{i}", "config_patch": p} for i, p in enumerate(patches)]
        _write_findings(imp, key, [found])
        imp.num_classes = 3
        return Scored(key, [UnitRun("seed 42", float(np.mean(y_pred == y_true)), y_true, y_pred)])

    monkeypatch.setattr(Improver, "train", fake_train)
    recipe_dict["eval"]["metric"] = "accuracy"
    report = improve(recipe_from_dict(recipe_dict, "recipe"), seeds=1, rounds=3, budget=10)
    assert [c["patch"] for c in report["chain"]] == [{"train.lr": 1e-2}, {"train.class_weights": True}]
    assert [c["carried"] for c in report["chain"]] == [False, True]
    runner_up = report["rounds"][0]["candidates"][1]
    assert runner_up["status"] == "rejected" and "retried on top of it" in runner_up["reason"]
    assert report["best"]["patch"] == {"train.lr": 1e-2, "train.class_weights": True}
    assert report["best"]["score"] > report["chain"][0]["score"] > report["start"]["score"]
    assert report["trainings"] == 4 and "no finding proposed" in report["stop_reason"]
    html = (tmp_path / "runs" / "toy" / "improve" / "improve.html").read_text()
    assert "significant in round 1 too, retried: training.p1" in html


def test_best_model_is_the_final_recipes_seed_with_the_best_validation_score() -> None:
    per_seed = [{"seed": 42, "run_dir": "r/seed-42", "score": 0.41, "test_score": 0.45},
                {"seed": 43, "run_dir": "r/seed-43", "score": 0.47, "test_score": 0.40}]  # fmt: skip
    model = best_model(Scored("k", [], per_seed))
    assert model is not None and model["seed"] == 43 and model["model_dir"] == str(Path("r/seed-43/model"))
    assert model["test_score"] == 0.40  # reported as it is, never used to pick
    assert best_model(Scored("k", [])) is None
    assert Scored("k", [], per_seed).test == pytest.approx(0.425) and Scored("k", []).test is None


def test_a_gain_too_small_to_decide_names_the_validation_size_that_would(
    tmp_path: Path, recipe_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The only change gains a little on 200 validation examples, with its own noise: not significant. The
    stop says so with the evidence (gain, CI half-width) and the examples a decision would need, in
    improve.json, improve.html and the CLI."""
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 3, 200)

    def fake_train(imp: Improver, data: dict[str, Any]) -> Scored:
        patched = data["train"]["weight_decay"] == 0.1
        draws = np.random.default_rng(int(patched)).random(200)  # each recipe errs on its own examples
        y_pred = np.where(draws < (0.62 if patched else 0.6), y_true, (y_true + 1) % 3)
        key = recipe_key(data)
        for seed in imp.seed_list:
            imp.trainings.add((key, seed))
        found = [{"id": "training.p", "title": "P", "config_patch": {"train.weight_decay": 0.1}}]
        _write_findings(imp, key, [[] if patched else found])
        imp.num_classes, imp.examples = 3, len(y_true)
        return Scored(key, [UnitRun("seed 42", float(np.mean(y_pred == y_true)), y_true, y_pred)])

    monkeypatch.setattr(Improver, "train", fake_train)
    recipe_dict["eval"]["metric"] = "accuracy"
    recipe_dict["data"]["validation_split"] = 0.2  # 200 of 1000 rows
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    result = CliRunner().invoke(app, ["improve", str(path), "--seeds", "1", "--budget", "10", "--quiet"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "runs" / "toy" / "improve"
    report = json.loads((root / "improve.json").read_text())
    assert report["chain"] == [] and "no change was significantly better" in report["stop_reason"]
    gain = report["rounds"][0]["candidates"][0]["gain"]
    undecided = report["undecided"]
    evidence = undecided["evidence"]
    assert undecided["id"] == "improve.undecided" and evidence["patch"] == {"train.weight_decay": 0.1}
    assert 0 < gain == evidence["gain"] < evidence["half_width"]
    assert evidence["examples_needed"] == pytest.approx(200 * (evidence["half_width"] / gain) ** 2, abs=1)
    assert evidence["examples_needed"] > 500  # more than half of the 1000 rows: no split can decide it
    assert undecided["config_patch"] is None and "data.validation file" in undecided["recommendation"]
    assert 'data-finding="improve.undecided"' in (root / "improve.html").read_text()
    assert f"undecided: {undecided['title']}" in " ".join(result.output.split())


def test_undecided_proposes_a_validation_split_when_the_rows_hold_enough() -> None:
    candidates = [
        {"status": "rejected", "patch": {"train.lr": 1e-4}, "gain": 0.05, "ci": [-0.01, 0.11], "p_holm": 0.2},
        {
            "status": "rejected",
            "patch": {"train.epochs": 9},
            "gain": -0.01,
            "ci": [-0.07, 0.05],
            "p_holm": 1.0,
        },
        {"status": "skipped", "patch": {"model.dropout": 0.2}},
    ]
    finding = undecided_finding(candidates, 150, 2, 0.05, {"validation": None, "validation_split": 0.25})
    assert finding is not None and finding["evidence"]["patch"] == {"train.lr": 1e-4}
    # half-width 0.06 at 95%, x z(1 - 0.05 / 4) / z(0.975) = 1.1436 for Holm over the 2 tested changes:
    # 150 * (0.0686 / 0.05) ** 2 = 282.5
    assert finding["evidence"]["half_width"] == pytest.approx(0.0686, abs=1e-4)
    assert finding["evidence"]["examples_needed"] == 283
    assert finding["config_patch"] == {"data.validation_split": 0.48}  # 283 of the 600 rows
    with_file = undecided_finding(candidates, 150, 2, 0.05, {"validation": "v.csv", "validation_split": 0.15})
    assert with_file is not None and with_file["config_patch"] is None
    assert "needs about 283 validation examples" in with_file["recommendation"]
    assert "data.validation file of that size" in with_file["recommendation"]
    assert (
        undecided_finding(candidates[1:], 150, 2, 0.05, {"validation": None, "validation_split": 0.25})
        is None
    )
    # significant alone, not after Holm: the estimate never asks for fewer examples than there are
    wide = [{**candidates[0], "gain": 0.07}, candidates[1]]
    held = undecided_finding(wide, 150, 2, 0.05, {"validation": None, "validation_split": 0.25})
    assert held is not None and held["evidence"]["examples_needed"] == 151
