"""The audit's outputs: the gate, audit.json round trip, the HTML section and the terminal table."""

from __future__ import annotations

import io
import json

import pytest
from audit_synth import clean_rows, table
from rich.console import Console

from tunesmith.audit import AuditReport, check_gate, render_audit_section, run_audit
from tunesmith.audit.terminal import render
from tunesmith.config.schema import AuditConfig
from tunesmith.errors import UserError


@pytest.fixture(scope="module")
def report() -> AuditReport:
    rows = clean_rows(200, 31)
    rows[1] = ("<script>alert(1)</script> [bold red]not markup[/] &amp; more words here", rows[1][1])
    rows[2] = ("   ", rows[2][1])
    rows.append((rows[5][0].upper(), rows[5][1]))
    return run_audit({"train": table("train", rows)}, AuditConfig(label_errors=False))


def test_gate(report: AuditReport) -> None:
    assert report.counts()["error"] == 1  # the empty text
    check_gate(report, "off")
    check_gate(report, "warn")
    with pytest.raises(UserError, match=r"1 error finding \(audit.empty_texts\).*audit.gate=warn"):
        check_gate(report, "error")
    clean = run_audit({"train": table("train", clean_rows(100, 32))}, AuditConfig(label_errors=False))
    check_gate(clean, "error")  # warnings and infos never stop a run
    with pytest.raises(UserError, match="audit.gate must be one of"):
        check_gate(report, "strict")


def test_audit_json_round_trip(report: AuditReport) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["version"] == 1 and data["counts"] == report.counts()
    again = AuditReport.from_dict(data)
    assert [f.to_dict() for f in again.findings] == [f.to_dict() for f in report.findings]
    for finding in data["findings"]:
        assert finding["stage"] == "audit" and finding["recommendation"] and finding["evidence"]
        assert finding["severity"] in ("error", "warning", "info")
    severities = [f.severity for f in report.findings]
    order = {"error": 0, "warning": 1, "info": 2}
    assert severities == sorted(severities, key=order.__getitem__)  # worst first


def test_html_section_escapes_the_data(report: AuditReport) -> None:
    html = render_audit_section(report.to_dict())
    assert html.startswith('<section class="ts-audit"') and "</section>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    for finding in report.findings:
        assert finding.id in html
    assert "No problems found." in render_audit_section({"findings": [], "stats": {}})


def test_terminal_prints_data_as_written(report: AuditReport) -> None:
    out = io.StringIO()
    render(report, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "data audit of 201 rows: 1 error" in text
    assert "empty text" in text and "audit.exact_duplicates" in text
    quiet = io.StringIO()
    render(report, Console(file=quiet, width=200), quiet=True)
    assert quiet.getvalue().count("\n") == 1
