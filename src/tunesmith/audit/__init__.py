"""The data doctor: checks a data set before training, explains every problem, fixes it on request.

    report = run_audit(tables, cfg.audit, tokenizer=tok, max_length=256)   # findings + statistics
    check_gate(report, cfg.audit.gate)                                      # stop a run on errors
    apply_fixes(tables, report, {"exact_duplicates", "encoding"}, out_dir)  # cleaned copies + fixes.jsonl

Severities (finding id -> severity):

    label_sets          error: a validation/test label never seen in train; warning: a class missing there
    empty_texts         error (training refuses them)
    leakage, near_leakage, conflicting_labels
                        error when the share of the affected split >= audit.error_share, else warning
    exact_duplicates, near_duplicates, label_errors
                        warning when the share >= audit.warn_share, else info
    class_imbalance     warning when largest/smallest >= audit.imbalance_ratio or a class has fewer than
                        audit.min_class_count rows; info for a milder skew (ratio >= 1.5)
    truncation          warning when the truncated share >= audit.truncation_warn_share, else info
    html_entities, mojibake, control_characters, group_values
                        warning
    short_texts, length_outliers, embedding_outliers, rare_groups, group_label_shift
                        info
"""

from __future__ import annotations

from tunesmith.audit.fixes import DEFAULT_FIXES, FIXES, apply_fixes
from tunesmith.audit.gate import check_gate
from tunesmith.audit.html import render_audit_section
from tunesmith.audit.registry import CHECKS, run_audit
from tunesmith.audit.report import AuditReport

__all__ = [
    "CHECKS",
    "DEFAULT_FIXES",
    "FIXES",
    "AuditReport",
    "apply_fixes",
    "check_gate",
    "render_audit_section",
    "run_audit",
]
