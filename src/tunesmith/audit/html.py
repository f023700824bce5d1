"""The audit as an HTML fragment for report.html: self-contained (inline style, no scripts or external
assets), every value from the data escaped. Renders audit.json as written; computes nothing."""

from __future__ import annotations

import json
from html import escape
from typing import Any

_STYLE = """
.ts-audit table{border-collapse:collapse;width:100%;font-size:0.9em}
.ts-audit th,.ts-audit td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
.ts-audit .sev{font-weight:bold;border-radius:3px;padding:1px 6px;color:#fff}
.ts-audit .sev-error{background:#b3261e}.ts-audit .sev-warning{background:#b26a00}.ts-audit .sev-info{background:#44617b}
.ts-audit pre{white-space:pre-wrap;word-break:break-word;max-height:20em;overflow:auto;background:#f6f6f6;padding:4px}
.ts-audit code{background:#f1f1f1;padding:0 3px}
"""
_MAX_EVIDENCE_CHARS = 4000


def render_audit_section(audit: dict[str, Any]) -> str:
    findings = audit.get("findings", [])
    parts = [f'<section class="ts-audit" id="audit">\n<style>{_STYLE}</style>\n<h2>Data audit</h2>']
    parts.append(_summary(findings, audit.get("stats", {})))
    if findings:
        parts.append(_findings_table(findings))
    else:
        parts.append("<p>No problems found.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _summary(findings: list[dict[str, Any]], stats: dict[str, Any]) -> str:
    counts = {s: sum(1 for f in findings if f.get("severity") == s) for s in ("error", "warning", "info")}
    badges = " ".join(f'<span class="sev sev-{s}">{n} {escape(s)}</span>' for s, n in counts.items())
    rows = []
    for name, split in stats.get("splits", {}).items():
        labels = ", ".join(f"{escape(str(k))}: {int(v)}" for k, v in split.get("labels", {}).items())
        rows.append(
            f"<tr><td>{escape(str(name))}</td><td>{int(split.get('rows', 0))}</td>"
            f"<td>{int(split.get('distinct_texts', 0))}</td><td>{labels}</td></tr>"
        )
    table = (
        "<table><thead><tr><th>split</th><th>rows</th><th>distinct texts</th><th>labels</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else ""
    )
    skipped = stats.get("checks_skipped", {})
    note = (
        "<p>Skipped: "
        + "; ".join(f"{escape(str(k))} ({escape(str(v))})" for k, v in skipped.items())
        + "</p>"
        if skipped
        else ""
    )
    return f"<p>{badges}</p>{table}{note}"


def _findings_table(findings: list[dict[str, Any]]) -> str:
    head = "<tr><th>severity</th><th>finding</th><th>split</th><th>rows</th><th>recommendation</th></tr>"
    body = "".join(_finding_row(f) for f in findings)
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def _finding_row(finding: dict[str, Any]) -> str:
    severity = str(finding.get("severity", "info"))
    evidence = finding.get("evidence") or {}
    rows = finding.get("rows")
    patch = finding.get("config_patch")
    patch_html = (
        "<br>Recipe change: "
        + ", ".join(f"<code>{escape(k)}: {escape(json.dumps(v))}</code>" for k, v in patch.items())
        if patch
        else ""
    )
    dump = json.dumps(evidence, indent=1, ensure_ascii=False, default=str)
    if len(dump) > _MAX_EVIDENCE_CHARS:
        dump = dump[:_MAX_EVIDENCE_CHARS] + "\n…"
    sev_class = severity if severity in ("error", "warning", "info") else "info"
    return (
        f'<tr><td><span class="sev sev-{sev_class}">{escape(severity)}</span></td>'
        f"<td><strong>{escape(str(finding.get('title', '')))}</strong><br><code>{escape(str(finding.get('id', '')))}</code>"
        f"<details><summary>evidence</summary><pre>{escape(dump)}</pre></details></td>"
        f"<td>{escape(str(evidence.get('split', '')))}</td>"
        f"<td>{len(rows) if rows else ''}</td>"
        f"<td>{escape(str(finding.get('recommendation', '')))}{patch_html}</td></tr>"
    )
