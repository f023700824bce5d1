"""`eval.learning_curve: true` (or `tunesmith learning-curve RECIPE`): is there enough data?

The recipe runs as usual on all its training data; then the same recipe trains on nested stratified subsets
of the same training split (1/8, 1/4, 1/2: every class keeps its share, and each subset contains the
smaller ones), all validated on the same validation rows. A saturating power law
`score(n) = a - b * n^(-c)` (a: the ceiling, c: how fast it is approached) is fitted to validation macro-F1
against the number of training examples with scipy's curve_fit, and its value at 2n minus its value at n is
the expected gain from doubling the data. The CI is a bootstrap over validation rows: the same resampled
rows score every subset's predictions, and the curve is refitted each time. The same fit per class names
the classes that would gain most. A predicted gain under FLAT means the curve has flattened.

Layout: RUN_DIR/learning_curve.json, RUN_DIR/learning_curve/data/ (subset files), RUN_DIR/learning_curve/
frac-<f>/ (one run each); the finding `evaluation.data_size` joins RUN_DIR/findings.json and the report
draws the curve in its "Is there enough data?" section.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from tunesmith.config.loader import recipe_from_dict
from tunesmith.config.schema import Recipe
from tunesmith.errors import UserError
from tunesmith.findings import Finding
from tunesmith.outputs import write_json

log = logging.getLogger(__name__)
FRACTIONS = (0.125, 0.25, 0.5)  # and 1.0: the run itself
LC_FILE = "learning_curve.json"
FLAT = 0.01  # a predicted gain below this (macro-F1) from doubling the data: the curve has flattened
BOOTSTRAP = 200


def power_law(n: Any, a: float, b: float, c: float) -> Any:
    return a - b * np.power(np.asarray(n, dtype=np.float64), -c)


def fit_power_law(
    sizes: list[int] | np.ndarray, scores: list[float] | np.ndarray
) -> tuple[float, float, float] | None:
    """(a, b, c) of the saturating power law, or None when scipy finds no fit."""
    x, y = np.asarray(sizes, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    p0 = (float(y.max()) + 0.05, max(float(y.max() - y.min()), 0.01) * float(x.min()) ** 0.5, 0.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(power_law, x, y, p0=p0, bounds=([-1.0, 0.0, 0.05], [2.0, np.inf, 3.0]),
                                  maxfev=20000)  # fmt: skip
    except (RuntimeError, ValueError):
        return None
    return float(params[0]), float(params[1]), float(params[2])


def doubling_gain(params: tuple[float, float, float] | None, n: int) -> float | None:
    if params is None:
        return None
    return float(power_law(2 * n, *params) - power_law(n, *params))


def nested_subsets(labels: list[int], fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Training positions per fraction: per class the first ceil(f * n_c) of one seeded shuffle (nested)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    orders = {c: rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)}
    return [np.sort(np.concatenate([o[: max(1, int(np.ceil(f * len(o))))] for o in orders.values()]))
            for f in fractions]  # fmt: skip


def analyse(sizes: list[int], y_true: list[int], preds: list[list[int]], labels: list[str],
            seed: int = 0, n_boot: int = BOOTSTRAP) -> dict[str, Any]:  # fmt: skip
    """Fit, gain from doubling, bootstrap CI over validation rows, and the per-class gains."""
    y = np.asarray(y_true)
    p = [np.asarray(x) for x in preds]
    k = len(labels)
    scores = [float(f1_per_class(y, q, k).mean()) for q in p]
    params = fit_power_law(sizes, scores)
    n = int(sizes[-1])
    gain = doubling_gain(params, n)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        s = [float(f1_per_class(y[idx], q[idx], k).mean()) for q in p]
        g = doubling_gain(fit_power_law(sizes, s), n)
        if g is not None:
            boot.append(g)
    per_class = {}
    for c, name in enumerate(labels):
        class_scores = [float(f1_per_class(y, q, k)[c]) for q in p]
        per_class[name] = {"f1": [round(v, 4) for v in class_scores],
                           "gain": _round(doubling_gain(fit_power_law(sizes, class_scores), n))}  # fmt: skip
    ci = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))] if len(boot) >= 20 else None
    return {
        "sizes": [int(s) for s in sizes], "macro_f1": [round(s, 4) for s in scores],
        "fit": None if params is None else {"a": round(params[0], 4), "b": round(params[1], 4), "c": round(params[2], 4)},
        "gain_doubling": _round(gain), "ci95": None if ci is None else [round(v, 4) for v in ci],
        "last_doubling": round(scores[-1] - scores[-2], 4) if len(scores) > 1 else None,
        "bootstrap": len(boot), "per_class": per_class, "flat_below": FLAT,
    }  # fmt: skip


def f1_per_class(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """F1 of each class from the confusion counts (0 where a class is neither present nor predicted):
    numpy, since the bootstrap scores every subset a few hundred times."""
    confusion = np.bincount(y * k + p, minlength=k * k).reshape(k, k)
    tp = np.diag(confusion).astype(np.float64)
    denom = confusion.sum(0) + confusion.sum(1)
    return np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def data_size_finding(summary: dict[str, Any]) -> Finding:
    """`evaluation.data_size`: the expected gain from doubling the data, or that the curve has flattened."""
    gain = summary["gain_doubling"]
    if gain is None:
        gain = summary["last_doubling"] or 0.0  # no fit: the last doubling measured is the best estimate
    ci = summary["ci95"]
    ci_text = f" (95% CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else ""
    n = summary["sizes"][-1]
    if gain < FLAT:
        return Finding(
            id="evaluation.data_size", stage="evaluation", severity="info",
            title=f"the learning curve has flattened: doubling the {n} training rows would add about "
                  f"{gain:+.3f} macro-F1{ci_text}",
            evidence=summary, rows=None, config_patch=None,
            recommendation="More data of the same kind will not help; look at label noise (the audit's "
                           "label_errors, training.label_errors) and the slices the model gets wrong, or a "
                           "larger model / another strategy.",
        )  # fmt: skip
    gaining = sorted(((v["gain"] or 0.0, k) for k, v in summary["per_class"].items()), reverse=True)
    top = [f"{k} ({g:+.3f} F1)" for g, k in gaining[:2] if g > 0]
    classes = f"; the classes that would gain most: {', '.join(top)}" if top else ""
    return Finding(
        id="evaluation.data_size", stage="evaluation", severity="info",
        title=f"doubling the data would add about {gain:+.3f} macro-F1{ci_text}",
        evidence=summary, rows=None, config_patch=None,
        recommendation=f"The curve is still rising at {n} training rows{classes}. Label more data, those "
                       "classes first; the fitted ceiling is the power law's a in the evidence.",
    )  # fmt: skip


def check(recipe: Recipe) -> None:
    if recipe.task != "text-classification":
        raise UserError("eval.learning_curve: the learning curve measures macro-F1 of a classifier; it does "
                        f"not apply to task: {recipe.task}. Remove eval.learning_curve.")  # fmt: skip
    if recipe.eval.cv:
        raise UserError("eval.learning_curve: not together with eval.cv; drop one of them.")


def _validation_preds(run_dir: Path, labels: list[str]) -> list[int]:
    lines = (run_dir / "predictions" / "validation.jsonl").read_text().splitlines()
    index = {name: i for i, name in enumerate(labels)}
    return [index[json.loads(line)["pred"]] for line in lines if line.strip()]


def run_learning_curve(
    recipe: Recipe, *, resume: bool = False, overwrite: bool, quiet: bool, extra_callbacks: Any = None
) -> Any:
    """The full run, then one run per smaller fraction; learning_curve.json, the finding, the report."""
    from tunesmith.data.prepare import prepare_data
    from tunesmith.report import render_report
    from tunesmith.run import run
    from tunesmith.tuning.crossval import _write_rows

    check(recipe)
    _, bundle = prepare_data(recipe.data)  # bad data fails here, before anything is written
    base = recipe.model_copy(update={"eval": recipe.eval.model_copy(update={"learning_curve": False})})
    result = run(base, resume=resume, overwrite=overwrite, quiet=quiet, extra_callbacks=extra_callbacks)
    run_dir = result.run_dir
    folder = run_dir / "learning_curve"
    data_dir = folder / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    pools: dict[str, dict[str, Any]] = {}
    for name, split in (("train", bundle.train), ("validation", bundle.validation), ("test", bundle.test)):
        if split is not None:
            pools[name] = {"texts": split.texts, "labels": split.labels, "groups": split.groups}
    _write_rows(data_dir / "validation.jsonl", recipe, bundle, pools["validation"],
                np.arange(len(bundle.validation)))  # fmt: skip
    if "test" in pools:
        _write_rows(data_dir / "test.jsonl", recipe, bundle, pools["test"], np.arange(len(bundle.test or [])))
    sizes, preds = [], []
    for fraction, rows in zip(FRACTIONS, nested_subsets(bundle.train.labels, FRACTIONS, recipe.data.seed),
                              strict=True):  # fmt: skip
        train_file = data_dir / f"train-{fraction:g}.jsonl"
        _write_rows(train_file, recipe, bundle, pools["train"], rows)
        sub = recipe.model_dump(mode="json")
        sub["data"] |= {"train": str(train_file), "validation": str(data_dir / "validation.jsonl"),
                        "test": str(data_dir / "test.jsonl") if "test" in pools else None}  # fmt: skip
        sub["eval"] |= {"learning_curve": False, "suite": []}  # the subsets only need validation scores
        sub["audit"] |= {"gate": "off"}  # the run itself audited this data
        sub["output"] = {"dir": str(folder), "name": f"frac-{fraction:g}"}
        sub["report_to"] = ["jsonl"]
        sub_recipe = recipe_from_dict(sub, f"{run_dir}/config.yaml (learning curve {fraction:g})")
        log.info("learning curve: %d of %d training rows", len(rows), len(bundle.train))
        sub_result = run(sub_recipe, overwrite=True, quiet=True)
        sizes.append(len(rows))
        preds.append(_validation_preds(sub_result.run_dir, bundle.labels))
    sizes.append(len(bundle.train))
    preds.append(_validation_preds(run_dir, bundle.labels))
    summary = analyse(sizes, bundle.validation.labels, preds, list(bundle.labels), seed=recipe.train.seed)
    summary["fractions"] = [*FRACTIONS, 1.0]
    write_json(run_dir / LC_FILE, summary)
    finding = data_size_finding(summary)
    findings_file = run_dir / "findings.json"
    findings = json.loads(findings_file.read_text()) if findings_file.is_file() else []
    write_json(findings_file, [*findings, finding.to_dict()])
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["learning_curve"] = {k: summary[k] for k in ("sizes", "macro_f1", "gain_doubling", "ci95")}
    write_json(metrics_file, metrics)
    render_report(run_dir)
    result.findings.append(finding)
    result.metrics = metrics
    return result


def read_summary(recipe: Recipe, name: str = LC_FILE) -> dict[str, Any]:
    from tunesmith.outputs import resolve_run_dir

    summary: dict[str, Any] = json.loads((resolve_run_dir(recipe.output) / name).read_text())
    return summary


def render(data: Any) -> str | None:
    """The report section: validation macro-F1 against training rows (log axis), with the fitted curve."""
    from tunesmith.report.html import join, key_values, tag
    from tunesmith.tuning.pages import inline_plot

    path = data.run_dir / LC_FILE if data.run_dir is not None else None
    if path is None or not path.is_file():
        return None
    s = json.loads(path.read_text())
    traces: list[dict[str, Any]] = [{"type": "scatter", "mode": "markers+lines", "name": "validation macro-F1",
                                     "x": s["sizes"], "y": s["macro_f1"]}]  # fmt: skip
    if s.get("fit"):
        xs = list(np.geomspace(s["sizes"][0], 2 * s["sizes"][-1], 40))
        ys = power_law(xs, s["fit"]["a"], s["fit"]["b"], s["fit"]["c"]).tolist()
        traces.append({"type": "scatter", "mode": "lines", "name": "fitted a - b n^-c (to 2x the data)",
                       "x": xs, "y": ys, "line": {"dash": "dot"}})  # fmt: skip
    spec = {"data": traces, "layout": {"xaxis": {"type": "log", "title": "training rows"},
                                       "yaxis": {"title": "validation macro-F1"}, "margin": {"t": 20}}}  # fmt: skip
    finding = data_size_finding(s)
    return str(join([tag("p", finding.title + ". " + finding.recommendation),
                     key_values({"gain from doubling": s["gain_doubling"], "95% CI": s["ci95"],
                                 "last doubling measured": s["last_doubling"], "fit": s["fit"]}),
                     inline_plot("data-size", spec)]))  # fmt: skip
