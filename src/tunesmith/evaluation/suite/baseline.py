"""A simple baseline: TF-IDF (word 1-2-grams) + class-balanced logistic regression on the same training split,
scored on the same evaluation examples, with a paired bootstrap of the fine-tuned model's advantage."""

from __future__ import annotations

import numpy as np

from tunesmith.evaluation.suite.context import Context, Result
from tunesmith.findings import Finding
from tunesmith.tuning.stats import classification_score, paired_bootstrap

REPLICATES = 2000


def fit_baseline(texts: list[str], labels: np.ndarray, seed: int = 0):  # type: ignore[no-untyped-def]
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
    )
    return model.fit(texts, labels)


def check_baseline(ctx: Context) -> tuple[Result, list[Finding]]:
    if ctx.train is None or len(set(ctx.train.labels.tolist())) < 2:
        return {"skipped": "no training split with two or more classes to fit the baseline on"}, []
    k = len(ctx.labels)
    y = ctx.eval_set.labels
    baseline = fit_baseline(ctx.train.texts, ctx.train.labels, ctx.seed)
    # The baseline may not have seen every class: map its classes back to label ids.
    proba = baseline.predict_proba(ctx.eval_set.texts)
    base_pred = np.asarray(baseline.classes_)[proba.argmax(axis=1)].astype(np.int64)
    model_pred = ctx.probs().argmax(-1).astype(np.int64)
    scores = {
        name: {
            metric: float(classification_score(y, pred, k, metric)[0]) for metric in ("accuracy", "macro_f1")
        }
        for name, pred in (("fine-tuned", model_pred), ("tfidf-logreg", base_pred))
    }
    test = paired_bootstrap([(y, model_pred)], [(y, base_pred)], k, "macro_f1", replicates=REPLICATES,
                            seed=ctx.seed)  # fmt: skip
    diff = scores["fine-tuned"]["macro_f1"] - scores["tfidf-logreg"]["macro_f1"]
    better = diff > 0 and test.p_value < 0.05
    result: Result = {
        "split": ctx.eval_set.name, "n": len(y), "train_rows": len(ctx.train),
        "baseline": "TF-IDF word 1-2-grams + logistic regression (class_weight=balanced)",
        "scores": scores, "macro_f1_difference": diff, "p_value": test.p_value, "detail": test.detail,
        "significantly_better": better,
    }  # fmt: skip
    findings = []
    if not better:
        worse = diff <= 0
        findings.append(Finding(
            id="evaluation.baseline", stage="evaluation", severity="warning",
            title=(f"Fine-tuning is {'not better than' if worse else 'not significantly better than'} a "
                   f"TF-IDF + logistic-regression baseline: macro-F1 {scores['fine-tuned']['macro_f1']:.3f} vs "
                   f"{scores['tfidf-logreg']['macro_f1']:.3f} (p = {test.p_value:.2f})"),
            evidence={"fine_tuned_macro_f1": scores["fine-tuned"]["macro_f1"],
                      "baseline_macro_f1": scores["tfidf-logreg"]["macro_f1"], "difference": diff,
                      "p_value": test.p_value, "detail": test.detail, "n": len(y)},
            recommendation="The fine-tuned model buys nothing measurable over the simple model here: train "
                           "longer or with more data, try another strategy or learning rate (tunesmith compare), "
                           "or serve the cheap baseline.",
        ))  # fmt: skip
    return result, findings
