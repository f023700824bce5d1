"""The evaluation suite: registered checks run on plain data, each writing evaluation/<check>.json and
returning findings. `run_suite` is the stage `tunesmith run` calls after training; `tunesmith evaluate`
(tunesmith.evaluation.suite.command) builds the same inputs from a finished run directory."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config.schema import Recipe
from tunesmith.data.messages import did_you_mean, list_names
from tunesmith.data.prepare import HELD_OUT, MISSING_GROUP
from tunesmith.data.types import DataBundle, Split
from tunesmith.errors import UserError
from tunesmith.evaluation.suite.context import Context, EvalSet, Result, sample_index
from tunesmith.evaluation.suite.predictor import ModelHandle
from tunesmith.findings import Finding
from tunesmith.outputs import write_json

log = logging.getLogger(__name__)
Check = Callable[[Context], tuple[Result, list[Finding]]]
# name -> "module:function" (imported when run, so a check's optional dependency loads only when used)
CHECKS: dict[str, str] = {
    "slices": "slices:check_slices",
    "calibration": "calibration:check_calibration",
    "baseline": "baseline:check_baseline",
    "robustness": "robustness:check_robustness",
    "latency": "latency:check_latency",
    "explanations": "explain:check_explanations",
}
# The optional package each check needs, named in the "skipped" note when it is missing.
EXTRAS = {"slices": "fairlearn", "latency": "onnxruntime", "explanations": "captum"}


def resolve_checks(names: Sequence[str] | None, option: str = "eval.suite") -> list[str]:
    """The checks to run, in registry order; an unknown name is an error naming the closest one."""
    if names is None:
        return list(CHECKS)
    for name in names:
        if name not in CHECKS:
            guess = did_you_mean(name, list(CHECKS))
            hint = f"did you mean '{guess}'? " if guess else ""
            raise UserError(f"{option}: unknown check '{name}'; {hint}checks: {', '.join(CHECKS)}.")
    return [name for name in CHECKS if name in names]


def load_check(name: str) -> Check:
    module, function = CHECKS[name].split(":")
    check: Check = getattr(importlib.import_module(f"tunesmith.evaluation.suite.{module}"), function)
    return check


def eval_set_from_split(split: Split, labels_known: int, group_column: str | None) -> EvalSet:
    slices = {group_column: list(split.groups)} if group_column and split.groups else {}
    return EvalSet(split.name, list(split.texts), np.asarray(split.labels, dtype=np.int64), list(split.rows),
                   slices)  # fmt: skip


def extra_slice_columns(data: EvalSet, path: str | None, columns: list[str], option: str) -> list[str]:
    """Add slice columns read from the evaluation set's source file (by row); returns the unknown ones."""
    missing = [c for c in columns if c not in data.slices]
    if not missing or path is None:
        return missing
    from tunesmith.data.loaders import read_raw

    raw = read_raw(path, option)
    present = [str(c) for c in raw.columns]
    unknown = [c for c in missing if c not in present]
    for column in missing:
        if column in present:
            values = raw[column].tolist()
            data.slices[column] = [_slice_value(values[r]) if 0 <= r < len(values) else MISSING_GROUP
                                   for r in data.rows]  # fmt: skip
    return unknown


def unknown_column_message(option: str, column: str, path: str | None, present: list[str]) -> str:
    guess = did_you_mean(column, present)
    hint = f"did you mean '{guess}'? " if guess else ""
    return (f"{option}: column '{column}' is not in {path}; {hint}columns present: {list_names(present)}; "
            "name a column of the evaluation file.")  # fmt: skip


def _slice_value(value: Any) -> str:
    from tunesmith.data.loaders import _label_value

    text = _label_value(value)
    return MISSING_GROUP if text is None else text


def run_checks(ctx: Context, names: list[str], out_dir: Path) -> tuple[dict[str, Any], list[Finding]]:
    """Run `names` on `ctx`; write out_dir/<check>.json; return the summary and every finding."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"split": ctx.eval_set.name, "n": len(ctx.eval_set), "checks": {}}
    findings: list[Finding] = []
    start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        try:
            result, found = load_check(name)(ctx)
        except ImportError as exc:  # an optional extra is missing: say so, and which one
            extra = EXTRAS.get(name, exc.name or "a package")
            result, found = {"skipped": f"needs {extra}: pip install {extra} (or make setup)"}, []
        except Exception as exc:  # a check this model does not support must not lose a trained run: recorded
            log.warning("evaluation %s failed: %s: %s", name, type(exc).__name__, exc)
            result, found = {"skipped": f"failed on this model: {type(exc).__name__}: {str(exc)[:300]}"}, []
        result["seconds"] = time.perf_counter() - t0
        write_json(out_dir / f"{name}.json", result)
        summary["checks"][name] = headline(name, result)
        findings += found
        log.info("evaluation %s: %.1f s, %d finding(s)", name, result["seconds"], len(found))
    summary["seconds"] = time.perf_counter() - start
    summary["findings"] = [f.id for f in findings]
    return summary, findings


def headline(name: str, r: Result) -> dict[str, Any]:
    """The few numbers of a check that go into metrics.json (the full result is evaluation/<check>.json)."""
    if "skipped" in r:
        return {"skipped": r["skipped"]}
    pick: dict[str, Any] = {"seconds": round(r.get("seconds", 0.0), 2)}
    if name == "slices":
        pick["flagged"] = r.get("flagged", [])
    elif name == "calibration":
        pick |= {"ece": r["before"]["ece"], "ece_calibrated": r.get("after", {}).get("ece"),
                 "temperature": r.get("temperature")}  # fmt: skip
    elif name == "baseline":
        pick |= {"baseline_macro_f1": r["scores"]["tfidf-logreg"]["macro_f1"],
                 "macro_f1_difference": r["macro_f1_difference"], "p_value": r["p_value"]}  # fmt: skip
    elif name == "robustness":
        pick["flip_rate"] = {k: v["flip_rate"] for k, v in r.get("perturbations", {}).items()}
    elif name == "latency":
        pick["variants"] = {v["name"]: {"p50_ms": v.get("p50_ms"), "macro_f1": v.get("macro_f1")}
                            for v in r.get("variants", [])}  # fmt: skip
    elif name == "explanations":
        pick["top_tokens"] = {k: [t["token"] for t in v[:5]] for k, v in r.get("top_tokens", {}).items()}
    return pick


def run_suite(
    run_dir: Path, recipe: Recipe, bundle: DataBundle, handle: ModelHandle, *, device: str = "cpu",
    known_probs: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, Any], list[Finding]]:  # fmt: skip
    """The evaluation stage of `tunesmith run`: the checks in eval.suite on the run's test split (validation
    when there is none), bounded by eval.max_examples. `known_probs` (split name -> the handle's
    probabilities on every row of that split, from the run's final evaluation) spares predicting them again.
    Returns (summary for metrics.json, findings)."""
    names = resolve_checks(recipe.eval.suite)
    if not names:
        return {"checks": {}}, []
    split = bundle.test if bundle.test is not None else bundle.validation
    group = recipe.data.group
    known = known_probs or {}
    seed = recipe.train.seed
    full = eval_set_from_split(split, len(bundle.labels), group)
    picked = sample_index(full.labels, recipe.eval.max_examples, seed)
    data = full.subset(picked)
    findings: list[Finding] = []
    wanted = list(recipe.eval.slices) if recipe.eval.slices is not None else ([group] if group else [])
    source = recipe.data.train if split.source == HELD_OUT else split.source
    unknown = extra_slice_columns(data, source, wanted, "eval.slices")
    for column in unknown:  # after training a bad column must not lose the run: a finding, not an error
        findings.append(Finding(
            id="evaluation.unknown_slice", stage="evaluation", severity="warning",
            title=f"eval.slices: column '{column}' is not in {source}; that slice was not evaluated",
            recommendation="Name a column of the evaluation file in eval.slices (`tunesmith evaluate RUN_DIR "
                           "--group COLUMN` evaluates another one without retraining).",
        ))  # fmt: skip
    data.slices = {k: v for k, v in data.slices.items() if k in wanted}
    validation = eval_set_from_split(bundle.validation, len(bundle.labels), None)
    val_picked = sample_index(validation.labels, max(recipe.eval.max_examples, 200), seed)
    ctx = Context(run_dir=run_dir, cfg=recipe.eval, handle=handle, eval_set=data,
                  validation=validation.subset(val_picked),
                  train=eval_set_from_split(bundle.train, len(bundle.labels), None), group_column=group,
                  seed=seed, device=device)  # fmt: skip
    for key, name, index in (
        ("eval", split.name, picked),
        ("validation", bundle.validation.name, val_picked),
    ):
        if name in known and len(known[name]) == len(full if key == "eval" else validation):
            ctx._cache[key] = np.asarray(known[name], dtype=np.float64)[index]
    summary, found = run_checks(ctx, names, run_dir / "evaluation")
    return summary, findings + found
