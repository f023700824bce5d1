"""Leakage between splits, exact (audit.leakage) and near (audit.near_leakage).

For each pair of splits in the order train, validation, test, the rows of the earlier split whose text
also occurs (exactly, or as a near-duplicate) in the later one are flagged: removing them from the earlier
split keeps the later split, the yardstick, unchanged. Severity follows the share of the later split that
is affected: error from audit.error_share, warning below.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from tunesmith.audit.checks.near_duplicates import first_positions
from tunesmith.audit.context import AuditContext, by_share, make_finding, pct, plural
from tunesmith.findings import Finding


def leakage(ctx: AuditContext) -> list[Finding]:
    findings = []
    n_keys = len(ctx.key_texts)
    for a, b in combinations(ctx.splits, 2):
        keys_a, keys_b = ctx.keys[a], ctx.keys[b]
        shared = np.intersect1d(keys_a[keys_a >= 0], keys_b[keys_b >= 0])
        if len(shared):
            findings.append(_finding(ctx, "leakage", a, b, shared, shared, n_keys, None))
        first_a, first_b = first_positions(keys_a, n_keys), first_positions(keys_b, n_keys)
        pairs = ctx.near
        ab = (first_a[pairs.left] >= 0) & (first_b[pairs.right] >= 0)
        ba = (first_b[pairs.left] >= 0) & (first_a[pairs.right] >= 0)
        side_a = np.concatenate([pairs.left[ab], pairs.right[ba]])
        side_b = np.concatenate([pairs.right[ab], pairs.left[ba]])
        # A text that is in both splits exactly is already reported above.
        keep = ~np.isin(side_a, shared) & ~np.isin(side_b, shared)
        if keep.any():
            sims = np.concatenate([pairs.similarity[ab], pairs.similarity[ba]])[keep]
            findings.append(_finding(ctx, "near_leakage", a, b, side_a[keep], side_b[keep], n_keys, sims))
    return findings


def _finding(
    ctx: AuditContext,
    check: str,
    a: str,
    b: str,
    keys_a: np.ndarray,
    keys_b: np.ndarray,
    n_keys: int,
    sims: np.ndarray | None,
) -> Finding:
    rows_a = np.nonzero(np.isin(ctx.keys[a], keys_a))[0]
    rows_b = np.nonzero(np.isin(ctx.keys[b], keys_b))[0]
    share = len(rows_b) / len(ctx.keys[b])
    first_a, first_b = first_positions(ctx.keys[a], n_keys), first_positions(ctx.keys[b], n_keys)
    pa, pb = first_a[keys_a], first_b[keys_b]
    disagree = int((ctx.labels[a][pa] != ctx.labels[b][pb]).sum())
    extra: dict[str, list] = {
        "other_row": [int(x) for x in pb[:5]],
        "other_label": [str(ctx.labels[b][x]) for x in pb[:5]],
    }
    if sims is not None:
        extra["other_text"] = [ctx.examples(b, [int(x)])[0]["text"] for x in pb[:5]]
        extra["similarity"] = [round(float(s), 3) for s in sims[:5]]
    evidence = {
        "split": a,
        "other_split": b,
        "count": len(rows_a),
        "other_count": len(rows_b),
        "other_share": round(share, 6),
        "pairs": len(keys_a),
        "labels_disagree": disagree,
        "examples": ctx.examples(a, pa[:5].tolist(), **extra),
    }
    if sims is not None:
        evidence["threshold"] = ctx.cfg.near_duplicate_threshold
    fix = "leakage" if sims is None else "near_leakage"
    return make_finding(
        check,
        by_share(share, ctx.cfg.error_share),
        f"{plural(len(rows_b), f'{b} row')} ({pct(share)}) also in {a}"
        + ("" if sims is None else f" as near-duplicates (similarity >= {ctx.cfg.near_duplicate_threshold})"),
        evidence,
        rows_a.tolist(),
        f"Remove the {plural(len(rows_a), f'overlapping {a} row')} (`--fix-only {fix}`) so {b} scores measure unseen "
        f"text, and make splits by source (user, product, document) rather than by row.",
    )
