"""`--fix`: write cleaned copies of the data files and fixes.jsonl (one line per removed or changed row).

Fixes are chosen by id (see FIXES); DEFAULT_FIXES are the ones safe to apply without looking: they remove
rows that are certainly redundant or unusable and repair broken encodings. Rows are removed from the split
that a finding names (for leakage: the earlier split, so validation/test stay the yardstick). Inputs are
never touched: everything is written to a temporary directory beside OUT and renamed to OUT at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tunesmith.audit.checks.artifacts import unquote
from tunesmith.audit.checks.encoding import repair
from tunesmith.audit.report import AuditReport
from tunesmith.data import formats
from tunesmith.data.types import GROUP, LABEL, ROW, TEXT, Table
from tunesmith.errors import UserError
from tunesmith.findings import Finding


@dataclass(frozen=True)
class Fix:
    findings: tuple[str, ...]  # finding ids this fix acts on
    action: str  # "remove" | "repair"
    reason: str


FIXES: dict[str, Fix] = {
    "exact_duplicates": Fix(("audit.exact_duplicates",), "remove", "repeats an earlier row's text and label"),
    "conflicting_labels": Fix(
        ("audit.conflicting_labels",), "remove", "same text appears with different labels"
    ),
    "leakage": Fix(("audit.leakage",), "remove", "text also appears in {other_split}"),
    "near_leakage": Fix(("audit.near_leakage",), "remove", "near-duplicate of a {other_split} text"),
    "empty_texts": Fix(("audit.empty_texts",), "remove", "empty text"),
    "encoding": Fix(
        ("audit.html_entities", "audit.mojibake", "audit.control_characters"),
        "repair",
        "repaired encoding artefacts with ftfy",
    ),  # fmt: skip
    "quotes": Fix(
        ("audit.quoted_texts",), "repair", "removed the literal quotes an export wrapped around the text"
    ),
    "near_duplicates": Fix(("audit.near_duplicates",), "remove", "near-duplicate of an earlier text"),
    "short_texts": Fix(("audit.short_texts",), "remove", "very short text"),
    "label_errors": Fix(
        ("audit.label_errors", "training.label_errors"),
        "remove",
        "likely mislabelled (confident learning or the run's training dynamics)",
    ),
}
REPAIRS: dict[str, Callable[[str], str]] = {"encoding": repair, "quotes": unquote}
DEFAULT_FIXES = frozenset(
    {"exact_duplicates", "conflicting_labels", "leakage", "near_leakage", "empty_texts", "encoding"}
)
FIXES_FILE = "fixes.jsonl"


def parse_fixes(
    spec: str | None,
    known: Iterable[str] | None = None,
    default: frozenset[str] = DEFAULT_FIXES,
    kind: str = "",
) -> set[str]:
    """'a,b' -> {"a", "b"} (validated against `known`, the text-classification fixes unless given);
    None -> `default`. `kind` names the task in the message (e.g. "causal-lm ")."""
    names = list(FIXES if known is None else known)
    if spec is None:
        return set(default)
    chosen = {part.strip().removeprefix("audit.") for part in spec.split(",") if part.strip()}
    unknown = sorted(chosen - set(names))
    if unknown or not chosen:
        raise UserError(
            f"--fix-only: unknown {kind}fix {', '.join(repr(u) for u in unknown) or '(none given)'}; "
            f"choose from {', '.join(names)} (comma-separated)."
        )
    return chosen


def check_out_dir(out_dir: Path) -> Path:
    """The resolved --fix directory; UserError unless it is new or an empty directory."""
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        what = "is a file" if not out_dir.is_dir() else "already exists and is not empty"
        raise UserError(f"--fix: {out_dir} {what}; choose a new or empty directory for the cleaned files.")
    return out_dir


def apply_fixes(tables: dict[str, Table], report: AuditReport, fixes: set[str], out_dir: Path) -> list[Path]:
    """Write cleaned files for every table plus fixes.jsonl under `out_dir`; return the paths written."""
    unknown = sorted(set(fixes) - set(FIXES))
    if unknown:
        raise UserError(f"unknown fix {', '.join(unknown)}; choose from {', '.join(FIXES)}.")
    out_dir = check_out_dir(out_dir)
    records = _plan(tables, report, fixes)
    lines = [rec for name in tables for _, rec in sorted(records.get(name, {}).items())]
    return publish_fixed(
        out_dir,
        lambda tmp: [_write_split(table, records.get(name, {}), tmp) for name, table in tables.items()],
        lines,
    )


def publish_fixed(
    out_dir: Path, write: Callable[[Path], list[str]], lines: list[dict[str, Any]]
) -> list[Path]:
    """Build the --fix directory in a temporary sibling (`write(tmp)` writes the cleaned files and returns
    their names; `lines` go to fixes.jsonl) and rename it into place: a failure leaves nothing behind.
    `out_dir` is new or empty (check_out_dir). Returns the paths written."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        names = write(tmp)
        _write_text(tmp / FIXES_FILE, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in lines))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; an output directory is ordinarily readable
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); rename cannot replace a directory portably
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out_dir / name for name in [*names, FIXES_FILE]]


def _plan(
    tables: dict[str, Table], report: AuditReport, fixes: set[str]
) -> dict[str, dict[int, dict[str, Any]]]:
    """split -> position -> the fixes.jsonl record for that row (a removal wins over a repair)."""
    records: dict[str, dict[int, dict[str, Any]]] = {}
    for name in sorted(fixes, key=list(FIXES).index):
        fix = FIXES[name]
        for finding in report.findings:
            if finding.id not in fix.findings or not finding.rows:
                continue
            split = str(finding.evidence.get("split", ""))
            if split not in tables:
                continue
            plan = records.setdefault(split, {})
            for pos in finding.rows:
                if fix.action == "remove" and (pos not in plan or plan[pos]["action"] != "remove"):
                    plan[pos] = _record(tables[split], pos, name, "remove", _reason(fix, finding))
                elif fix.action == "repair" and (pos not in plan or plan[pos]["action"] == "repair"):
                    earlier = plan.get(pos)
                    before = _text(tables[split], pos)
                    after = REPAIRS[name](earlier["after"] if earlier else before)
                    if earlier and after != earlier["after"]:  # two repairs of one row: one record, both
                        earlier.update(after=after, fix=f"{earlier['fix']},{name}",
                                       reason=f"{earlier['reason']}; {fix.reason}")  # fmt: skip
                    elif not earlier and after != before:
                        plan[pos] = _record(tables[split], pos, name, "repair", fix.reason, before, after)
    return records


def _reason(fix: Fix, finding: Finding) -> str:
    return fix.reason.format(other_split=finding.evidence.get("other_split", "another split"))


def _text(table: Table, pos: int) -> str:
    value = table.frame[TEXT].iat[pos]
    return "" if value is None or pd.isna(value) else str(value)


def _record(
    table: Table,
    pos: int,
    fix: str,
    action: str,
    reason: str,
    before: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    row = int(table.frame[ROW].iat[pos]) if ROW in table.frame.columns else pos
    record: dict[str, Any] = {"split": table.name, "row": row, "fix": fix, "action": action, "reason": reason}
    if action == "repair":
        record.update(before=before, after=after)
    return record


def _write_split(table: Table, plan: dict[int, dict[str, Any]], tmp: Path) -> str:
    raw, suffix = _raw_frame(table)
    frame = (raw if raw is not None else _mapped_frame(table)).copy()
    col = list(frame.columns).index(table.column(TEXT))
    for pos, rec in plan.items():
        if rec["action"] == "repair":
            frame.iat[pos, col] = rec["after"]
    removed = [pos for pos, rec in plan.items() if rec["action"] == "remove"]
    frame = frame.drop(index=frame.index[removed]).reset_index(drop=True)
    name = f"{table.name}{suffix}"
    _write_frame(frame, tmp / name, suffix)
    return name


def _raw_frame(table: Table) -> tuple[pd.DataFrame | None, str]:
    """The file as the user wrote it (all columns), or None when it cannot be re-read row for row."""
    if table.path.startswith("builtin:"):
        from tunesmith.data.demo import demo_table
        from tunesmith.data.loaders import BUILTIN_DATASETS

        raw = demo_table(BUILTIN_DATASETS[table.path]) if table.path in BUILTIN_DATASETS else None
        return _aligned(raw, table), ".tsv"
    path = Path(table.path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in formats.SUPPORTED or not path.is_file():
        return None, ".tsv"
    data = path.read_bytes()
    src = f"data.{table.name}: {table.path}"
    if suffix == ".parquet":
        raw = formats.read_parquet(data, src)
    elif suffix in (".csv", ".tsv"):
        raw = formats.read_delimited(formats.decode_utf8(data, src), suffix, src)
    else:
        raw = formats.read_json(formats.decode_utf8(data, src), src)
    raw = _aligned(raw, table)
    return raw, suffix if raw is not None else ".tsv"


def _aligned(raw: pd.DataFrame | None, table: Table) -> pd.DataFrame | None:
    if raw is None or len(raw) != len(table.frame) or table.column(TEXT) not in raw.columns:
        return None
    return raw.reset_index(drop=True)


def _mapped_frame(table: Table) -> pd.DataFrame:
    keep = [c for c in (TEXT, LABEL, GROUP) if c in table.frame.columns]
    return table.frame[keep].rename(columns={c: table.column(c) for c in keep}).reset_index(drop=True)


def _write_frame(frame: pd.DataFrame, path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix in (".jsonl", ".json"):
        _write_text(path, frame.to_json(orient="records", lines=True, force_ascii=False) or "")
    else:
        _write_text(path, frame.to_csv(sep="\t" if suffix == ".tsv" else ",", index=False))


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
