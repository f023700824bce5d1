"""Empty, very short and truncated texts.

Empty texts are errors: missing, blank, or without content (no letter or digit, such as `""`, `-` or
`...`, or a placeholder such as `n/a`); training refuses the blank ones and learns nothing from the others. Very short texts (fewer than
audit.short_text_words words) are info. Texts longer than model.max_length tokens are truncated: warning
from audit.truncation_warn_share, info below; lengths come from the model's tokenizer when one is given
(special tokens included), else from whitespace words (a lower bound on sub-word tokens).
"""

from __future__ import annotations

import math

import numpy as np

from tunesmith.audit.context import AuditContext, make_finding, pct, plural
from tunesmith.findings import Finding

MAX_SUGGESTED_LENGTH = 512


def empty_texts(ctx: AuditContext) -> list[Finding]:
    findings = []
    for split in ctx.splits:
        rows = np.nonzero(ctx.empty[split])[0]
        if len(rows) == 0:
            continue
        missing = int(ctx.missing_text[split][rows].sum())
        blank = sum(1 for r in rows if not ctx.texts[split][r].strip()) - missing
        share = len(rows) / len(ctx.empty[split])
        findings.append(
            make_finding(
                "empty_texts",
                "error",
                f"{plural(len(rows), 'empty text')} in {split} ({pct(share)})",
                {
                    "split": split,
                    "count": len(rows),
                    "share": round(share, 6),
                    "missing": missing,
                    "whitespace_only": blank,
                    "no_content": len(rows) - missing - blank,
                    "examples": ctx.examples(split, rows),
                },
                rows.tolist(),
                "Fill in or drop these rows (`--fix-only empty_texts` drops them); a text without letters "
                "or digits (or a placeholder such as n/a) teaches nothing, and training refuses blank ones.",
            )  # fmt: skip
        )
    return findings


def short_texts(ctx: AuditContext) -> list[Finding]:
    findings = []
    limit = ctx.cfg.short_text_words
    for split in ctx.splits:
        words = np.fromiter((len(t.split()) for t in ctx.texts[split]), np.int64, len(ctx.texts[split]))
        rows = np.nonzero((words < limit) & ~ctx.empty[split])[0]
        if len(rows) == 0:
            continue
        share = len(rows) / len(words)
        findings.append(
            make_finding(
                "short_texts",
                "info",
                f"{plural(len(rows), 'very short text')} in {split} (< {limit} words, {pct(share)})",
                {
                    "split": split,
                    "count": len(rows),
                    "share": round(share, 6),
                    "min_words": limit,
                    "examples": ctx.examples(split, rows),
                },
                rows.tolist(),
                "Check that these are real inputs and not cut-off or placeholder values; a word or two often "
                "cannot carry the label.",
            )  # fmt: skip
        )
    return findings


def truncation(ctx: AuditContext) -> list[Finding]:
    findings = []
    limit = ctx.max_length
    method = "tokenizer" if ctx.tokenizer is not None else "whitespace words"
    for split in ctx.splits:
        lengths = ctx.token_lengths[split]
        rows = lengths.over(limit)
        if len(rows) == 0:
            continue
        share = len(rows) / len(lengths.counts)
        p95 = lengths.percentile(95)
        suggested = min(MAX_SUGGESTED_LENGTH, int(math.ceil(p95 / 32) * 32))
        patch = {"model.max_length": suggested} if suggested > limit else None
        evidence = {
            "split": split, "count": len(rows), "share": round(share, 6), "max_length": limit,
            "counted_with": method, "median": lengths.percentile(50), "p95": p95, "max": lengths.max,
            "quantiles_from_rows": len(lengths.sample),
            "examples": ctx.examples(split, rows, tokens=lengths.counts[rows[:5]].tolist()),
        }  # fmt: skip
        advice = (
            f"Raise model.max_length to {suggested} (covers 95% of texts; cost grows with length)"
            if patch
            else "Most texts fit; the few long ones lose their ends"
        )
        findings.append(
            make_finding(
                "truncation",
                "warning" if share >= ctx.cfg.truncation_warn_share else "info",
                f"{plural(len(rows), 'text')} in {split} longer than max_length {limit} ({pct(share)} truncated)",
                evidence,
                rows.tolist(),
                f"{advice}, or put the words that decide the label first.",
                patch,
            )
        )
    return findings
