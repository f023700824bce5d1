"""The recipe loader: the examples load, overrides work, and every bad input is one clear line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tunesmith.config import Recipe, apply_overrides, load_recipe, recipe_from_dict, recipe_to_yaml
from tunesmith.errors import UserError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MINIMAL = (EXAMPLES / "minimal.yaml").read_text()


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path | str, overrides: tuple[str, ...] = ()) -> list[str]:
    """The lines of the UserError that loading must raise."""
    with pytest.raises(UserError) as info:
        load_recipe(path, overrides)
    return str(info.value).splitlines()


def only_problem(path: Path | str, overrides: tuple[str, ...] = ()) -> str:
    lines = problems(path, overrides)
    assert len(lines) == 1, lines
    return lines[0]


# --- good recipes ----------------------------------------------------------------------------------------


def test_minimal_recipe_loads_with_stated_values_and_defaults() -> None:
    recipe = load_recipe(EXAMPLES / "minimal.yaml")
    assert recipe.model.name == "minilm"
    assert recipe.data.train == "data/train.tsv" and recipe.data.test == "data/test.tsv"
    assert (recipe.data.text, recipe.data.label, recipe.data.group) == ("review", "rating", "condition")
    assert (recipe.train.epochs, recipe.train.batch_size, recipe.train.lr) == (3, 16, 5e-5)
    assert (recipe.output.dir, recipe.output.name) == ("runs", "drug-reviews")
    # Everything not written takes the schema's default.
    assert recipe.task == "text-classification"
    assert recipe.data.validation is None and recipe.strategy.name == "full"
    assert recipe.train.schedule == "linear" and recipe.eval.metric == "macro_f1"


def test_full_example_recipe_loads_and_matches_the_minimal_one_where_they_overlap() -> None:
    full = load_recipe(EXAMPLES / "recipe.yaml")
    minimal = load_recipe(EXAMPLES / "minimal.yaml")
    assert full.data == minimal.data and full.train == minimal.train and full.output == minimal.output


@pytest.mark.parametrize("lr", ["5e-5", "5.0e-5", "5E-5", "0.00005"])
def test_learning_rate_in_every_float_spelling(tmp_path: Path, lr: str) -> None:
    # YAML 1.1 reads 5e-5 (no dot) as a string; the loader must read it as the float everyone means.
    path = write(tmp_path, f"data: {{train: t.csv}}\ntrain: {{lr: {lr}}}\n")
    assert load_recipe(path).train.lr == pytest.approx(5e-5)


def test_overrides_nested_null_list_and_shorthand(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    recipe = load_recipe(
        path,
        [
            "train.lr=1e-4",
            "train.early_stopping.patience=null",
            "report_to=[jsonl,tensorboard]",
            "model.max_length=128",  # reaches into `model: minilm`, a shorthand in the file
            "strategy=full",
            "output.name=variant",
        ],
    )
    assert recipe.train.lr == pytest.approx(1e-4)
    assert recipe.train.early_stopping.patience is None
    assert recipe.report_to == ["jsonl", "tensorboard"]
    assert (recipe.model.name, recipe.model.max_length) == ("minilm", 128)
    assert recipe.strategy.name == "full" and recipe.output.name == "variant"
    assert recipe.train.epochs == 3  # untouched keys keep the file's values


def test_model_override_with_the_shorthand(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("model: minilm", "model: {name: some/dir}"))
    assert load_recipe(path, ["model=minilm"]).model.name == "minilm"


def test_strategy_options_are_free_form(tmp_path: Path) -> None:
    recipe = load_recipe(
        write(tmp_path, MINIMAL), ["strategy.name=lora", "strategy.r=8", "strategy.alpha=5e-5"]
    )
    assert recipe.strategy.name == "lora"
    assert recipe.strategy.model_extra == {"r": 8, "alpha": 5e-5}


def test_apply_overrides_returns_a_copy() -> None:
    base = {"data": {"train": "t.csv"}, "train": {"lr": 1e-3}}
    variant = apply_overrides(base, ["train.lr=2e-5", "train.epochs=1"])
    assert variant["train"] == {"lr": 2e-5, "epochs": 1}
    assert base == {"data": {"train": "t.csv"}, "train": {"lr": 1e-3}}


def test_recipe_from_dict_validates_like_a_file() -> None:
    assert recipe_from_dict({"data": {"train": "t.csv"}}).data.train == "t.csv"
    with pytest.raises(UserError, match=r"^variant: train\.epochs: must be greater than 0 \(got 0\)$"):
        recipe_from_dict({"data": {"train": "t.csv"}, "train": {"epochs": 0}}, "variant")


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, MINIMAL), ["strategy.r=8", "report_to=[jsonl,mlflow]"])
    text = recipe_to_yaml(recipe)
    assert load_recipe(write(tmp_path, text, "resolved.yaml")) == recipe
    # All defaults are written, in schema order.
    assert "validation_split: 0.15" in text and "nan_policy: rollback" in text
    keys = [line.split(":")[0] for line in text.splitlines() if line and not line[0].isspace()]
    assert keys == [k for k in Recipe.model_fields if k in keys]


def test_duplicate_keys_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "data: {train: t.csv}\ntrain: {lr: 1.0e-4}\ntrain: {epochs: 2}\n")
    assert "key 'train' is written twice (first on line 2)" in only_problem(path)


# --- bad input: one line per problem, naming the file, the key and what is valid ------------------------


def test_unknown_key_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("epochs: 3", "ephocs: 3"))
    line = only_problem(path)
    assert line.startswith(f"{path}: unknown key 'train.ephocs'; did you mean 'train.epochs'?")
    assert "valid keys under train: batch_size, " in line


def test_unknown_key_in_the_wrong_section_points_to_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("lr: 5.0e-5", "lr: 5.0e-5, max_length: 128"))
    assert "unknown key 'train.max_length'; did you mean 'model.max_length'?" in only_problem(path)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    line = only_problem(write(tmp_path, MINIMAL + "trian: {epochs: 2}\n"))
    assert "unknown key 'trian'; did you mean 'train'?" in line
    assert "valid keys at the top level:" in line and "output" in line


def test_several_errors_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.replace("{epochs: 3, batch_size: 16, lr: 5.0e-5}", "{epochs: 0, batch_size: 0, lr: -1}"),
    )
    lines = problems(path)
    assert lines == [
        f"{path}: train.epochs: must be greater than 0 (got 0)",
        f"{path}: train.batch_size: must be greater than 0 (got 0)",
        f"{path}: train.lr: must be greater than 0.0 (got -1)",
    ]


def test_wrong_type_names_the_expected_type(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("batch_size: 16", "batch_size: sixteen"))
    assert (
        only_problem(path)
        == f"{path}: train.batch_size: must be a positive integer, or auto (the largest micro-batch that fits) (got 'sixteen')"
    )


def test_section_given_as_a_value(tmp_path: Path) -> None:
    line = only_problem(write(tmp_path, MINIMAL + "eval: 3\n"))
    assert re.search(
        r"eval: must be a mapping \(valid keys: batch_size, [^)]*\bmetric\b[^)]*\) \(got 3\)$", line
    ), line


def test_out_of_range_value_states_the_valid_range(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("group: condition}", "group: condition, validation_split: 0.95}"))
    assert only_problem(path) == (
        f"{path}: data.validation_split: must be greater than 0.0 and less than 0.9 (got 0.95)"
    )


def test_nullable_field_says_null_is_valid(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    line = only_problem(path, ("train.early_stopping.patience=-1",))
    assert line.endswith("train.early_stopping.patience: must be greater than 0 or null (got -1)")


def test_literal_lists_the_allowed_values(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("lr: 5.0e-5", "lr: 5.0e-5, schedule: cosin"))
    assert only_problem(path) == (
        f"{path}: train.schedule: must be one of: linear, cosine, one-cycle, constant (got 'cosin'); "
        "did you mean 'cosine'?"
    )


def test_literal_inside_a_list(tmp_path: Path) -> None:
    line = only_problem(write(tmp_path, MINIMAL + "report_to: [jsonl, wandb]\n"))
    assert line.endswith("report_to[1]: must be one of: jsonl, tensorboard, mlflow (got 'wandb')")


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("train: data/train.tsv, ", ""))
    line = only_problem(path)
    assert line.startswith(f"{path}: missing required key 'data.train' (training file: .csv, .tsv")


def test_missing_required_section(tmp_path: Path) -> None:
    path = write(tmp_path, "model: minilm\n")
    assert only_problem(path) == f"{path}: missing required key 'data' (a section with at least: train)"


def test_validator_message_is_kept(tmp_path: Path) -> None:
    line = only_problem(write(tmp_path, MINIMAL.replace("name: drug-reviews", "name: a/b")))
    assert "output.name: must be a plain directory name without '/'" in line and "(got 'a/b')" in line


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: t.csv\n  text: review: more\n")
    line = only_problem(path)
    assert line.startswith(f"{path}: YAML syntax error at line 3, column 15: mapping values are not allowed")


def test_unclosed_bracket_points_to_where_it_opened(tmp_path: Path) -> None:
    line = only_problem(write(tmp_path, "data: {train: t.csv\ntrain: {}\n"))
    assert "YAML syntax error" in line and "while parsing a flow mapping at line 1, column 7" in line


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert only_problem(path) == f"{path}: recipe file not found; check the path (see examples/recipe.yaml)."


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "is a directory" in only_problem(tmp_path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(b"data: {train: caf\xe9.csv}\n")
    assert only_problem(path).startswith(f"{path}: not UTF-8 text")


@pytest.mark.parametrize(("text", "got"), [("- a\n- b\n", 'got list ["a", "b"]'), ("", "got an empty file")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    line = only_problem(write(tmp_path, text))
    assert "the top level must be a mapping of sections (task, model, data," in line and line.endswith(got)


def test_bad_override_syntax(tmp_path: Path) -> None:
    line = only_problem(write(tmp_path, MINIMAL), ("train.lr",))
    assert line == "override 'train.lr': not key=value; write e.g. train.lr=1e-4 or model=minilm"


def test_unknown_override_key(tmp_path: Path) -> None:
    line = only_problem(write(tmp_path, MINIMAL), ("train.ephocs=5",))
    assert line.startswith(
        "override 'train.ephocs=5': unknown key 'train.ephocs'; did you mean 'train.epochs'?"
    )


def test_override_below_a_value(tmp_path: Path) -> None:
    line = only_problem(write(tmp_path, MINIMAL), ("train.lr.max=1",))
    assert (
        line == "override 'train.lr.max=1': 'train.lr' is a value, not a section; set it whole (train.lr=...)"
    )


def test_bad_override_value_is_blamed_on_the_override(tmp_path: Path) -> None:
    line = only_problem(write(tmp_path, MINIMAL), ("train.lr=-1e-4",))
    assert line == "override 'train.lr=-1e-4': train.lr: must be greater than 0.0 (got -0.0001)"


def test_override_and_file_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("epochs: 3", "epochs: 0"))
    lines = problems(path, ("nonsense", "eval.metrc=loss"))
    assert len(lines) == 3
    assert lines[0].startswith("override 'nonsense'")
    assert "did you mean 'eval.metric'?" in lines[1]
    assert lines[2] == f"{path}: train.epochs: must be greater than 0 (got 0)"


def test_apply_overrides_reports_every_bad_override() -> None:
    with pytest.raises(UserError) as info:
        apply_overrides({"data": {"train": "t.csv"}}, ["a", "tran.lr=1", "report_to=[x"])
    lines = str(info.value).splitlines()
    assert (
        len(lines) == 3
        and "unknown key 'tran'; did you mean 'train'?" in lines[1]
        and "not valid YAML" in lines[2]
    )


def test_bare_off_means_the_gate_setting_not_false(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("model: minilm\ndata: {train: t.tsv}\naudit: {gate: off}\n")
    assert load_recipe(path, []).audit.gate == "off"
    assert load_recipe(path, ["audit.gate=off"]).audit.gate == "off"
    assert "gate: 'off'" in recipe_to_yaml(load_recipe(path, []))
