"""prepare_data: label encoding, the seeded stratified validation split and its fallback."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.loaders import read_table
from tunesmith.data.prepare import (
    HELD_OUT,
    MISSING_GROUP,
    label_names,
    prepare_data,
    read_tables,
    split_validation,
)
from tunesmith.data.validate import empty_text_rows


def _write(path: Path, rows: list[tuple[str, str]], group: bool = False) -> str:
    header = "text,label,group\n" if group else "text,label\n"
    lines = [
        f"{t},{y},{'g' + str(i % 3) if i % 4 else ''}" if group else f"{t},{y}"
        for i, (t, y) in enumerate(rows)
    ]
    path.write_text(header + "\n".join(lines) + "\n")
    return str(path)


def _rows(counts: dict[str, int]) -> list[tuple[str, str]]:
    return [(f"text {label} {i}", label) for label, n in counts.items() for i in range(n)]


def test_label_names_sorted_and_ids_are_positions(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _rows({"pos": 10, "neg": 10, "neu": 10}))
    _, bundle = prepare_data(DataConfig(train=train))
    assert bundle.labels == ["neg", "neu", "pos"]
    assert bundle.label2id == {"neg": 0, "neu": 1, "pos": 2}
    assert bundle.notes["label_order"] == "alphabetical"


def test_integer_labels_sort_by_value() -> None:
    assert label_names(["10", "2", "0", "1"]) == ["0", "1", "2", "10"]
    assert label_names(["b", "10", "2"]) == ["10", "2", "b"]


def test_encoded_labels_match_texts(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _rows({"a": 20, "b": 20}))
    _, bundle = prepare_data(DataConfig(train=train))
    for split in (bundle.train, bundle.validation):
        for text, label, row in zip(split.texts, split.labels, split.rows, strict=True):
            assert text.split()[1] == bundle.labels[label]
            assert text.endswith(str(row if row < 20 else row - 20))


def test_stratified_split_proportions(tmp_path: Path) -> None:
    counts = {"pos": 300, "neg": 120, "neu": 40}
    train = _write(tmp_path / "train.csv", _rows(counts))
    _, bundle = prepare_data(DataConfig(train=train, validation_split=0.25, seed=7))
    val = Counter(bundle.labels[i] for i in bundle.validation.labels)
    assert len(bundle.validation) == 115 and len(bundle.train) == 345
    for label, n in counts.items():
        assert abs(val[label] - n * 0.25) <= 1
    assert bundle.validation.source == HELD_OUT
    assert bundle.notes["validation_stratified"] is True
    assert "stratified 25%" in str(bundle.notes["validation_note"])
    assert sorted(bundle.train.rows + bundle.validation.rows) == list(range(460))


def test_split_is_deterministic_per_seed(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _rows({"a": 50, "b": 30}))
    rows = [prepare_data(DataConfig(train=train, seed=s))[1].validation.rows for s in (1, 1, 2)]
    assert rows[0] == rows[1]
    assert rows[0] != rows[2]


def test_rare_class_falls_back_to_unstratified_split(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _rows({"a": 30, "b": 30, "c": 1}))
    _, bundle = prepare_data(DataConfig(train=train, seed=3))
    assert bundle.notes["validation_stratified"] is False
    assert "'c'" in str(bundle.notes["validation_fallback"])
    assert "unstratified" in str(bundle.notes["validation_note"])
    assert len(bundle.train) + len(bundle.validation) == 61
    json.dumps(bundle.notes)  # notes go into metrics.json


def test_too_small_holdout_falls_back() -> None:
    labels = [c for c in "abcdef" for _ in range(2)]  # 12 rows, 6 classes, 15% -> 2 held out < 6 classes
    train_idx, val_idx, notes = split_validation(labels, 0.15, seed=0)
    assert notes["validation_stratified"] is False and len(val_idx) == 2
    assert sorted([*train_idx, *val_idx]) == list(range(12))


def test_validation_and_test_files(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _rows({"a": 5, "b": 5}))
    val = _write(tmp_path / "val.csv", _rows({"a": 2, "b": 1}))
    test = _write(tmp_path / "test.csv", _rows({"b": 3}))
    tables, bundle = prepare_data(DataConfig(train=train, validation=val, test=test))
    assert set(tables) == {"train", "validation", "test"}
    assert len(bundle.train) == 10 and len(bundle.validation) == 3
    assert bundle.test is not None and bundle.test.labels == [1, 1, 1]
    assert bundle.validation.source == val and bundle.notes["validation_source"] == "file"


def test_groups_carried_and_missing_named(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _rows({"a": 10, "b": 10}), group=True)
    _, bundle = prepare_data(DataConfig(train=train, group="group"))
    groups = bundle.train.groups
    assert groups is not None and len(groups) == len(bundle.train)
    # each row keeps its own file row's group (row i: g{i % 3}, empty when i % 4 == 0), through the split
    expected = [f"g{r % 3}" if r % 4 else MISSING_GROUP for r in bundle.train.rows]
    assert groups == expected and {MISSING_GROUP, "g0", "g1", "g2"} <= set(groups)
    val_groups = bundle.validation.groups
    assert val_groups == [f"g{r % 3}" if r % 4 else MISSING_GROUP for r in bundle.validation.rows]


def test_doctor_can_read_tables_with_empty_texts(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\nfine,a\n,b\n  ,a\n")
    tables = read_tables(DataConfig(train=str(path)))
    assert empty_text_rows(tables["train"]) == [1, 2]
    assert empty_text_rows(read_table(str(path), "train", "text", "label")) == [1, 2]


@pytest.mark.parametrize("seed", [0, -5])
def test_negative_and_zero_seeds_work(tmp_path: Path, seed: int) -> None:
    train = _write(tmp_path / "train.csv", _rows({"a": 10, "b": 10}))
    assert len(prepare_data(DataConfig(train=train, seed=seed))[1].validation) == 3
