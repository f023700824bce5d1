"""Tuning: LR range test, Optuna search, cross-validation and A/B comparison with statistics."""

from __future__ import annotations

from tunesmith.report import register_section
from tunesmith.tuning import report_section

register_section("tuning", report_section.render)
