"""Clean synthetic data for the doctor's tests, and helpers to plant defects into it.

Texts are 14-24 words drawn from 3,000 pseudo-words, so two independent texts share (almost) no word pair
and no planted defect can be matched by chance; each label has its own cue words, so the classes are
separable by a bag-of-words model.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import numpy as np
import pandas as pd

from tunesmith.data.types import GROUP, LABEL, ROW, TEXT, Table

LABELS = ("positive", "negative", "neutral")
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
CUES = {
    "positive": ["great", "excellent", "wonderful", "helped", "love", "amazing", "relief", "best"],
    "negative": ["awful", "terrible", "worse", "pain", "hate", "useless", "nausea", "worst"],
    "neutral": ["okay", "average", "fine", "moderate", "unsure", "mixed", "some", "maybe"],
}


def vocabulary(size: int = 3000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))))
    return sorted(words)


_VOCAB = vocabulary()


def clean_rows(n: int, seed: int, shares: tuple[float, ...] = (0.4, 0.35, 0.25)) -> list[tuple[str, str]]:
    """(text, label) rows with distinct texts; labels follow `shares` in LABELS order."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choices(LABELS, weights=shares)[0]
        words = rng.choices(_VOCAB, k=rng.randint(12, 20)) + rng.choices(CUES[label], k=rng.randint(2, 4))
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def table(name: str, rows: Iterable[tuple[str | None, str]], groups: list[str | None] | None = None) -> Table:
    rows = list(rows)
    frame = pd.DataFrame({TEXT: [t for t, _ in rows], LABEL: [label for _, label in rows]})
    if groups is not None:
        frame[GROUP] = groups
    frame[ROW] = np.arange(len(rows), dtype=np.int64)
    return Table(name, f"synthetic:{name}", frame, {TEXT: "review", LABEL: "rating", GROUP: "condition"})


def flagged(findings: list, finding_id: str, split: str = "train") -> set[int]:
    """Rows of all findings with this id in this split."""
    rows: set[int] = set()
    for finding in findings:
        if finding.id == finding_id and finding.evidence.get("split") == split:
            rows.update(finding.rows or [])
    return rows


def precision_recall(found: set[int], planted: set[int]) -> tuple[float, float]:
    hits = len(found & planted)
    return hits / max(1, len(found)), hits / max(1, len(planted))
