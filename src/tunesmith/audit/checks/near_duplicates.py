"""Near-duplicates inside a split: distinct texts whose word shingles overlap beyond the threshold.

Pairs come from MinHash LSH (tunesmith.audit.minhash); pairs are joined into clusters, and in each cluster
the text seen first is kept while the first row of every other text is flagged (their exact copies are
already flagged by the exact-duplicate check, so the two checks never flag the same row).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from tunesmith.audit.context import AuditContext, make_finding, pct, plural
from tunesmith.findings import Finding


def first_positions(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """Position of the first row of each key in a split (-1 when the key is absent)."""
    first = np.full(n_keys, -1, dtype=np.int64)
    valid = np.nonzero(keys >= 0)[0][::-1]
    first[keys[valid]] = valid  # reversed, so the earliest position is written last and wins
    return first


def near_duplicates(ctx: AuditContext) -> list[Finding]:
    pairs = ctx.near
    n_keys = len(ctx.key_texts)
    findings = []
    for split in ctx.splits:
        first = first_positions(ctx.keys[split], n_keys)
        inside = (first[pairs.left] >= 0) & (first[pairs.right] >= 0)
        left, right, sims = pairs.left[inside], pairs.right[inside], pairs.similarity[inside]
        if len(left) == 0:
            continue
        flagged, n_clusters = _non_keepers(left, right, first)
        rows = np.sort(first[flagged])
        labels = ctx.labels[split]
        differ = int((labels[first[left]] != labels[first[right]]).sum())
        share = len(rows) / len(ctx.keys[split])
        top = np.argsort(-sims, kind="stable")[:5]
        a, b = (
            np.minimum(first[left[top]], first[right[top]]),
            np.maximum(first[left[top]], first[right[top]]),
        )
        examples = ctx.examples(
            split, b.tolist(), near_row=[int(x) for x in a],
            near_text=[ctx.examples(split, [int(x)])[0]["text"] for x in a],
            similarity=[round(float(s), 3) for s in sims[top]],
        )  # fmt: skip
        evidence = {
            "split": split,
            "count": len(rows),
            "share": round(share, 6),
            "clusters": n_clusters,
            "pairs": len(left),
            "pairs_with_different_labels": differ,
            "threshold": ctx.cfg.near_duplicate_threshold,
            "shingle_words": ctx.cfg.shingle_words,
            "examples": examples,
        }
        findings.append(
            make_finding(
                "near_duplicates",
                "warning" if share >= ctx.cfg.warn_share else "info",
                f"{plural(len(rows), 'near-duplicate row')} in {split} ({pct(share)}, {plural(n_clusters, 'cluster')})",
                evidence,
                rows.tolist(),
                "Review the clusters and keep one text of each (`--fix-only near_duplicates` keeps the first); "
                "near-copies over-weight a few texts. Pairs with different labels deserve a look first. "
                "Tune the similarity with audit.near_duplicate_threshold.",
            )
        )
    return findings


def _non_keepers(left: np.ndarray, right: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, int]:
    """Keys to flag (all but the earliest text of each cluster) and the number of clusters."""
    nodes, index = np.unique(np.concatenate([left, right]), return_inverse=True)
    m = len(nodes)
    graph = coo_matrix((np.ones(len(left)), (index[: len(left)], index[len(left) :])), shape=(m, m))
    n_clusters, component = connected_components(graph, directed=False)
    order = np.lexsort((first[nodes], component))  # by cluster, then by first position
    is_keeper = np.ones(m, dtype=bool)
    is_keeper[order[1:]] = component[order[1:]] != component[order[:-1]]
    return nodes[~is_keeper], int(n_clusters)
