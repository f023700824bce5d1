"""The HTML report: renders a run directory's files, never recomputes metrics."""

from __future__ import annotations

from tunesmith.report.extras import register_section
from tunesmith.report.render import SECTION_IDS, render_report, section_ids

__all__ = ["SECTION_IDS", "register_section", "render_report", "section_ids"]
