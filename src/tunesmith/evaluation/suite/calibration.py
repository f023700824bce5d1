"""Calibration: ECE (15 equal-width bins), MCE, Brier score and NLL, a reliability table, and temperature
scaling (Guo et al., 2017) fitted on validation and measured on the evaluation set.

Temperature scaling divides the logits by T. Log-probabilities differ from the logits by a per-example
constant, so softmax(log p / T) is the same thing and needs only the predict function's output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from tunesmith.evaluation.suite.context import Context, Result
from tunesmith.findings import Finding

BINS = 15
CALIBRATION_FILE = "calibration.json"
EPS = 1e-12


def scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(probs, EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> list[dict[str, Any]]:
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(mask.sum()),
                      "confidence": float(conf[mask].mean()) if mask.any() else None,
                      "accuracy": float(correct[mask].mean()) if mask.any() else None})  # fmt: skip
    return table


def scores(probs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """ECE and MCE over 15 equal-width confidence bins, Brier score (sum over classes) and NLL."""
    table = reliability(probs, y)
    gaps = [(b["n"], abs(b["accuracy"] - b["confidence"])) for b in table if b["n"]]
    n = max(len(y), 1)
    onehot = np.eye(probs.shape[1])[y]
    return {
        "ece": float(sum(c * g for c, g in gaps) / n),
        "mce": float(max((g for _, g in gaps), default=0.0)),
        "brier": float(np.mean(np.sum((probs - onehot) ** 2, axis=1))),
        "nll": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], EPS, 1.0)))),
        "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
        "bins": table,
    }


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 that minimises validation NLL of softmax(log p / T) (searched on log T)."""

    def nll(log_t: float) -> float:
        p = scale(probs, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], EPS, 1.0))))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(100.0)), method="bounded")
    return float(np.exp(result.x))


def read_temperature(model_dir: Path) -> float | None:
    """The temperature `predict` applies: model/calibration.json when the suite wrote one."""
    path = model_dir / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        value = float(json.loads(path.read_text())["temperature"])
    except (ValueError, KeyError, TypeError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def check_calibration(ctx: Context) -> tuple[Result, list[Finding]]:
    y = ctx.eval_set.labels
    probs = ctx.probs()
    before = scores(probs, y)
    result: Result = {"split": ctx.eval_set.name, "n": len(y), "bins": BINS, "before": before}
    if ctx.validation is not None and len(ctx.validation) >= 10:
        t = fit_temperature(ctx.probs("validation"), ctx.validation.labels)
        result["temperature"] = t
        result["fitted_on"] = {"split": ctx.validation.name, "n": len(ctx.validation)}
        result["after"] = scores(scale(probs, t), y)
        model_dir = ctx.run_dir / "model"
        if model_dir.is_dir():  # applied by `tunesmith predict` (unless --uncalibrated)
            (model_dir / CALIBRATION_FILE).write_text(json.dumps(
                {"temperature": t, "fitted_on": result["fitted_on"], "method": "temperature scaling"}, indent=2))  # fmt: skip
            result["saved"] = str(model_dir / CALIBRATION_FILE)
    findings = []
    if before["ece"] > ctx.cfg.ece_warn:
        after = result.get("after", {}).get("ece")
        tail = (f"; temperature scaling (T = {result['temperature']:.2f}, fitted on validation) brings it to "
                f"{after:.3f} and is applied by `tunesmith predict`") if after is not None else ""  # fmt: skip
        findings.append(Finding(
            id="evaluation.calibration", stage="evaluation", severity="warning",
            title=f"Confidence is miscalibrated: ECE {before['ece']:.3f} > {ctx.cfg.ece_warn:g}{tail}",
            evidence={"ece": before["ece"], "mce": before["mce"], "ece_after": after,
                      "temperature": result.get("temperature"), "split": ctx.eval_set.name},
            recommendation="Do not read the raw probabilities as confidence: use the calibrated ones "
                           "(model/calibration.json), or pass --uncalibrated to `predict` only to compare.",
        ))  # fmt: skip
    return result, findings
