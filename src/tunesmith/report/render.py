"""render_report(run_dir): one self-contained report.html, opened offline (plotly.js inlined once)."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.diagnosis import diagnose_data
from tunesmith.diagnosis.rundata import RunData, load_run
from tunesmith.errors import UserError
from tunesmith.fileio import write_text_atomic
from tunesmith.findings import Finding
from tunesmith.report import evaluation, sections
from tunesmith.report.dynamics import dynamics_section
from tunesmith.report.extras import EXTRA_SECTIONS, render_extra
from tunesmith.report.html import Markup, esc, join, script_json, tag
from tunesmith.report.style import CSS

REPORT_NAME = "report.html"
CORE_SECTIONS = ("verdict", "config", "audit", "learning-curves", "lr-schedule", "events", "gradient-flow",
                 "per-class", "errors", "dynamics")  # fmt: skip
SECTION_IDS = (*CORE_SECTIONS, *EXTRA_SECTIONS)  # built in; section_ids() adds registered ones
NAV_TITLES = {"verdict": "Verdict", "config": "Config", "audit": "Data audit", "learning-curves": "Learning curves",
              "lr-schedule": "LR schedule", "events": "Events", "gradient-flow": "Gradient flow",
              "per-class": "Per-class", "errors": "Confident errors", "dynamics": "Dynamics"}  # fmt: skip
# Belt and braces: even a stray URL in a plot could not be fetched.
CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:; worker-src blob:")  # fmt: skip
BOOT = """
(function () {
  var specs = JSON.parse(document.getElementById("plot-specs").textContent);
  var config = {responsive: true, displaylogo: false, showLink: false, showSendToCloud: false};
  document.querySelectorAll("div[data-plot]").forEach(function (div) {
    var spec = specs[div.getAttribute("data-plot")];
    if (spec) { Plotly.newPlot(div, spec.data, spec.layout, config); }
  });
})();
"""


def section_ids() -> tuple[str, ...]:
    """Every section of the report in page order: the core ones, then the extras (registered ones last)."""
    return (*CORE_SECTIONS, *EXTRA_SECTIONS)


def render_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report.html from the files of a run directory and return its path."""
    data = load_run(Path(run_dir))
    page = render_html(data, load_findings(data))
    target = Path(run_dir) / REPORT_NAME
    write_text_atomic(target, page)
    return target


def load_findings(data: RunData) -> list[Finding]:
    """findings.json when the run wrote one, else diagnose now (e.g. a run that stopped before writing it)."""
    path = data.run_dir / "findings.json" if data.run_dir else None
    if path is None or not path.is_file():
        return diagnose_data(data)
    try:
        return [Finding.from_dict(f) for f in json.loads(path.read_text(encoding="utf-8"))]
    except (ValueError, TypeError) as error:
        raise UserError(
            f"{path} is not a valid list of findings: {error}; delete it to re-diagnose"
        ) from error


def render_html(data: RunData, findings: list[Finding]) -> str:
    specs: sections.Plots = {}
    body = [
        sections.verdict(data, findings),
        sections.config(data),
        sections.audit(data),
        sections.learning_curves(data, specs),
        sections.lr_schedule(data, specs),
        sections.events(data),
        sections.gradient_flow(data, specs),
        sections.per_class(data, specs),
        sections.confident_errors(data),
        dynamics_section(data, specs),
        *(evaluation.render(data, name, specs) or render_extra(data, name) for name in EXTRA_SECTIONS),
    ]
    name = str(data.setting("output.name") or (data.run_dir.name if data.run_dir else "run"))
    model = data.setting("model.name") or data.setting("model")
    subtitle = " · ".join(str(p) for p in (f"model {model}" if model else None, data.setting("strategy.name"),
                                           data.metrics.get("precision")) if p)  # fmt: skip
    titles = {**NAV_TITLES, **EXTRA_SECTIONS}
    nav = tag("nav", join(tag("a", titles[i], href=f"#{i}") for i in section_ids()))
    scripts = Markup("")
    if specs:
        from plotly.offline import get_plotlyjs

        scripts = join([
            Markup(f"<script>{get_plotlyjs()}</script>"),
            Markup(f'<script type="application/json" id="plot-specs">{script_json(specs)}</script>'),
            Markup(f"<script>{BOOT}</script>"),
        ])  # fmt: skip
    head = join([
        Markup('<meta charset="utf-8">'),
        Markup('<meta name="viewport" content="width=device-width, initial-scale=1">'),
        Markup(f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'),
        tag("title", f"tunesmith report · {name}"),
        Markup(f"<style>{CSS}</style>"),
    ])  # fmt: skip
    page = join([
        tag("header", join([tag("h1", f"tunesmith report: {name}"), tag("p", subtitle)])),
        nav, tag("main", join(body)),
        tag("footer", "Written by tunesmith. Self-contained: opens offline, loads nothing."), scripts,
    ])  # fmt: skip
    return f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head><body>{page}</body></html>\n'
