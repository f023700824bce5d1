"""The registry of checks and `run_audit`, which runs them in order and gathers one AuditReport.

Each check is a function `(AuditContext) -> list[Finding]`; detection never renders (see terminal.py and
html.py). Checks that need embeddings run only when audit.label_errors is on or an embedder is injected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tunesmith.audit.checks import (
    artifacts,
    duplicates,
    encoding,
    groups,
    imbalance,
    label_errors,
    label_sets,
    leakage,
    lengths,
    near_duplicates,
    outliers,
    size,
    text_kind,
)
from tunesmith.audit.context import AuditContext, Embedder
from tunesmith.audit.report import AuditReport
from tunesmith.config.schema import AuditConfig
from tunesmith.data.types import LABEL, TEXT, Table
from tunesmith.errors import UserError
from tunesmith.findings import SEVERITY_ORDER, Finding

log = logging.getLogger(__name__)

Needs = Literal["data", "embeddings", "label_errors"]


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[AuditContext], list[Finding]]
    needs: Needs = "data"
    summary: str = ""


CHECKS: tuple[Check, ...] = (
    Check("label_sets", label_sets.label_sets, summary="labels that differ between splits"),
    Check("empty_texts", lengths.empty_texts, summary="missing or blank texts"),
    Check("label_in_text", text_kind.label_in_text, summary="a text column that determines the label"),
    Check("numeric_texts", text_kind.numeric_texts, summary="a text column of numbers only"),
    Check("exact_duplicates", duplicates.exact_duplicates, summary="repeated texts (NFKC, case, whitespace)"),
    Check("conflicting_labels", duplicates.conflicting_labels, summary="one text, several labels"),
    Check("near_duplicates", near_duplicates.near_duplicates, summary="MinHash LSH over word shingles"),
    Check("leakage", leakage.leakage, summary="texts shared between splits, exact and near"),
    Check("class_imbalance", imbalance.class_imbalance, summary="class ratios and tiny classes"),
    Check("few_examples", size.few_examples, summary="few rows per class: setfit / zero-shot"),
    Check("short_texts", lengths.short_texts, summary="texts of a word or two"),
    Check("truncation", lengths.truncation, summary="texts longer than model.max_length"),
    Check("quoted_texts", artifacts.quoted_texts, summary="every text wrapped in literal quotes"),
    Check("encoding", encoding.encoding, summary="HTML entities, mojibake, control characters"),
    Check("length_outliers", outliers.length_outliers, summary="unusually long or short texts"),
    Check("groups", groups.groups, summary="garbled or rare group values, label-mix shifts"),
    Check("label_errors", label_errors.label_errors, "label_errors", "confident learning on embeddings"),
    Check("embedding_outliers", outliers.embedding_outliers, "embeddings", "texts far from all others"),
)


def run_audit(
    tables: dict[str, Table],
    cfg: AuditConfig,
    *,
    tokenizer: Any = None,
    max_length: int = 256,
    embedder: Embedder | None = None,
    balance: str | None = None,
) -> AuditReport:
    """Run every enabled check over `tables` (keys train / validation / test) and collect the findings.

    `balance` is what the run already does about class imbalance (class-weights | oversample), so the
    imbalance check does not recommend what is already on."""
    _validate(tables)
    ctx = AuditContext(
        tables, cfg, tokenizer=tokenizer, max_length=max_length, embedder=embedder, balance=balance
    )
    findings: list[Finding] = []
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for check in CHECKS:
        reason = _skip_reason(check, ctx)
        if reason:
            skipped[check.name] = reason
            continue
        start = time.perf_counter()
        findings.extend(check.run(ctx))
        timings[check.name] = round(time.perf_counter() - start, 3)
        log.debug("audit check %s: %.2fs", check.name, timings[check.name])
    findings.sort(key=lambda f: -SEVERITY_ORDER[f.severity])  # stable: check order within a severity
    stats = _stats(ctx) | {"checks_run": list(timings), "checks_skipped": skipped, "timings_s": timings}
    return AuditReport(findings, stats)


def _validate(tables: dict[str, Table]) -> None:
    if "train" not in tables:
        raise UserError("the audit needs a 'train' table; pass the training file first.")
    for name, table in tables.items():
        missing = [c for c in (TEXT, LABEL) if c not in table.frame.columns]
        if missing:
            raise UserError(
                f"data.{name}: {table.path} has no mapped {', '.join(missing)} column; load it with read_table."
            )
        if table.frame.empty:
            raise UserError(f"data.{name}: {table.path} has no rows; point it at a file with data rows.")


def _skip_reason(check: Check, ctx: AuditContext) -> str | None:
    if check.needs == "label_errors" and not ctx.cfg.label_errors:
        return "audit.label_errors is off"
    if check.needs == "embeddings" and not ctx.embeddings_enabled:
        return "needs embeddings: turn on audit.label_errors or pass an embedder"
    return None


def _stats(ctx: AuditContext) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    for split in ctx.splits:
        lengths = ctx.token_lengths[split]
        labels, counts = np.unique(ctx.labels[split].astype(str), return_counts=True)
        splits[split] = {
            "path": ctx.tables[split].path,
            "rows": len(ctx.texts[split]),
            "empty": int(ctx.empty[split].sum()),
            "distinct_texts": int(len(np.unique(ctx.keys[split][ctx.keys[split] >= 0]))),
            "labels": {str(k): int(v) for k, v in zip(labels, counts, strict=False)},
            "tokens_median": lengths.percentile(50),
            "tokens_p95": lengths.percentile(95),
            "tokens_max": lengths.max,
            "tokens_sampled": int(len(lengths.sample)),
        }
    return {
        "splits": splits,
        "max_length": ctx.max_length,
        "tokens_counted_with": "tokenizer" if ctx.tokenizer is not None else "whitespace words",
        "config": ctx.cfg.model_dump(),
    }
