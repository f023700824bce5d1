"""Label sets that differ between splits.

A label in validation/test that train never has is an error (the model cannot predict it and the run
refuses it); a training label missing from an evaluation split is a warning (its metrics are undefined).
"""

from __future__ import annotations

import numpy as np

from tunesmith.audit.context import AuditContext, make_finding, plural
from tunesmith.findings import Finding


def label_sets(ctx: AuditContext) -> list[Finding]:
    if "train" not in ctx.tables:
        return []
    train = set(ctx.labels["train"].tolist())
    findings = []
    for split in ctx.splits:
        if split == "train":
            continue
        labels = ctx.labels[split]
        present = set(labels.tolist())
        unseen, absent = sorted(present - train), sorted(train - present)
        if unseen:
            rows = np.nonzero(np.isin(labels, unseen))[0]
            findings.append(
                make_finding(
                    "label_sets",
                    "error",
                    f"{plural(len(unseen), 'label')} in {split} never seen in train: {', '.join(unseen[:5])}",
                    {
                        "split": split,
                        "unseen": unseen,
                        "count": len(rows),
                        "train_labels": sorted(train),
                        "examples": ctx.examples(split, rows),
                    },
                    rows.tolist(),
                    f"Fix the label spelling in {split} or add training examples of these classes; a model "
                    "trained on this train set can never predict them.",
                )  # fmt: skip
            )
        if absent:
            findings.append(
                make_finding(
                    "label_sets",
                    "warning",
                    f"{plural(len(absent), 'training label')} absent from {split}: {', '.join(absent[:5])}",
                    {"split": split, "absent": absent, "split_labels": sorted(present)},
                    None,
                    f"Add {split} examples of these classes (a stratified split keeps every class); their "
                    f"precision and recall cannot be measured on {split}.",
                )
            )
    return findings
