"""Outliers by length and by embedding distance (both info: unusual is not wrong, but worth a look).

Length: robust z-score of log character length against train (median and MAD), both tails. Embedding:
mean cosine-space distance to the k nearest neighbours among the embedded sample, robust z-score, far tail.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.neighbors import NearestNeighbors

from tunesmith.audit.context import AuditContext, make_finding, pct, plural
from tunesmith.findings import Finding

NEIGHBOURS = 10
MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation


def _robust_scale(values: np.ndarray) -> tuple[float, float]:
    median = float(np.median(values))
    return median, MAD_TO_SD * float(np.median(np.abs(values - median)))


def length_outliers(ctx: AuditContext) -> list[Finding]:
    reference = "train" if "train" in ctx.tables else ctx.splits[0]
    lengths = {s: np.fromiter(map(len, ctx.texts[s]), np.int64, len(ctx.texts[s])) for s in ctx.splits}
    ref = np.log(lengths[reference][~ctx.empty[reference]])
    if len(ref) < 20:
        return []
    median, scale = _robust_scale(ref)
    if scale == 0:
        return []
    z = ctx.cfg.outlier_z
    low, high = math.exp(median - z * scale), math.exp(median + z * scale)
    findings = []
    for split in ctx.splits:
        chars = lengths[split]
        rows = np.nonzero(~ctx.empty[split] & ((chars < low) | (chars > high)))[0]
        if len(rows) == 0:
            continue
        share = len(rows) / len(chars)
        evidence = {
            "split": split, "count": len(rows), "share": round(share, 6), "reference": reference,
            "median_chars": round(math.exp(median), 1), "normal_range_chars": [round(low, 1), round(high, 1)],
            "too_short": int((chars[rows] < low).sum()), "too_long": int((chars[rows] > high).sum()),
            "examples": ctx.examples(split, rows, chars=chars[rows[:5]].tolist()),
        }  # fmt: skip
        findings.append(
            make_finding(
                "length_outliers",
                "info",
                f"{plural(len(rows), 'text')} in {split} with unusual length ({pct(share)}, outside "
                f"{low:.0f}-{high:.0f} characters)",
                evidence,
                rows.tolist(),
                "Look at them: unusually long or short texts are often concatenated records, boilerplate or "
                "cut-off exports.",
            )
        )
    return findings


def embedding_outliers(ctx: AuditContext) -> list[Finding]:
    emb = ctx.embedded
    n = len(emb.vectors)
    if n < 3 * NEIGHBOURS:
        return []
    distances, _ = NearestNeighbors(n_neighbors=NEIGHBOURS + 1).fit(emb.vectors).kneighbors(emb.vectors)
    score = distances[:, 1:].mean(axis=1)
    median, scale = _robust_scale(score)
    if scale == 0:
        return []
    zscore = (score - median) / scale
    outlier = zscore > ctx.cfg.outlier_z
    findings = []
    for split in ctx.splits:
        mask = outlier & (emb.split == split)
        if not mask.any():
            continue
        order = np.nonzero(mask)[0][np.argsort(-zscore[mask])]
        rows = sorted(int(p) for p in emb.position[order])
        share = len(rows) / max(1, int((emb.split == split).sum()))
        evidence = {
            "split": split, "count": len(rows), "share_of_embedded": round(share, 6), "neighbours": NEIGHBOURS,
            "embedded_rows": n, "sampled_from": emb.sampled_from, "median_distance": round(median, 4),
            "examples": ctx.examples(split, emb.position[order].tolist(),
                                     distance=[round(float(score[i]), 4) for i in order[:5]],
                                     z=[round(float(zscore[i]), 2) for i in order[:5]]),
        }  # fmt: skip
        findings.append(
            make_finding(
                "embedding_outliers",
                "info",
                f"{plural(len(rows), 'text')} in {split} far from all others in embedding space",
                evidence,
                rows,
                "Look at them: off-topic, foreign-language or corrupted texts sit far from the rest; drop the "
                "ones that do not belong to the task.",
            )
        )
    return findings
