"""One test per bad-input case: a UserError on one line naming the file / row / column and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.loaders import read_table
from tunesmith.data.prepare import prepare_data
from tunesmith.errors import UserError


def _error(path: Path | str, text: str = "text", label: str = "label") -> str:
    with pytest.raises(UserError) as info:
        read_table(str(path), "train", text, label)
    message = str(info.value)
    assert "\n" not in message
    return message


def _prepare_error(**data: str) -> str:
    with pytest.raises(UserError) as info:
        prepare_data(DataConfig(**data))
    message = str(info.value)
    assert "\n" not in message
    return message


def _csv(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_missing_file(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text,label\na,b\n")
    message = _error(tmp_path / "trian.csv")
    assert "data.train" in message and "trian.csv" in message and "does not exist" in message
    assert "did you mean" in message and "train.csv" in message and "fix the path" in message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    message = _error(tmp_path)
    assert str(tmp_path) in message and "is a directory" in message and "set data.train" in message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files regardless of mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = _csv(tmp_path / "t.csv", "text,label\na,b\n")
    path.chmod(0)
    message = _error(path)
    assert "permission denied" in message and "chmod" in message


def test_unreadable_file_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _csv(tmp_path / "t.csv", "text,label\na,b\n")

    def deny(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", deny)
    message = _error(path)
    assert "t.csv" in message and "permission denied" in message and "chmod" in message


def test_empty_file(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path / "t.csv", ""))
    assert "t.csv" in message and "is empty" in message and "header row" in message


def test_header_only_file(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path / "t.csv", "text,label\n"))
    assert "t.csv" in message and "no data rows" in message and "add data rows" in message


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"text,label\nfine,a\n" + "caf\xe9,b\n".encode("latin-1"))
    message = _error(path)
    assert "t.csv" in message and "not valid UTF-8" in message
    assert "line 3" in message and "byte offset 21" in message and "0xe9" in message
    assert "re-save the file as UTF-8" in message


def test_malformed_csv_row(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path / "t.csv", "text,label\nfine,a\ntoo,many,fields\nok,b\n"))
    assert "t.csv line 3" in message and "expected 2 fields" in message and "saw 3" in message
    assert "quote fields" in message


def test_malformed_csv_row_too_few_fields(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path / "t.tsv", "text\tlabel\nfine\ta\nmissing-label\n"))
    assert "t.tsv line 3" in message and "expected 2 fields" in message and "saw 1" in message


def test_unclosed_quote_names_where_the_row_starts(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path / "t.csv", 'text,label\nfine,a\n"never closed,b\nok,c\nmore,d\n'))
    assert "line 3" in message and "not closed" in message


def test_malformed_jsonl_line(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path / "t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": }\n'))
    assert "t.jsonl line 2" in message and "not valid JSON" in message


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path / "t.jsonl", '{"text": "a", "label": "x"}\n["b", "y"]\n'))
    assert "line 2" in message and "not an object" in message


def test_broken_parquet(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path / "t.parquet", "this is not parquet"))
    assert "t.parquet" in message and "not a readable Parquet file" in message


def test_unknown_extension(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path / "t.xlsx", "whatever"))
    assert "t.xlsx" in message and "'.xlsx'" in message
    for ext in (".csv", ".tsv", ".jsonl", ".parquet"):
        assert ext in message


def test_unknown_builtin() -> None:
    message = _error("builtin:nope/train")
    assert "builtin:nope/train" in message and "builtin:drugreview/train" in message


def test_missing_column_with_did_you_mean(tmp_path: Path) -> None:
    path = _csv(tmp_path / "t.csv", "review,rating\nfine,a\n")
    message = _error(path, text="reviw", label="rating")
    assert "data.text" in message and "'reviw'" in message and "t.csv" in message
    assert "did you mean 'review'" in message and "'rating'" in message and "set data.text" in message


def test_missing_label_value_names_rows(tmp_path: Path) -> None:
    message = _error(_csv(tmp_path / "t.csv", "text,label\nfine,a\nno label,\nok,b\n"))
    assert "t.csv" in message and "row 1" in message and "no label in column 'label'" in message
    assert "fill in" in message


def _files(tmp_path: Path, train: str, **others: str) -> dict[str, str]:
    paths = {"train": _csv(tmp_path / "train.csv", train)}
    for name, body in others.items():
        paths[name] = _csv(tmp_path / f"{name}.csv", body)
    return {name: str(p) for name, p in paths.items()}


def test_empty_text(tmp_path: Path) -> None:
    files = _files(tmp_path, "text,label\nfine,a\n   ,b\nok,a\nalso fine,b\n")
    message = _prepare_error(**files)
    assert "data.train" in message and "train.csv" in message and "row 1" in message
    assert "column 'text'" in message and "empty or null" in message and "tunesmith doctor --fix" in message


def test_null_text(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    lines = ['{"t": "fine", "y": "a"}', '{"t": null, "y": "b"}', '{"t": "ok", "y": "a"}', '{"y": "b"}']
    path.write_text("\n".join([*lines, '{"t": "x", "y": "b"}']) + "\n")
    message = _prepare_error(train=str(path), text="t", label="y")
    assert "train.jsonl" in message and "2 of 5 rows" in message and "rows 1, 3" in message
    assert "column 't'" in message and "remove those rows" in message


def test_empty_text_in_test_file(tmp_path: Path) -> None:
    files = _files(tmp_path, "text,label\na,x\nb,y\nc,x\nd,y\n", test='text,label\n"",x\n')
    message = _prepare_error(**files)
    assert "data.test" in message and "test.csv" in message and "row 0" in message


def test_single_class_labels(tmp_path: Path) -> None:
    files = _files(tmp_path, "text,label\na,x\nb,x\nc,x\n")
    message = _prepare_error(**files)
    assert "train.csv" in message and "column 'label'" in message and "only one class ('x')" in message
    assert "data.label" in message


def test_unseen_label_in_validation(tmp_path: Path) -> None:
    files = _files(tmp_path, "text,label\na,pos\nb,neg\nc,pos\n", validation="text,label\nd,pos\ne,nuetral\n")
    message = _prepare_error(**files)
    assert "data.validation" in message and "validation.csv" in message and "'nuetral' in row 1" in message
    assert "never seen in training" in message and "fix their spelling" in message


def test_unseen_label_in_test(tmp_path: Path) -> None:
    files = _files(
        tmp_path, "text,label\na,pos\nb,neg\nc,pos\n", test="text,label\nd,pos\ne,mixed\nf,neg\ng,mixed\n"
    )
    message = _prepare_error(**files)
    assert "data.test" in message and "test.csv" in message and "'mixed' in rows 1, 3" in message


def test_unseen_label_did_you_mean(tmp_path: Path) -> None:
    files = _files(tmp_path, "text,label\na,positive\nb,negative\n", test="text,label\nd,Positive\n")
    assert "did you mean 'positive'" in _prepare_error(**files)
