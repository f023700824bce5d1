"""Encoding artefacts: HTML entities, mojibake and control characters (ftfy detects and repairs).

All three are warnings: the model reads "&#039;" or "Ã©" as tokens that carry no meaning, and a text
with them is not the text the model will meet in use. `repair` is the one repair the --fix option applies
(fix id "encoding"): ftfy with entity decoding on and every purely cosmetic change (quote uncurling,
width folding, ligatures, Unicode normalisation) off, so only broken text changes.
"""

from __future__ import annotations

from collections import Counter

import ftfy
from ftfy.badness import is_bad

from tunesmith.audit.context import AuditContext, make_finding, pct, plural
from tunesmith.audit.text import CONTROL, html_entities, shorten, suspect
from tunesmith.findings import Finding

_REPAIR = ftfy.TextFixerConfig(
    unescape_html=True, uncurl_quotes=False, fix_character_width=False, fix_latin_ligatures=False,
    fix_line_breaks=False, normalization=None, explain=False,
)  # fmt: skip
REPLACEMENT = "\ufffd"


def repair(text: str) -> str:
    return ftfy.fix_text(text, _REPAIR)


def has_mojibake(text: str) -> bool:
    """Text that ftfy judges garbled and can re-decode, or that holds U+FFFD (characters already lost)."""
    return REPLACEMENT in text or (is_bad(text) and ftfy.fix_encoding(text) != text)


def encoding(ctx: AuditContext) -> list[Finding]:
    findings = []
    for split in ctx.splits:
        texts = ctx.texts[split]
        entity_rows, mojibake_rows, control_rows = [], [], []
        entities: Counter[str] = Counter()
        for i, text in enumerate(texts):
            if not suspect(text):
                continue
            found = html_entities(text)
            if found:
                entity_rows.append(i)
                entities.update(found)
            if not text.isascii() and has_mojibake(text):
                mojibake_rows.append(i)
            if CONTROL.search(text):
                control_rows.append(i)
        n = len(texts)
        if entity_rows:
            common = dict(entities.most_common(8))
            findings.append(
                _finding(
                    ctx,
                    "html_entities",
                    split,
                    entity_rows,
                    n,
                    f"contain HTML entities (e.g. {', '.join(list(common)[:3])})",
                    {"entities": common},
                    "Decode the entities (`--fix-only encoding`, ftfy) or fix the export that escaped them; "
                    "the model would learn '&#039;' as words.",
                )  # fmt: skip
            )
        if mojibake_rows:
            lost = sum(1 for r in mojibake_rows if REPLACEMENT in texts[r])
            findings.append(
                _finding(
                    ctx,
                    "mojibake",
                    split,
                    mojibake_rows,
                    n,
                    "show mojibake (text decoded with the wrong encoding)",
                    {"unrepairable_replacement_chars": lost},
                    "Repair them (`--fix-only encoding` re-decodes with ftfy) and read the source as UTF-8; "
                    "texts with U+FFFD have lost characters for good and are best re-exported.",
                )  # fmt: skip
            )
        if control_rows:
            findings.append(
                _finding(
                    ctx,
                    "control_characters",
                    split,
                    control_rows,
                    n,
                    "contain control characters",
                    {"characters": _control_counts(texts, control_rows)},
                    "Strip them (`--fix-only encoding`); they are invisible, split words and often mark "
                    "a broken export.",
                )  # fmt: skip
            )
    return findings


def _control_counts(texts: list[str], rows: list[int]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for r in rows:
        counts.update(f"U+{ord(c):04X}" for c in CONTROL.findall(texts[r]))
    return dict(counts.most_common(8))


def _finding(
    ctx: AuditContext, check: str, split: str, rows: list[int], n: int, what: str, extra: dict, advice: str
) -> Finding:
    share = len(rows) / n
    examples = ctx.examples(split, rows, repaired=[shorten(repair(ctx.texts[split][r])) for r in rows[:5]])
    evidence = {"split": split, "count": len(rows), "share": round(share, 6), **extra, "examples": examples}
    title = f"{plural(len(rows), 'text')} in {split} ({pct(share)}) {what}"
    return make_finding(check, "warning", title, evidence, rows, advice)
