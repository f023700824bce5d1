"""Evaluate like production: slices and fairness, calibration, a baseline, robustness, latency and export,
explanations. Each check is a function of plain data (`Context`) returning (result, findings); the model is
reached only through `ModelHandle.predict` (texts -> probabilities)."""

from tunesmith.evaluation.suite.predictor import ModelHandle, Predictor, handle_for_model, handle_for_run
from tunesmith.evaluation.suite.suite import CHECKS, run_suite

__all__ = ["CHECKS", "ModelHandle", "Predictor", "handle_for_model", "handle_for_run", "run_suite"]
