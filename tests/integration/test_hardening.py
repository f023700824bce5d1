"""The worst values a user could give: each ends in one line naming the key or file, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.testing import make_tiny_bert

runner = CliRunner()


def _write(tmp_path: Path, recipe: dict[str, Any]) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def _fails_cleanly(args: list[str], *needles: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, f"{needle!r} not in {result.output!r}"
    return result.output


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["model.max_length=100000"], ["model.max_length", "100000", "512 positions", "at most 512"]),
        (["strategy.name=prompt-tuning", "model.max_length=500"], ["20 virtual tokens", "at most 492"]),
        (["strategy.name=lora", "strategy.target_modules=[qkv]"], ["strategy.target_modules", "qkv", "query"]),
        (["strategy.name=ia3", "strategy.feedforward_modules=[mlp]"], ["strategy.feedforward_modules", "mlp"]),
        (["strategy.name=adapter", "strategy.targets=[nothing]"], ["strategy.targets", "nothing"]),
        (["strategy.name=progressive", "strategy.initial=9"], ["strategy.initial", "2 transformer blocks", "at most 3"]),
        (["data.text=rating"], ["data.text", "data.label", "rating"]),
    ],
)  # fmt: skip
def test_model_dependent_options_fail_before_any_work(
    tmp_path: Path, recipe_dict: dict[str, Any], overrides: list[str], needles: list[str]
) -> None:
    recipe = _write(tmp_path, recipe_dict)
    for command in (["run"], ["lr-find"], ["tune"]):
        _fails_cleanly([*command, recipe, *overrides], *needles)
    assert not (tmp_path / "runs").exists(), "bad input must not leave a run directory"


def test_compare_checks_every_variant_before_training(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe = _write(tmp_path, recipe_dict)
    _fails_cleanly(["compare", recipe, "--variant", "train.lr=1e-3", "--variant", "model.max_length=4096"],
                   "model.max_length", "512")  # fmt: skip
    assert not (tmp_path / "runs").exists()


def test_a_model_without_a_classification_head_is_refused(
    tmp_path: Path, recipe_dict: dict[str, Any]
) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    vision = tmp_path / "vision"
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    CLIPVisionModel(config).save_pretrained(vision, safe_serialization=True)
    recipe_dict["model"]["name"] = str(vision)
    _fails_cleanly(["run", _write(tmp_path, recipe_dict)], "model.name", "sequence-classification head")
    assert not (tmp_path / "runs").exists()


def test_a_roberta_style_model_keeps_its_two_offset_positions(tmp_path: Path) -> None:
    from transformers import AutoConfig, RobertaConfig

    from tunesmith.models.checks import position_limit

    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert position_limit(AutoConfig.from_pretrained(make_tiny_bert(tmp_path / "bert"))) == 512


def test_the_audit_embedder_never_exceeds_the_encoder(tiny_model: Path) -> None:
    from tunesmith.audit.embeddings import minilm_embedder

    embed = minilm_embedder(max_length=100_000, model=str(tiny_model))
    vectors = embed(["word " * 3000, "short"])  # 3000 tokens: beyond the tiny BERT's 512 positions
    assert vectors.shape == (2, 32) and (abs(vectors).sum(axis=1) > 0).all()


def test_doctor_refuses_max_length_beyond_the_model_and_text_equal_to_label(
    tmp_path: Path, toy_files: dict[str, Path]
) -> None:
    train = str(toy_files["train"])
    out = tmp_path / "audit.json"
    _fails_cleanly(["doctor", train, "--text", "review", "--label", "rating", "--no-label-errors",
                    "--max-length", "9999", "--json", str(out)], "--max-length", "512")  # fmt: skip
    _fails_cleanly(["doctor", train, "--text", "rating", "--label", "rating", "--json", str(out)],
                   "--text", "--label")  # fmt: skip
    assert not out.exists()


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("bad", "needles"),
    [
        ({"review": {"body": "great relief"}, "rating": "positive"}, ["'review'", "data.text", "an object", "row 3"]),
        ({"review": ["great", "relief"], "rating": "positive"}, ["'review'", "a list", "row 3"]),
        ({"review": "great relief", "rating": ["positive"]}, ["'rating'", "data.label", "a list", "row 3"]),
        ({"review": "great relief", "rating": {"id": 1}}, ["'rating'", "an object", "row 3"]),
    ],
)  # fmt: skip
def test_non_scalar_texts_and_labels_are_refused_with_file_row_and_column(
    tmp_path: Path, recipe_dict: dict[str, Any], bad: dict[str, Any], needles: list[str]
) -> None:
    good = [{"review": f"fine okay {i}", "rating": ["positive", "negative"][i % 2]} for i in range(6)]
    train = _jsonl(tmp_path / "train.jsonl", good[:3] + [bad] + good[3:])
    recipe_dict["data"] = {"train": str(train), "text": "review", "label": "rating"}
    _fails_cleanly(["run", _write(tmp_path, recipe_dict)], "train.jsonl", *needles)
    _fails_cleanly(["doctor", str(train), "--text", "review", "--label", "rating", "--no-label-errors"],
                   "train.jsonl", *needles)  # fmt: skip
    assert not (tmp_path / "runs").exists()


def test_the_doctor_flags_a_text_column_that_gives_the_label_away(tmp_path: Path) -> None:
    from tunesmith.audit import run_audit
    from tunesmith.config.schema import AuditConfig
    from tunesmith.data.loaders import read_table

    stars = {"positive": ["4 stars", "5 stars"], "negative": ["1 star", "2 stars"], "neutral": ["3 stars"]}
    lines = ["review\trating\tcopy\tstars\tyear"]
    for i in range(120):
        label = ["positive", "negative", "neutral"][i % 3]
        lines.append(
            f"a review of drug {i} that {label[:3]}\t{label}\t{label}\t{stars[label][i % len(stars[label])]}\t{1990 + i % 30}"
        )
    path = tmp_path / "data.tsv"
    path.write_text("\n".join(lines) + "\n")

    def found(text: str) -> dict[str, str]:
        report = run_audit(
            {"train": read_table(str(path), "train", text, "rating")}, AuditConfig(label_errors=False)
        )
        return {f.id: f.severity for f in report.findings}

    assert found("copy")["audit.label_in_text"] == "error"  # the label under another column name
    assert found("stars")["audit.label_in_text"] == "error"  # a category that encodes the label
    assert "audit.label_in_text" not in found("review")  # real text: unique texts, no alarm
    assert "audit.numeric_texts" not in found("review")
    year = found("year")
    assert (
        year["audit.numeric_texts"] == "warning" and "audit.label_in_text" not in year
    )  # 30 years, mixed labels


def test_the_real_demo_data_raises_no_text_kind_alarm() -> None:
    from tunesmith.audit import run_audit
    from tunesmith.config.schema import AuditConfig
    from tunesmith.data.loaders import read_table

    for column in ("review", "condition", "drugName"):  # condition: few values, but not one label each
        table = read_table("builtin:drugreview/train", "train", column, "rating")
        ids = {f.id for f in run_audit({"train": table}, AuditConfig(label_errors=False)).findings}
        assert not ids & {"audit.label_in_text", "audit.numeric_texts"}, column


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("model.max_length=true", ["model.max_length", "not true/false"]),
        ("train.epochs=true", ["train.epochs", "not true/false"]),
        ("train.weight_decay=false", ["train.weight_decay", "not true/false"]),
        ("output.dir=/proc/tunesmith-nope", ["output.dir", "cannot create", "writable"]),
    ],
)
def test_worst_recipe_values(
    tmp_path: Path, recipe_dict: dict[str, Any], override: str, needles: list[str]
) -> None:
    _fails_cleanly(["run", _write(tmp_path, recipe_dict), override], *needles)
    assert not (tmp_path / "runs").exists()


def test_output_dir_under_a_file_is_refused(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    (tmp_path / "afile").write_text("x")
    recipe_dict["output"]["dir"] = str(tmp_path / "afile" / "runs")
    _fails_cleanly(["run", _write(tmp_path, recipe_dict)], "output.dir", "not a directory")
    assert (tmp_path / "afile").read_text() == "x"


def test_lr_find_arguments_are_checked_before_any_work(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    recipe = _write(tmp_path, recipe_dict)
    _fails_cleanly(["lr-find", recipe, "--steps", "1"], "lr-find", "`steps` must be at least 2")
    _fails_cleanly(["lr-find", recipe, "--end-lr", "nan"], "lr-find", "`start_lr` must be positive")
    _fails_cleanly(["lr-find", recipe, "--start-lr", "1", "--end-lr", "0.1"], "below `end_lr`")
    assert not (tmp_path / "runs").exists()


def test_export_to_a_file_is_refused(tmp_path: Path, recipe_dict: dict[str, Any]) -> None:
    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.run import run

    recipe_dict["train"]["epochs"] = 1
    result = run(recipe_from_dict(recipe_dict), quiet=True)
    target = tmp_path / "afile"
    target.write_text("mine")
    _fails_cleanly(["export", str(result.run_dir), "--out", str(target)], "--out", "is a file")
    _fails_cleanly(["export", str(result.run_dir), "--out", str(target / "sub")], "--out", "not a directory")
    assert target.read_text() == "mine"
