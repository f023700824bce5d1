"""Confident learning on the real MiniLM embeddings (slow: loads the pre-trained encoder)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from audit_synth import flagged, precision_recall
from typer.testing import CliRunner

from tunesmith.audit import run_audit
from tunesmith.audit.embeddings import minilm_embedder
from tunesmith.cli import app
from tunesmith.config.schema import AuditConfig

pytestmark = pytest.mark.slow

CUES = {
    "positive": ["great", "excellent", "wonderful", "helped", "love", "amazing", "relief", "best"],
    "negative": ["awful", "terrible", "worse", "pain", "hate", "useless", "nausea", "worst"],
}
FILLER = [
    "the",
    "drug",
    "i",
    "took",
    "it",
    "for",
    "weeks",
    "and",
    "was",
    "my",
    "doctor",
    "said",
    "after",
    "two",
    "days",
    "then",
    "at",
    "night",
]


def _reviews(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(list(CUES))
        words = rng.choices(FILLER, k=rng.randint(6, 12)) + rng.choices(CUES[label], k=3)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def test_flipped_labels_found_with_minilm_embeddings() -> None:
    from audit_synth import table

    rng = random.Random(40)
    rows = _reviews(400, 40)
    flipped = set(rng.sample(range(400), 40))
    rows = [
        (t, ("negative" if y == "positive" else "positive") if i in flipped else y)
        for i, (t, y) in enumerate(rows)
    ]
    report = run_audit(
        {"train": table("train", rows)}, AuditConfig(), embedder=minilm_embedder(max_length=64)
    )
    precision, recall = precision_recall(flagged(report.findings, "audit.label_errors"), flipped)
    # The check flags a row when its given label gets under 10% out-of-fold probability: it trades recall
    # for precision (on the real drug reviews its F1 is 1.3x cleanlab's, benchmarks/label_errors.py).
    assert precision >= 0.9 and recall >= 0.6, (precision, recall)


def test_doctor_command_with_label_errors(tmp_path: Path) -> None:
    rows = _reviews(200, 41)
    flipped = set(random.Random(41).sample(range(200), 20))
    for i in flipped:
        rows[i] = (rows[i][0], "negative" if rows[i][1] == "positive" else "positive")
    path = tmp_path / "train.tsv"
    path.write_text("review\trating\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    out = tmp_path / "audit.json"
    result = CliRunner().invoke(
        app, ["doctor", str(path), "--text", "review", "--label", "rating", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    audit = json.loads(out.read_text())
    assert "label_errors" in audit["stats"]["checks_run"]
    label_errors = [f for f in audit["findings"] if f["id"] == "audit.label_errors"]
    precision, recall = precision_recall(set(label_errors[0]["rows"]), flipped)
    assert precision >= 0.7 and recall >= 0.5, (precision, recall)
