"""What the doctor used to miss: texts without content, quotes an export wrapped around every text, and
near-copies of short texts (one word removed from a 12-word text), inside a split and across splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from audit_synth import clean_rows, flagged, table

from tunesmith.audit import run_audit
from tunesmith.audit.fixes import apply_fixes
from tunesmith.audit.text import is_empty
from tunesmith.config.schema import AuditConfig

CFG = AuditConfig(label_errors=False)
TWELVE = [
    "the tablets helped my back pain within two days and I slept well",
    "after a month my skin cleared up but my lips were very dry",
    "this shot made me tired every single morning so I stopped it",
    "no side effects at all and my blood pressure is finally normal",
]


def test_texts_without_letters_or_digits_are_empty() -> None:
    for text in ['""', "-", "...", "n/a", "'N/A'", " - ", "???", "null", "“”"]:
        assert is_empty(text), text
    for text in ["ok", "5", "no", "na na na na", "n/a for me, it did not work", "A"]:
        assert not is_empty(text), text
    rows = clean_rows(60, 3)
    for i, text in zip((4, 9, 15, 22), ['""', "-", "...", "n/a"], strict=True):
        rows[i] = (text, rows[i][1])
    findings = run_audit({"train": table("train", rows)}, CFG).findings
    assert flagged(findings, "audit.empty_texts") == {4, 9, 15, 22}
    f = next(f for f in findings if f.id == "audit.empty_texts")
    assert f.evidence["no_content"] == 4 and f.severity == "error"


def test_a_column_of_quoted_texts_is_an_export_artefact_with_a_fix(tmp_path: Path) -> None:
    rows = [(f'"{t}"', label) for t, label in clean_rows(40, 4)]
    train = table("train", rows)
    report = run_audit({"train": train}, CFG)
    f = next(f for f in report.findings if f.id == "audit.quoted_texts")
    assert (
        f.rows == list(range(40)) and "--fix-only quotes" in f.recommendation and f.evidence["quote"] == '"'
    )
    apply_fixes({"train": train}, report, {"quotes"}, tmp_path / "out")
    fixed = pd.read_csv(tmp_path / "out" / "train.tsv", sep="\t")
    assert fixed["review"].tolist() == [t for t, _ in clean_rows(40, 4)]
    # one unquoted text: not an export artefact
    rows[5] = ("plain text here", rows[5][1])
    assert "audit.quoted_texts" not in {
        f.id for f in run_audit({"train": table("train", rows)}, CFG).findings
    }


def _drop_word(text: str, k: int) -> str:
    words = text.split()
    return " ".join(words[:k] + words[k + 1 :])


def test_one_word_removed_from_a_twelve_word_text_is_still_found() -> None:
    rows = clean_rows(80, 5)
    planted = []
    for j, text in enumerate(TWELVE):
        rows[10 + j] = (text, rows[10 + j][1])
        rows[50 + j] = (_drop_word(text, 5), rows[10 + j][1])
        planted.append(50 + j)
    findings = run_audit({"train": table("train", rows)}, CFG).findings
    assert flagged(findings, "audit.near_duplicates") == set(planted)


def test_short_near_leakage_across_splits() -> None:
    train, test = clean_rows(80, 6), clean_rows(30, 7)
    for j, text in enumerate(TWELVE):
        train[20 + j] = (text, train[20 + j][1])
        test[j] = (_drop_word(text, 3 + j), train[20 + j][1])
    findings = run_audit({"train": table("train", train), "test": table("test", test)}, CFG).findings
    assert flagged(findings, "audit.near_leakage") == {20, 21, 22, 23}


def test_reordered_words_are_not_near_duplicates() -> None:
    rows = clean_rows(40, 8)
    rows[3] = (TWELVE[0], rows[3][1])
    rows[30] = (" ".join(reversed(TWELVE[0].split())), rows[30][1])
    assert not flagged(run_audit({"train": table("train", rows)}, CFG).findings, "audit.near_duplicates")
