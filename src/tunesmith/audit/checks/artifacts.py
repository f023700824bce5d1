"""Export artefacts: a text column whose every value is wrapped in literal quotes (`"great drug"`).

A CSV/TSV writer that quoted already-quoted strings leaves the quotes inside the value; every text then
starts and ends with the same two characters, which the model learns as noise and which hides empty texts
(a pair of quotes). Reported when at least QUOTED_SHARE of a split's non-blank texts are wrapped (all of them,
by default), with the repair `--fix-only quotes`.
"""

from __future__ import annotations

from tunesmith.audit.context import AuditContext, make_finding, pct, plural
from tunesmith.findings import Finding

QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"))
QUOTED_SHARE = 1.0
MIN_ROWS = 3


def wrapping(text: str) -> tuple[str, str] | None:
    stripped = text.strip()
    for left, right in QUOTES:
        if len(stripped) >= 2 and stripped.startswith(left) and stripped.endswith(right):
            return left, right
    return None


def unquote(text: str) -> str:
    """The text without one pair of wrapping quotes (and the whitespace inside them)."""
    pair = wrapping(text)
    return text.strip()[len(pair[0]) : -len(pair[1])].strip() if pair else text


def quoted_texts(ctx: AuditContext) -> list[Finding]:
    findings = []
    for split in ctx.splits:
        present = [i for i, t in enumerate(ctx.texts[split]) if t.strip()]
        wrapped = [i for i in present if wrapping(ctx.texts[split][i])]
        if len(present) < MIN_ROWS or len(wrapped) < QUOTED_SHARE * len(present):
            continue
        share = len(wrapped) / len(ctx.texts[split])
        findings.append(
            make_finding(
                "quoted_texts",
                "warning",
                f"every text in {split} is wrapped in literal quotes ({plural(len(wrapped), 'row')}, "
                f"{pct(share)}): an export artefact",
                {
                    "split": split,
                    "count": len(wrapped),
                    "share": round(share, 6),
                    "quote": wrapping(ctx.texts[split][wrapped[0]])[0],  # type: ignore[index]
                    "examples": ctx.examples(split, wrapped),
                },  # fmt: skip
                wrapped,
                "The quotes were written by the export, not by the authors: strip them at the source or "
                "with `--fix-only quotes` (repairs every row, other columns unchanged).",
            )
        )
    return findings
