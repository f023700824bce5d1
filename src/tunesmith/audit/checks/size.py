"""Few examples per class: where fine-tuning a whole encoder has too little to learn from.

With a few dozen labelled rows per class, full fine-tuning of a 22M-parameter encoder mostly memorises;
SetFit (contrastive tuning of a sentence encoder on pairs, then a small head) is the method built for 8 to
64 examples per class, and zero-shot (similarity to label descriptions, no training) is the floor both should
beat (`benchmarks/few_shot.py` measures all of them on the same subsets). Info when every class has at most
FEW_SHOT rows in train (patch: strategy.name: setfit), or when a class is below audit.min_class_count.
"""

from __future__ import annotations

import pandas as pd

from tunesmith.audit.context import AuditContext, make_finding
from tunesmith.findings import Finding

FEW_SHOT = 32  # rows per class up to which setfit is the recommended start (it beat full at 8 and 16)


def few_examples(ctx: AuditContext) -> list[Finding]:
    if "train" not in ctx.tables:
        return []
    counts = pd.Series(ctx.labels["train"]).value_counts()
    if len(counts) < 2:
        return []
    small = {str(c): int(v) for c, v in counts.items() if v < ctx.cfg.min_class_count}
    every_class_small = int(counts.iat[0]) <= FEW_SHOT
    if not every_class_small and not small:
        return []
    evidence = {"split": "train", "counts": {str(c): int(v) for c, v in counts.items()},
                "few_shot_max": FEW_SHOT, "below_min_count": small}  # fmt: skip
    if every_class_small:
        title = f"few examples per class: {int(counts.iat[-1])} to {int(counts.iat[0])} training rows each"
        recommendation = (
            "Start with strategy.name: setfit (contrastive tuning of the sentence encoder on pairs, then a "
            "logistic head; made for 8-64 examples per class), and compare it with strategy.name: zero-shot "
            "(similarity to label descriptions, strategy.label_descriptions; no training), the floor any "
            "trained model must beat. Full fine-tuning mostly memorises this little data."
        )
        patch: dict[str, object] | None = {"strategy.name": "setfit"}
    else:
        title = (
            f"{len(small)} class(es) with under {ctx.cfg.min_class_count} training rows: {', '.join(small)}"
        )
        recommendation = (
            f"{', '.join(small)} can hardly be learnt from so few rows: collect more, or try strategy.name: "
            "setfit, which learns from pairs of examples, and strategy.name: zero-shot with a "
            "strategy.label_descriptions phrase for each label."
        )
        patch = None
    return [make_finding("few_examples", "info", title, evidence, None, recommendation, patch)]
