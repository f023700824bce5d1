"""read_table: every format loads, columns are mapped, labels are kept as strings."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tunesmith.data.loaders import read_table
from tunesmith.data.types import GROUP, LABEL, ROW, TEXT

ROWS = [
    {"review": "good stuff", "rating": "pos", "condition": "pain"},
    {"review": "bad, really", "rating": "neg", "condition": "acne"},
    {"review": 'said "meh"', "rating": "neu", "condition": "pain"},
]


def _write(path: Path) -> Path:
    frame = pd.DataFrame(ROWS)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif path.suffix in (".jsonl", ".json"):
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_each_format_loads_and_maps_columns(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"train{suffix}")
    table = read_table(str(path), "train", text="review", label="rating", group="condition")
    assert list(table.frame.columns) == [TEXT, LABEL, GROUP, ROW]
    assert table.frame[TEXT].tolist() == [r["review"] for r in ROWS]
    assert table.frame[LABEL].tolist() == ["pos", "neg", "neu"]
    assert table.frame[GROUP].tolist() == ["pain", "acne", "pain"]
    assert table.frame[ROW].tolist() == [0, 1, 2]
    assert table.name == "train" and table.path == str(path)
    assert table.columns == {TEXT: "review", LABEL: "rating", GROUP: "condition"}


def test_group_column_only_when_asked(tmp_path: Path) -> None:
    table = read_table(str(_write(tmp_path / "t.csv")), "train", text="review", label="rating")
    assert list(table.frame.columns) == [TEXT, LABEL, ROW]


def test_json_array_also_loads(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(ROWS, indent=2))
    assert len(read_table(str(path), "train", "review", "rating").frame) == 3


def test_numeric_labels_become_the_same_strings(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = [{"t": "a", "y": 1}, {"t": "b", "y": "1"}, {"t": "c", "y": 0}, {"t": "d", "y": 2.0}]
    path.write_text("\n".join(json.dumps(x) for x in lines))
    assert read_table(str(path), "train", "t", "y").frame[LABEL].tolist() == ["1", "1", "0", "2"]


def test_csv_labels_are_strings_and_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label\nhello,1\nworld, 1\nagain,NA\n")
    assert read_table(str(path), "train", "text", "label").frame[LABEL].tolist() == ["1", "1", "NA"]


def test_empty_and_null_texts_are_kept(tmp_path: Path) -> None:
    csv_path = tmp_path / "t.csv"
    csv_path.write_text('text,label\n"",a\n   ,b\nfine,a\n')
    frame = read_table(str(csv_path), "train", "text", "label").frame
    assert len(frame) == 3 and frame[TEXT].isna().tolist() == [True, False, False]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": null, "label": "a"}\n{"text": "", "label": "b"}\n')
    frame = read_table(str(jsonl), "train", "text", "label").frame
    assert frame[TEXT].isna().tolist() == [True, False]


def test_quoted_fields_with_newlines_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"line one\nline two",a\n\n"x, y",b\n')
    frame = read_table(str(path), "train", "text", "label").frame
    assert frame[TEXT].tolist() == ["line one\nline two", "x, y"]
    assert frame[ROW].tolist() == [0, 1]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("\ufefftext,label\ncafé,a\n".encode())
    frame = read_table(str(path), "train", "text", "label").frame
    assert frame[TEXT].tolist() == ["café"]


def test_builtin_demo_maps_like_a_file() -> None:
    table = read_table("builtin:drugreview/test", "test", "review", "rating", "condition")
    assert len(table.frame) == 379
    assert set(table.frame[LABEL]) == {"negative", "neutral", "positive"}
