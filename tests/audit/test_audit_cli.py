"""`tunesmith doctor`: the audit in the terminal, audit.json, --fix with cleaned files and fixes.jsonl,
inputs never modified, and bad input ending in exit 2 with one line and nothing written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from audit_synth import clean_rows
from typer.testing import CliRunner

from tunesmith.cli import app

MOJIBAKE = "café".encode().decode("latin-1")  # cafÃ©


@pytest.fixture()
def dirty(tmp_path: Path) -> dict[str, Path]:
    """train.tsv / test.tsv with known defects at known rows (0-based data rows)."""
    train = clean_rows(120, 21)
    test = clean_rows(40, 22)
    train[10] = (train[3][0].upper(), train[3][1])  # exact duplicate of row 3
    train[20] = ("   ", train[20][1])  # empty
    train[30] = (train[30][0] + " it didn&#039;t help", train[30][1])  # HTML entity -> repaired
    train[40] = (MOJIBAKE + " " + train[40][0], train[40][1])  # mojibake -> repaired
    other = next(label for label in ("positive", "negative") if label != train[50][1])
    train[60] = (train[50][0], other)  # conflicting labels: rows 50 and 60
    test[5] = (train[70][0], train[70][1])  # leakage: train row 70 is in test
    paths = {}
    for name, rows in (("train", train), ("test", test)):
        frame = pd.DataFrame(
            {"id": range(len(rows)), "review": [t for t, _ in rows], "rating": [lb for _, lb in rows]}
        )
        paths[name] = tmp_path / f"{name}.tsv"
        frame.to_csv(paths[name], sep="\t", index=False)
    return paths


def _doctor(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        app, ["doctor", *args, "--text", "review", "--label", "rating", "--no-label-errors"]
    )


def _hashes(paths: dict[str, Path]) -> dict[str, str]:
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()}


def test_doctor_prints_findings_and_writes_audit_json(dirty: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = _doctor(str(dirty["train"]), "--test", str(dirty["test"]), "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "data audit of 160 rows" in result.output and "exact duplicate" in result.output
    audit = json.loads(out.read_text())
    ids = {f["id"] for f in audit["findings"]}
    assert {"audit.exact_duplicates", "audit.empty_texts", "audit.html_entities", "audit.mojibake",
            "audit.conflicting_labels", "audit.leakage"} <= ids  # fmt: skip
    assert audit["counts"]["error"] >= 1  # the empty text


def test_fix_writes_cleaned_files_and_every_change_with_its_reason(
    dirty: dict[str, Path], tmp_path: Path
) -> None:
    before = _hashes(dirty)
    out = tmp_path / "clean"
    result = _doctor(str(dirty["train"]), "--test", str(dirty["test"]), "--fix", str(out))
    assert result.exit_code == 0, result.output
    assert _hashes(dirty) == before  # inputs never modified
    assert sorted(p.name for p in out.iterdir()) == ["fixes.jsonl", "test.tsv", "train.tsv"]
    records = [json.loads(line) for line in (out / "fixes.jsonl").read_text().splitlines()]
    by_row = {(r["split"], r["row"]): r for r in records}
    assert {k: v["fix"] for k, v in by_row.items()} == {
        ("train", 10): "exact_duplicates", ("train", 20): "empty_texts", ("train", 30): "encoding",
        ("train", 40): "encoding", ("train", 50): "conflicting_labels", ("train", 60): "conflicting_labels",
        ("train", 70): "leakage",
    }  # fmt: skip
    assert all(r["reason"] for r in records)
    assert by_row[("train", 70)]["reason"] == "text also appears in test"
    assert by_row[("train", 30)]["after"].endswith("it didn't help")
    assert by_row[("train", 40)]["after"].startswith("café ")
    original = pd.read_csv(dirty["train"], sep="\t", keep_default_na=False)
    cleaned = pd.read_csv(out / "train.tsv", sep="\t", keep_default_na=False)
    removed = {r["row"] for r in records if r["action"] == "remove"}
    assert list(cleaned["id"]) == [i for i in original["id"] if i not in removed]  # all columns kept
    assert cleaned.loc[cleaned["id"] == 30, "review"].item() == by_row[("train", 30)]["after"]
    assert pd.read_csv(out / "test.tsv", sep="\t").shape == pd.read_csv(dirty["test"], sep="\t").shape


def test_fix_only_applies_the_chosen_fixes(dirty: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "clean"
    result = _doctor(str(dirty["train"]), "--fix", str(out), "--fix-only", "exact_duplicates,encoding")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "fixes.jsonl").read_text().splitlines()]
    assert {(r["row"], r["fix"], r["action"]) for r in records} == {
        (10, "exact_duplicates", "remove"), (30, "encoding", "repair"), (40, "encoding", "repair"),
    }  # fmt: skip
    assert len(pd.read_csv(out / "train.tsv", sep="\t")) == 119


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_file", "nope.tsv"),
        ("missing_column", "column 'rating'"),
        ("fix_dir_not_empty", "not empty"),
        ("unknown_fix", "unknown fix 'dedupe'"),
        ("fix_only_without_fix", "--fix-only"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    dirty: dict[str, Path], tmp_path: Path, case: str, message: str
) -> None:
    before = _hashes(dirty)
    fix_dir, json_out = tmp_path / "clean", tmp_path / "audit.json"
    args = [str(dirty["train"]), "--json", str(json_out), "--fix", str(fix_dir)]
    if case == "missing_file":
        args[0] = str(tmp_path / "nope.tsv")
    elif case == "missing_column":
        pd.read_csv(dirty["train"], sep="\t").rename(columns={"rating": "stars"}).to_csv(
            tmp_path / "other.tsv", sep="\t", index=False
        )
        args[0] = str(tmp_path / "other.tsv")
    elif case == "fix_dir_not_empty":
        fix_dir.mkdir()
        (fix_dir / "keep.txt").write_text("mine")
    elif case == "unknown_fix":
        args += ["--fix-only", "exact_duplicates,dedupe"]
    else:
        args = [str(dirty["train"]), "--json", str(json_out), "--fix-only", "encoding"]
    result = _doctor(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not json_out.exists()
    if case == "fix_dir_not_empty":
        assert [p.name for p in fix_dir.iterdir()] == ["keep.txt"]
    else:
        assert not fix_dir.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    assert _hashes(dirty) == before
