"""Exact duplicates and conflicting labels: texts equal after NFKC, case folding and whitespace collapsing.

A repeated text with the same label is a duplicate (every copy after the first is flagged); a text that
carries more than one label is a conflict (every copy is flagged, as nothing says which label is right).
The two sets of rows never overlap.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from tunesmith.audit.context import AuditContext, by_share, make_finding, pct, plural
from tunesmith.findings import Finding


def _conflicted(keys: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mask of rows whose (non-empty) text appears with more than one label in the split."""
    codes = pd.factorize(labels)[0]
    frame = pd.DataFrame({"key": keys, "code": codes})
    spread = frame.groupby("key")["code"].transform("nunique").to_numpy()
    return (spread > 1) & (keys >= 0)


def exact_duplicates(ctx: AuditContext) -> list[Finding]:
    findings = []
    for split in ctx.splits:
        keys, labels = ctx.keys[split], ctx.labels[split]
        frame = pd.DataFrame({"key": keys, "label": labels})
        dup = frame.duplicated(["key", "label"]).to_numpy() & (keys >= 0) & ~_conflicted(keys, labels)
        rows = np.nonzero(dup)[0]
        if len(rows) == 0:
            continue
        share = len(rows) / len(keys)
        first = {int(k): int(np.argmax(keys == k)) for k in keys[rows[:5]]}
        evidence = {
            "split": split,
            "count": len(rows),
            "share": round(share, 6),
            "distinct_texts_repeated": int(pd.Series(keys[rows]).nunique()),
            "largest_repeat": int(pd.Series(keys[keys >= 0]).value_counts().iat[0]),
            "examples": ctx.examples(split, rows, duplicate_of=[first[int(keys[r])] for r in rows[:5]]),
        }
        findings.append(
            make_finding(
                "exact_duplicates",
                "warning" if share >= ctx.cfg.warn_share else "info",
                f"{plural(len(rows), 'exact duplicate row')} in {split} ({pct(share)})",
                evidence,
                rows.tolist(),
                "Drop the repeated copies and keep the first of each (`tunesmith doctor ... --fix OUT "
                "--fix-only exact_duplicates`); duplicates over-weight those texts in training and inflate "
                "scores when they are evaluated.",
            )
        )
    return findings


def conflicting_labels(ctx: AuditContext) -> list[Finding]:
    findings = []
    for split in ctx.splits:
        keys, labels = ctx.keys[split], ctx.labels[split]
        rows = np.nonzero(_conflicted(keys, labels))[0]
        if len(rows) == 0:
            continue
        share = len(rows) / len(keys)
        texts = pd.unique(keys[rows])
        examples = []
        for key in texts[:5]:
            where = np.nonzero(keys == key)[0]
            example = ctx.examples(split, where[:1])[0]
            example.update(rows=where.tolist()[:10], labels=dict(Counter(labels[where].tolist())))
            del example["label"]
            examples.append(example)
        evidence = {
            "split": split,
            "count": len(rows),
            "share": round(share, 6),
            "distinct_texts": len(texts),
            "examples": examples,
        }
        findings.append(
            make_finding(
                "conflicting_labels",
                by_share(share, ctx.cfg.error_share),
                f"{plural(len(texts), 'text')} in {split} carry conflicting labels ({plural(len(rows), 'row')})",
                evidence,
                rows.tolist(),
                "Decide the right label for each of these texts and correct the source file, or drop every "
                "copy (`--fix-only conflicting_labels`); the model cannot fit both labels and the noise "
                "caps the accuracy it can reach.",
            )
        )
    return findings
