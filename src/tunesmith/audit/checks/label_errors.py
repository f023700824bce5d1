"""Likely mislabelled rows by confident learning (Northcutt, Jiang and Chuang, JAIR 2021), sharpened.

Out-of-fold probabilities come from an ensemble of three stratified k-fold logistic regressions: on the frozen
sentence embeddings (the packaged MiniLM, mean-pooled, unless an embedder is injected), on TF-IDF word 1-2
grams and on TF-IDF character 2-5 grams (fitted inside each fold). On the drug-review data the word model alone
beats the embeddings, and the mean of the three beats each. Then, as in the paper: per-class thresholds
t_j = mean self-confidence of class j; the confident joint C[i][j] counts rows labelled i whose probability
for j reaches t_j; C is calibrated to the label counts; "prune by noise rate" picks, for each i != j, the
C[i][j] rows labelled i with the largest margin p_j - p_i. Those suspects are a first round only: the folds
are fitted again without them (a model trained on fewer wrong labels scores the rest better), and a row is
flagged when that second model gives its label under LOW_CONFIDENCE and prefers another label.
benchmarks/label_errors.py measures this against cleanlab on planted flips (README, data doctor).
Severity: warning when the flagged share reaches audit.warn_share, else info. Never an error: these are
candidates for review, not certainties.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from tunesmith.audit.context import AuditContext, make_finding, pct, plural
from tunesmith.findings import Finding

LOW_CONFIDENCE = 0.1  # second-round probability of the given label under which a row is flagged


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


@dataclass
class Detection:
    issues: np.ndarray  # bool per row: likely mislabelled
    probs: np.ndarray  # (n, K) out-of-fold probabilities


def _clean(text: str) -> str:
    # Exports often wrap every text in quotes and escape it as HTML; neither says anything about the label.
    return html.unescape(text).strip().strip('"').strip()


def ensemble_probabilities(
    vectors: np.ndarray,
    texts: list[str],
    y: np.ndarray,
    folds: int,
    seed: int,
    leave_out: np.ndarray | None = None,
) -> np.ndarray:
    """Mean out-of-fold P(class) of the embedding, word TF-IDF and character TF-IDF models; rows in
    `leave_out` are never fitted on (they still get probabilities)."""
    k = int(y.max()) + 1
    cleaned = [_clean(t) for t in texts]
    probs = np.zeros((len(y), k), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_idx, held_idx in splitter.split(vectors, y):
        if leave_out is not None:
            kept = fit_idx[~leave_out[fit_idx]]
            if len(np.unique(y[kept])) == len(np.unique(y[fit_idx])):
                fit_idx = kept
        fit_texts, held_texts = [cleaned[i] for i in fit_idx], [cleaned[i] for i in held_idx]
        members: list[tuple[object, object, float]] = [(vectors[fit_idx], vectors[held_idx], 4.0)]
        for vectorizer in (
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=200_000),
            TfidfVectorizer(
                analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, max_features=200_000
            ),
        ):
            try:
                fitted = vectorizer.fit_transform(fit_texts)
            except ValueError:  # no terms at all (e.g. texts of punctuation only): the member abstains
                continue
            members.append((fitted, vectorizer.transform(held_texts), 10.0))
        for x_fit, x_held, c in members:
            model = LogisticRegression(C=c, max_iter=3000)
            model.fit(x_fit, y[fit_idx])  # type: ignore[arg-type]
            held = np.zeros((len(held_idx), k))
            held[:, model.classes_] = model.predict_proba(x_held)  # type: ignore[arg-type]
            probs[held_idx] += held / len(members)
    return probs


def detect(vectors: np.ndarray, texts: list[str], y: np.ndarray, folds: int, seed: int) -> Detection:
    """Likely label errors among rows with labels `y` (0..K-1), from their embeddings and texts."""
    first = ensemble_probabilities(vectors, texts, y, folds, seed)
    suspects = find_label_issues(first, y)
    probs = ensemble_probabilities(vectors, texts, y, folds, seed, leave_out=suspects)
    given = probs[np.arange(len(y)), y]
    issues = (given < LOW_CONFIDENCE) & (probs.argmax(axis=1) != y)
    for j in range(probs.shape[1]):  # keep at least one example of every class
        members = np.nonzero(y == j)[0]
        if len(members) and issues[members].all():
            issues[members[np.argmax(given[members])]] = False
    return Detection(issues, probs)


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
    texts = [ctx.texts[s][p] for s, p in zip(emb.split[usable], emb.position[usable], strict=True)]
    found = detect(emb.vectors[usable], texts, y, folds, ctx.cfg.seed)
    issues, probs = found.issues, found.probs
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
