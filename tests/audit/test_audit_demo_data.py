"""The doctor on the real packaged drug-review data reports what is really there (data-only checks)."""

from __future__ import annotations

import pytest

from tunesmith.audit import run_audit
from tunesmith.config.schema import AuditConfig
from tunesmith.data.demo import demo_table
from tunesmith.data.loaders import read_table


@pytest.fixture(scope="module")
def demo_report():  # type: ignore[no-untyped-def]
    tables = {
        name: read_table(f"builtin:drugreview/{name}", name, "review", "rating", "condition")
        for name in ("train", "test")
    }
    return tables, run_audit(tables, AuditConfig(label_errors=False))


def _one(report, finding_id: str, split: str = "train"):  # type: ignore[no-untyped-def]
    found = [f for f in report.findings if f.id == finding_id and f.evidence.get("split") == split]
    assert len(found) == 1, [f.title for f in report.findings]
    return found[0]


def test_html_entities_in_most_reviews(demo_report) -> None:  # type: ignore[no-untyped-def]
    tables, report = demo_report
    for split in ("train", "test"):
        finding = _one(report, "audit.html_entities", split)
        assert finding.evidence["share"] > 0.5 and finding.severity == "warning"
        assert "&#039;" in finding.evidence["entities"]
        raw = demo_table(split)["review"]
        assert finding.evidence["count"] == int(raw.str.contains(r"&#?\w+;").sum())


def test_a_review_in_both_train_and_test(demo_report) -> None:  # type: ignore[no-untyped-def]
    tables, report = demo_report
    finding = _one(report, "audit.leakage")
    assert finding.evidence["other_split"] == "test" and finding.evidence["other_count"] >= 1
    train_text = tables["train"].frame["text"].iat[finding.rows[0]]
    assert " ".join(train_text.split()).casefold() in {
        " ".join(t.split()).casefold() for t in tables["test"].frame["text"]
    }


def test_strong_class_imbalance_neutral_about_nine_percent(demo_report) -> None:  # type: ignore[no-untyped-def]
    _, report = demo_report
    finding = _one(report, "audit.class_imbalance")
    assert finding.severity == "warning"
    assert 0.07 <= finding.evidence["shares"]["neutral"] <= 0.11
    assert min(finding.evidence["shares"], key=finding.evidence["shares"].get) == "neutral"
    assert finding.config_patch == {"train.class_weights": True}


def test_garbled_condition_values(demo_report) -> None:  # type: ignore[no-untyped-def]
    _, report = demo_report
    finding = _one(report, "audit.group_values")
    values = {v["value"]: v["reason"] for v in finding.evidence["values"]}
    assert "Bipolar Disorde" in values and "disorder" in values["Bipolar Disorde"]
    assert finding.evidence["column"] == "condition" and finding.severity == "warning"
    raw = demo_table("train")["condition"]
    markup = set(raw[raw.str.contains("</span>", regex=False)].index)
    assert markup and markup <= set(finding.rows or [])  # "3</span> users found this comment helpful."
    # Ordinary condition names are not called garbled.
    flagged = set(raw.iloc[finding.rows or []])
    assert not flagged & {"Depression", "Birth Control", "Anxiety", "Pain", "Acne", "Plaque Psoriasis"}


def test_stats_describe_every_split(demo_report) -> None:  # type: ignore[no-untyped-def]
    tables, report = demo_report
    for name, table in tables.items():
        stats = report.stats["splits"][name]
        assert stats["rows"] == len(table.frame)
        assert sum(stats["labels"].values()) == len(table.frame)
    assert report.stats["checks_skipped"] == {
        "label_errors": "audit.label_errors is off",
        "embedding_outliers": "needs embeddings: turn on audit.label_errors or pass an embedder",
    }
