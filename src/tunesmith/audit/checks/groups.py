"""The group column: garbled values (warning), rare values (info), groups with a sharply different label
mix (info: a shortcut the model may learn, and slices whose scores will differ).

A value is garbled when it is missing, holds markup or HTML entities (e.g. "3</span> users found this
comment helpful."), has no letters (digits only), holds mojibake or control characters, or has a word that
never occurs in the texts while that word plus one letter does (a cut-off value: "Bipolar Disorde" where the
texts say "disorder"). A label-mix shift needs both a total-variation distance of at least
audit.group_shift_tv from the rest of train and a chi-square p-value below 0.01 after Bonferroni correction.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency

from tunesmith.audit.checks.encoding import has_mojibake
from tunesmith.audit.context import AuditContext, make_finding, pct, plural
from tunesmith.audit.text import CONTROL, HTML_ENTITY, MARKUP, words
from tunesmith.data.types import GROUP
from tunesmith.findings import Finding

VOCAB_ROWS = 200_000  # texts sampled for the vocabulary behind the cut-off-word test
MIN_SHIFT_ROWS = 20
_LETTER = re.compile(r"[^\W\d_]")
_EXTRA = string.ascii_lowercase


def groups(ctx: AuditContext) -> list[Finding]:
    if not ctx.has_group():
        return []
    values = ctx.groups
    counts = Counter(v for s in ctx.splits for v in values[s].tolist())
    garbled = _garbled_values([v for v in counts if isinstance(v, str)], _vocabulary(ctx))
    garbled.update({v: "missing" for v in counts if not isinstance(v, str)})  # None or NaN from pandas
    rare = {v for v, c in counts.items() if c < ctx.cfg.group_min_count and v not in garbled}
    column = ctx.tables[ctx.splits[0]].column(GROUP)
    findings = []
    for split in ctx.splits:
        vals = values[split]
        bad = np.nonzero([v in garbled for v in vals.tolist()])[0]
        if len(bad):
            findings.append(_garbled_finding(ctx, split, column, vals, bad, garbled))
        few = np.nonzero([v in rare for v in vals.tolist()])[0]
        if len(few):
            findings.append(_rare_finding(ctx, split, column, vals, few, counts))
    if "train" in ctx.tables:
        findings.extend(_shift(ctx, column, values["train"], set(garbled)))
    return findings


def _vocabulary(ctx: AuditContext) -> Counter[str]:
    vocab: Counter[str] = Counter()
    for split in ctx.splits:
        for text in ctx.normalized[split][:VOCAB_ROWS]:
            vocab.update(words(text))
    return vocab


def _garbled_values(values: list[str], vocab: Counter[str]) -> dict[Any, str]:
    reasons: dict[Any, str] = {}
    for value in values:
        reason = _reason(value, vocab)
        if reason:
            reasons[value] = reason
    return reasons


def _reason(value: str, vocab: Counter[str]) -> str | None:
    if MARKUP.search(value) or HTML_ENTITY.search(value):
        return "holds markup"
    if not _LETTER.search(value):
        return "has no letters"
    if CONTROL.search(value) or (not value.isascii() and has_mojibake(value)):
        return "holds mojibake or control characters"
    for word in words(value.casefold()):
        if len(word) < 4 or not word.isalpha() or vocab[word]:
            continue
        # One letter more at either end (never a plural "s": "plaque" is not a cut-off "plaques").
        longer = [w for c in _EXTRA for w in (word + c, c + word) if vocab[w] >= 3 and w != word + "s"]
        if longer:
            best = max(longer, key=lambda w: vocab[w])
            return f"'{word}' looks cut short of '{best}' ({vocab[best]} times in the texts)"
    return None


def _garbled_finding(
    ctx: AuditContext, split: str, column: str, vals: np.ndarray, rows: np.ndarray, reasons: dict[Any, str]
) -> Finding:
    in_split = Counter(vals[rows].tolist())
    listed = [{"value": v, "rows": c, "reason": reasons[v]} for v, c in in_split.most_common(10)]
    share = len(rows) / len(vals)
    return make_finding(
        "group_values",
        "warning",
        f"{plural(len(in_split), f'garbled {column} value')} in {split} ({plural(len(rows), 'row')}, {pct(share)})",
        {"split": split, "column": column, "count": len(rows), "share": round(share, 6),
         "distinct_values": len(in_split), "values": listed,
         "examples": ctx.examples(split, rows, group=[vals[r] for r in rows[:5]])},
        rows.tolist(),
        f"Clean the {column} column at the source (restore cut-off names, drop markup); slice metrics by "
        f"{column} are only as good as its values.",
    )  # fmt: skip


def _rare_finding(
    ctx: AuditContext, split: str, column: str, vals: np.ndarray, rows: np.ndarray, counts: Counter
) -> Finding:
    distinct = sorted(set(vals[rows].tolist()), key=lambda v: (counts[v], v))
    return make_finding(
        "rare_groups",
        "info",
        f"{plural(len(distinct), f'{column} value')} in {split} with fewer than {ctx.cfg.group_min_count} rows",
        {"split": split, "column": column, "count": len(rows), "distinct_values": len(distinct),
         "min_count": ctx.cfg.group_min_count, "values": distinct[:20]},
        rows.tolist(),
        f"Merge rare {column} values into broader ones or an 'other' value; per-group scores on a handful of "
        "rows are noise.",
    )  # fmt: skip


def _shift(ctx: AuditContext, column: str, vals: np.ndarray, skip: set) -> list[Finding]:
    frame = pd.DataFrame({"group": vals, "label": ctx.labels["train"]}).dropna()
    table = pd.crosstab(frame["group"], frame["label"])
    table = table[
        (table.sum(axis=1) >= max(MIN_SHIFT_ROWS, ctx.cfg.group_min_count)) & ~table.index.isin(skip)
    ]
    total = pd.crosstab(frame["group"], frame["label"]).sum(axis=0)
    if len(table) < 2 or total.size < 2:
        return []
    shifted = []
    for group, row in table.iterrows():
        rest = total - row
        if rest.sum() == 0:
            continue
        keep = (row + rest) > 0
        p_value = float(chi2_contingency(np.vstack([row[keep], rest[keep]]))[1]) * len(table)
        tv = 0.5 * float(np.abs(row / row.sum() - rest / rest.sum()).sum())
        if tv >= ctx.cfg.group_shift_tv and p_value < 0.01:
            shifted.append({"group": group, "rows": int(row.sum()), "tv": round(tv, 3), "p_value": min(1.0, p_value),
                            "label_shares": (row / row.sum()).round(3).to_dict(),
                            "rest_shares": (rest / rest.sum()).round(3).to_dict()})  # fmt: skip
    if not shifted:
        return []
    shifted.sort(key=lambda g: -g["tv"])
    names = ", ".join(str(g["group"]) for g in shifted[:3])
    return [
        make_finding(
            "group_label_shift",
            "info",
            f"{plural(len(shifted), f'{column} value')} in train with a sharply different label mix ({names})",
            {
                "split": "train",
                "column": column,
                "groups": shifted,
                "tested_groups": len(table),
                "overall_shares": (total / total.sum()).round(3).to_dict(),
                "test": "chi-square, Bonferroni",
            },
            None,
            f"Expect the model to lean on {column}-specific words; compare per-{column} scores in the report "
            f"and keep every {column} in validation and test.",
        )  # fmt: skip
    ]
