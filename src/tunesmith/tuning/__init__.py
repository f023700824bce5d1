"""Tuning: LR range test, Optuna search, cross-validation and A/B comparison with statistics."""

from __future__ import annotations

from tunesmith.report import register_section
from tunesmith.tuning import report_section

register_section("tuning", report_section.render)


def _data_size(data):  # type: ignore[no-untyped-def]  # lazy: scipy and sklearn only when a report renders
    from tunesmith.tuning.learning_curve import render

    return render(data)


register_section("data-size", _data_size, title="Is there enough data?")
