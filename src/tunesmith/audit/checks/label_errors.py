"""Likely mislabelled rows by confident learning (Northcutt, Jiang and Chuang, JAIR 2021).

Out-of-fold predicted probabilities come from a stratified k-fold logistic regression on frozen sentence
embeddings (the packaged MiniLM, mean-pooled, unless an embedder is injected). Then, as in the paper:
per-class thresholds t_j = mean self-confidence of class j; the confident joint C[i][j] counts rows labelled
i whose probability for j reaches t_j (the largest such j); C is calibrated so row i sums to the count of
label i; and "prune by noise rate" flags, for each i != j, the C[i][j] rows labelled i with the largest
margin p_j - p_i. Rows whose given label is still the model's top prediction are kept.
Severity: warning when the flagged share reaches audit.warn_share, else info. Never an error: these are
candidates for review, not certainties.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from tunesmith.audit.context import AuditContext, make_finding, pct, plural
from tunesmith.findings import Finding


def out_of_fold_probabilities(x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """P(class | x) for every row from a model that never saw that row (classes 0..K-1 all present)."""
    k = int(y.max()) + 1
    probs = np.zeros((len(y), k), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_idx, held_idx in splitter.split(x, y):
        model = LogisticRegression(C=1.0, max_iter=2000)
        model.fit(x[fit_idx], y[fit_idx])
        probs[np.ix_(held_idx, model.classes_)] = model.predict_proba(x[held_idx])
    return probs


def confident_joint(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated confident joint K x K with rows = given labels, per-class thresholds)."""
    k = probs.shape[1]
    thresholds = np.array([probs[y == j, j].mean() for j in range(k)])
    above = probs >= thresholds[None, :] - 1e-12
    confident = above.any(axis=1)
    true_guess = np.where(above, probs, -np.inf).argmax(axis=1)
    joint = np.zeros((k, k), dtype=np.float64)
    np.add.at(joint, (y[confident], true_guess[confident]), 1)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    row_sums = joint.sum(axis=1, keepdims=True)
    calibrated = np.divide(joint, row_sums, out=np.zeros_like(joint), where=row_sums > 0) * counts[:, None]
    return calibrated, thresholds


def find_label_issues(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of likely label errors (prune by noise rate)."""
    joint, _ = confident_joint(probs, y)
    k = probs.shape[1]
    issues = np.zeros(len(y), dtype=bool)
    for i in range(k):
        members = np.nonzero(y == i)[0]
        budget = len(members) - 1  # keep at least one example of every class
        for j in range(k):
            remove = min(int(round(joint[i, j])), budget) if i != j else 0
            if remove <= 0:
                continue
            margin = probs[members, j] - probs[members, i]
            issues[members[np.argsort(-margin, kind="stable")[:remove]]] = True
    issues &= probs.argmax(axis=1) != y
    return issues


def label_errors(ctx: AuditContext) -> list[Finding]:
    emb = ctx.embedded
    counts = Counter(emb.label.tolist())
    usable = np.array([counts[label] >= 2 for label in emb.label.tolist()], dtype=bool)
    names = sorted(label for label, c in counts.items() if c >= 2)
    folds = min(ctx.cfg.label_error_folds, min((counts[n] for n in names), default=0))
    if len(names) < 2 or folds < 2:
        return []
    index = {name: i for i, name in enumerate(names)}
    y = np.array([index[label] for label in emb.label[usable].tolist()])
    probs = out_of_fold_probabilities(emb.vectors[usable], y, folds, ctx.cfg.seed)
    issues = find_label_issues(probs, y)
    self_conf = probs[np.arange(len(y)), y]
    accuracy = float((probs.argmax(axis=1) == y).mean())
    split, position = emb.split[usable], emb.position[usable]
    findings = []
    for name in ctx.splits:
        mask = issues & (split == name)
        if not mask.any():
            continue
        order = np.nonzero(mask)[0][np.argsort(self_conf[mask], kind="stable")]  # least confident first
        checked = int((split == name).sum())
        share = int(mask.sum()) / checked
        pairs = Counter(f"{names[y[i]]} -> {names[int(probs[i].argmax())]}" for i in order)
        evidence = {
            "split": name, "count": int(mask.sum()), "share_of_checked": round(share, 6), "checked_rows": checked,
            "embedded_rows": len(emb.label), "sampled_from": emb.sampled_from, "folds": folds,
            "out_of_fold_accuracy": round(accuracy, 4), "given_to_suggested": dict(pairs.most_common()),
            "examples": ctx.examples(
                name, position[order].tolist(),
                suggested=[names[int(probs[i].argmax())] for i in order[:5]],
                self_confidence=[round(float(self_conf[i]), 3) for i in order[:5]],
            ),
        }  # fmt: skip
        findings.append(
            make_finding(
                "label_errors",
                "warning" if share >= ctx.cfg.warn_share else "info",
                f"{plural(int(mask.sum()), 'likely mislabelled row')} in {name} ({pct(share)} of those checked)",
                evidence,
                sorted(int(p) for p in position[order]),
                "Review these rows, least confident first, and correct the labels that are wrong; "
                "`--fix-only label_errors` drops them instead. The classifier behind them scored "
                f"{accuracy:.0%} out of fold: the weaker it is, the more of these are false alarms.",
            )
        )
    return findings
