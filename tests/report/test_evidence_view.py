"""Finding evidence rendered for people: example rows as a table, units, compact lists, no JSON."""

from __future__ import annotations

from tunesmith.report.evidence import evidence_view, number


def test_examples_become_a_table_and_numbers_carry_units() -> None:
    evidence = {
        "split": "train", "count": 1234, "share": 0.0625, "time_s": 12.34, "peak_memory_mb": 2048.0,
        "end_over_chance": 66.1, "given_to_suggested": {"positive -> negative": 3},
        "thresholds": [0.1, 0.2, 0.3] + [0.5] * 20,
        "examples": [{"row": 17, "text": "x" * 500, "label": "positive", "near_row": 4, "similarity": 0.91}],
    }  # fmt: skip
    html = str(evidence_view(evidence))
    assert '<table class="evidence-rows">' in html and "<th>other row</th>" in html
    assert "x" * 160 not in html and "…" in html  # text excerpt, not the whole text
    assert "6.25%" in html and "12.3 s" in html and "2,048 MB" in html and "66.1×" in html and "1,234" in html
    assert "(+11 more)" in html and "positive -&gt; negative: 3" in html
    assert "{" not in html and "[" not in html  # no JSON dumps
    assert number("median_update_ratio", 0.004) == "0.004"
