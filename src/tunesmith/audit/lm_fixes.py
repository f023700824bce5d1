"""`tunesmith doctor --task causal-lm --fix OUT`: cleaned copies of language-model data files + fixes.jsonl.

The same contract as text classification's --fix (tunesmith.audit.fixes): the inputs are never touched;
every file is rewritten in its own format with all of its columns, minus the removed rows and with the
repaired cells, into a temporary directory beside OUT renamed to OUT at the end; fixes.jsonl has one line
per removed or changed row (split, row, fix, action, reason; before/after for repairs). The findings name
rows of the files as read (positions), so each fix acts on exactly the rows the doctor reported.

Default fixes (safe without looking): exact duplicates, leakage into validation/test (removed from the
earlier split, which the finding names), empty texts / prompts, empty responses, encoding repairs. On
request (--fix-only): near duplicates and near leakage, quoted texts, and examples that max_length cuts
(`long_examples`: longer than --max-length; `cut_responses`: whose response loses tokens).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tunesmith.audit.checks.artifacts import unquote
from tunesmith.audit.checks.encoding import repair
from tunesmith.audit.fixes import Fix, _write_frame, check_out_dir, parse_fixes, publish_fixed
from tunesmith.audit.report import AuditReport

LM_FIXES: dict[str, Fix] = {
    "exact_duplicates": Fix(("audit.exact_duplicates",), "remove", "repeats an earlier example"),
    "leakage": Fix(("audit.leakage",), "remove", "example also appears in {other_split}"),
    "near_leakage": Fix(("audit.near_leakage",), "remove", "near-duplicate of a {other_split} example"),
    "empty_texts": Fix(("audit.empty_texts",), "remove", "empty text or prompt"),
    "empty_responses": Fix(("audit.empty_responses",), "remove", "empty response / assistant turn"),
    "encoding": Fix(
        ("audit.html_entities", "audit.mojibake", "audit.control_characters"),
        "repair",
        "repaired encoding artefacts with ftfy",
    ),  # fmt: skip
    "quotes": Fix(("audit.quoted_texts",), "repair", "removed the literal quotes around the text"),
    "near_duplicates": Fix(("audit.near_duplicates",), "remove", "near-duplicate of an earlier example"),
    "long_examples": Fix(("audit.lm_truncation",), "remove", "longer than max_length: training would cut it"),
    "cut_responses": Fix(("audit.response_truncation",), "remove", "response cut by max_length"),
}
DEFAULT_LM_FIXES = frozenset({"exact_duplicates", "leakage", "empty_texts", "empty_responses", "encoding"})
REPAIRS: dict[str, Callable[[str], str]] = {"encoding": repair, "quotes": unquote}


def parse_lm_fixes(spec: str | None) -> set[str]:
    """'a,b' -> {"a", "b"} (validated); None -> the default fixes."""
    return parse_fixes(spec, LM_FIXES, DEFAULT_LM_FIXES, "causal-lm ")


def apply_lm_fixes(
    files: dict[str, tuple[str, pd.DataFrame, str]], report: AuditReport, fixes: set[str], out_dir: Path
) -> list[Path]:
    """files: split -> (path, the frame as read, its text column for text data); returns the paths written."""
    out_dir = check_out_dir(out_dir)
    plans = {name: _plan(name, frame, text, report, fixes) for name, (_, frame, text) in files.items()}

    def write(tmp: Path) -> list[str]:
        names = []
        for name, (path, frame, _) in files.items():
            suffix = Path(path).suffix.lower() or ".jsonl"
            names.append(f"{name}{suffix}")
            _write_frame(_cleaned(frame, plans[name]), tmp / names[-1], suffix)
        return names

    lines = [plans[name][pos]["record"] for name in files for pos in sorted(plans[name])]
    return publish_fixed(out_dir, write, lines)


def _plan(
    split: str, frame: pd.DataFrame, text: str, report: AuditReport, fixes: set[str]
) -> dict[int, dict[str, Any]]:
    """position -> {"record": fixes.jsonl line, "cells": {column: new value}} (a removal wins)."""
    plan: dict[int, dict[str, Any]] = {}
    for name in sorted(fixes, key=list(LM_FIXES).index):
        fix = LM_FIXES[name]
        for finding in report.findings:
            if finding.id not in fix.findings or not finding.rows or finding.evidence.get("split") != split:
                continue
            reason = fix.reason.format(other_split=finding.evidence.get("other_split", "another split"))
            for pos in finding.rows:
                if not 0 <= pos < len(frame):
                    continue
                base = {"split": split, "row": int(pos), "fix": name, "reason": reason}
                if fix.action == "remove":
                    if plan.get(pos, {}).get("record", {}).get("action") != "remove":
                        plan[pos] = {"record": {**base, "action": "remove"}, "cells": {}}
                    continue
                entry = plan.get(pos)
                if entry is not None and entry["record"]["action"] == "remove":
                    continue
                cells: dict[str, Any] = dict(entry["cells"]) if entry else {}
                changed = _repair_row(frame, pos, text, REPAIRS[name], cells)
                if not changed:
                    continue
                record: dict[str, Any] = entry["record"] if entry else {**base, "action": "repair"}
                if entry and name not in str(record["fix"]).split(","):
                    record.update(fix=f"{record['fix']},{name}", reason=f"{record['reason']}; {reason}")
                record.update(before={c: _cell(frame, pos, c) for c in cells},
                              after={c: _show(v) for c, v in cells.items()})  # fmt: skip
                plan[pos] = {"record": record, "cells": cells}
    return plan


def _columns(frame: pd.DataFrame, text: str) -> list[str]:
    if "messages" in frame.columns and text not in frame.columns:
        return ["messages"]
    if text in frame.columns:
        return [text]
    return [c for c in ("prompt", "response") if c in frame.columns]


def _repair_row(
    frame: pd.DataFrame, pos: int, text: str, fn: Callable[[str], str], cells: dict[str, Any]
) -> bool:
    """Apply `fn` to every string the model reads in the row (on top of earlier repairs in `cells`)."""
    changed = False
    for column in _columns(frame, text):
        value = cells.get(column, frame[column].iat[pos])
        new = _repair_value(value, fn)
        if new is not None and _show(new) != _show(value):
            cells[column] = new
            changed = True
    return changed


def _repair_value(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("[") and stripped.endswith("]"):  # a chat stored as a JSON string
            try:
                chat = json.loads(stripped)
            except ValueError:
                return fn(value)
            fixed = _repair_value(chat, fn)
            return json.dumps(fixed, ensure_ascii=False) if fixed is not None else None
        return fn(value)
    if isinstance(value, list | tuple) or hasattr(value, "tolist"):  # a chat: list of {role, content}
        turns = value.tolist() if hasattr(value, "tolist") else list(value)
        if all(isinstance(t, dict) for t in turns):
            return [{**t, "content": fn(t["content"]) if isinstance(t.get("content"), str) else t.get("content")}
                    for t in turns]  # fmt: skip
    return None


def _cell(frame: pd.DataFrame, pos: int, column: str) -> Any:
    return _show(frame[column].iat[pos])


def _show(value: Any) -> Any:
    """A JSON-ready form of a cell (chats from Parquet come back as numpy arrays)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and value != value:
        return None
    return value


def _cleaned(frame: pd.DataFrame, plan: dict[int, dict[str, Any]]) -> pd.DataFrame:
    out = frame.copy().reset_index(drop=True)
    for pos, entry in plan.items():
        for column, value in entry["cells"].items():
            if isinstance(value, list):
                out[column] = out[column].astype(object)
                out.at[pos, column] = value
            else:
                out.iat[pos, out.columns.get_loc(column)] = value
    removed = [pos for pos, entry in plan.items() if entry["record"]["action"] == "remove"]
    return out.drop(index=removed).reset_index(drop=True)
