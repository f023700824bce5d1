"""A text column that is not text: one that gives the label away, or one that holds only numbers.

`label_in_text` (error): the text determines the label exactly, the way a copy of the label column or a
category column (a star rating for a sentiment label) would. Real text never looks like this, so the
conditions are strict to avoid false alarms on clean data where every text simply has its one label:
  - every distinct (normalised) training text has a single label, and
  - the texts take few distinct values: at most max(2 x labels, 2% of rows), each seen twice on average.
A model trained on it scores perfectly and has learnt a lookup table of the label's own values.

`numeric_texts` (warning): every non-empty text of a split is a number (an id, a score, a year), which a
tokenizer reads as digits; usually data.text names the wrong column.
"""

from __future__ import annotations

import re

import numpy as np

from tunesmith.audit.context import AuditContext, make_finding, pct, plural
from tunesmith.data.types import TEXT
from tunesmith.findings import Finding

_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?%?")
_FEW_PER_LABEL = 2  # distinct texts per label, at most
_FEW_SHARE = 0.02  # or distinct texts as a share of rows, at most


def label_in_text(ctx: AuditContext) -> list[Finding]:
    keys, labels = ctx.keys["train"], ctx.labels["train"]
    present = keys >= 0
    keys, labels = keys[present], labels[present]
    n_labels = len(set(labels.tolist()))
    if n_labels < 2 or len(keys) < 4:
        return []
    pairs = {(int(k), str(v)) for k, v in zip(keys.tolist(), labels.tolist(), strict=True)}
    distinct = len({k for k, _ in pairs})
    one_label_each = len(pairs) == distinct
    few = distinct <= max(_FEW_PER_LABEL * n_labels, _FEW_SHARE * len(keys))
    repeated = len(keys) >= 2 * distinct
    if not (one_label_each and few and repeated):
        return []
    column = ctx.tables["train"].column(TEXT)
    mapping: dict[str, str] = {}
    for key, label in sorted(pairs, key=lambda p: p[1]):
        mapping.setdefault(str(ctx.key_texts[key])[:60], label)
        if len(mapping) >= 10:
            break
    same = float(
        np.mean([t.strip() == lab for t, lab in zip(ctx.texts["train"], ctx.labels["train"], strict=True)])
    )
    return [
        make_finding(
            "label_in_text",
            "error",
            f"the text column '{column}' determines the label: {plural(distinct, 'distinct text')} for "
            f"{plural(n_labels, 'label')}, each text always with the same label",
            {
                "split": "train",
                "column": column,
                "distinct_texts": distinct,
                "labels": n_labels,
                "rows": int(present.sum()),
                "text_equals_label_share": round(same, 6),
                "mapping": mapping,
            },
            None,
            f"data.text ('{column}') must name the column holding the input text, not the label or a "
            "category that encodes it: a model trained on this learns a lookup table and scores perfectly "
            "on it. Set data.text to the text column.",
        )  # fmt: skip
    ]


def numeric_texts(ctx: AuditContext) -> list[Finding]:
    findings = []
    for split in ctx.splits:
        texts = [t.strip() for t, empty in zip(ctx.texts[split], ctx.empty[split], strict=True) if not empty]
        if not texts or not all(_NUMBER.fullmatch(t) for t in texts):
            continue
        column = ctx.tables[split].column(TEXT)
        rows = np.nonzero(~ctx.empty[split])[0]
        findings.append(
            make_finding(
                "numeric_texts",
                "warning",
                f"the text column '{column}' in {split} holds only numbers ({plural(len(texts), 'text')})",
                {
                    "split": split,
                    "column": column,
                    "count": len(texts),
                    "share": 1.0,
                    "examples": ctx.examples(split, rows[:5]),
                },
                None,
                f"Check that data.text names the input text: '{column}' holds numbers only "
                f"({pct(1.0)} of its texts), which the model reads as digit tokens. If the numbers are the "
                "input, a tabular model may suit them better.",
            )  # fmt: skip
        )
    return findings
