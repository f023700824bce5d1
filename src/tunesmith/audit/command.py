"""`tunesmith doctor`: audit data files, print the findings, optionally write audit.json and cleaned files.

The lead registers it with `app.command("doctor")(doctor)`; bad input raises UserError (exit 2 there).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tunesmith.audit.fixes import DEFAULT_FIXES, FIXES, apply_fixes, check_out_dir, parse_fixes
from tunesmith.audit.lm_fixes import DEFAULT_LM_FIXES, LM_FIXES
from tunesmith.audit.registry import run_audit
from tunesmith.audit.report import AuditReport
from tunesmith.audit.terminal import render
from tunesmith.config.schema import AuditConfig
from tunesmith.data.types import Table
from tunesmith.errors import UserError

log = logging.getLogger(__name__)

_FIX_HELP = (
    f"comma-separated fixes to apply with --fix: {', '.join(FIXES)} "
    f"(default: {', '.join(sorted(DEFAULT_FIXES))}); causal-lm: {', '.join(LM_FIXES)} "
    f"(default: {', '.join(sorted(DEFAULT_LM_FIXES))})"
)


def doctor(
    train: Annotated[
        str, typer.Argument(help="training file (.csv .tsv .jsonl .parquet) or builtin:drugreview/train")
    ],
    text: Annotated[
        str | None, typer.Option("--text", help="column holding the text (causal-lm: default 'text')")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="column holding the label (text-classification)")
    ] = None,
    validation: Annotated[str | None, typer.Option("--validation", help="validation file")] = None,
    test: Annotated[str | None, typer.Option("--test", help="test file")] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="optional group column, e.g. condition")
    ] = None,
    fix: Annotated[
        Path | None, typer.Option("--fix", help="write cleaned files + fixes.jsonl to this new directory")
    ] = None,
    fix_only: Annotated[str | None, typer.Option("--fix-only", help=_FIX_HELP)] = None,
    label_errors: Annotated[
        bool, typer.Option("--label-errors/--no-label-errors", help="confident learning on MiniLM embeddings")
    ] = True,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the audit (audit.json) to this file")
    ] = None,
    max_length: Annotated[
        int, typer.Option("--max-length", min=1, help="model max length for truncation")
    ] = 256,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="tokenizer / encoder: minilm (causal-lm: smollm2) or a local HF directory"
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the summary line")] = False,
    run: Annotated[
        Path | None,
        typer.Option("--run", help="a run directory whose training.label_errors finding --fix also applies"),
    ] = None,
    task: Annotated[
        str,
        typer.Option(
            "--task", help="text-classification, causal-lm or image-classification (a folder or CSV)"
        ),
    ] = "text-classification",
    train_on_prompt: Annotated[
        bool, typer.Option("--train-on-prompt", help="causal-lm: count prompt tokens as loss tokens")
    ] = False,
) -> None:
    """Audit a data set: duplicates, leakage, label errors, imbalance, encoding, groups; fix on request."""
    if task == "causal-lm":
        from tunesmith.audit.lm_command import lm_doctor

        lm_doctor(
            train, validation, test, text=text, label=label, model=model, max_length=max_length,
            json_out=json_out, fix=fix, fix_only=fix_only, quiet=quiet, train_on_prompt=train_on_prompt,
        )  # fmt: skip
        return
    if task == "image-classification":  # a folder of class subfolders or a CSV (--text: its path column)
        from tunesmith.audit.image_command import image_doctor

        if fix is not None:
            raise UserError("--fix: not available for images; remove or move the files the findings name.")
        image_doctor(
            train, validation, test, path_column=text, label=label, model=model, label_errors=label_errors,
            json_out=json_out, quiet=quiet,
        )  # fmt: skip
        return
    if task != "text-classification":
        raise UserError(
            f"--task: unknown task '{task}'; use text-classification, causal-lm or image-classification."
        )
    model = model or "minilm"
    if text is None or label is None:
        missing = " and ".join(f"--{k}" for k, v in (("text", text), ("label", label)) if v is None)
        raise UserError(f"{missing}: name the columns holding the text and the label (e.g. --text review "
                        "--label rating), or pass --task causal-lm for language-model data.")  # fmt: skip
    if text == label:  # the model would read the label as its input (data.text == data.label in a recipe)
        raise UserError(
            f"--text and --label both name the column '{text}'; set --text to the column holding the input text."
        )
    if fix_only is not None and fix is None:
        raise UserError("--fix-only chooses which fixes --fix applies; add --fix OUT_DIR.")
    if run is not None and fix is None:
        raise UserError("--run adds a run's label-error finding to what --fix removes; add --fix OUT_DIR.")
    fixes = parse_fixes(fix_only)
    if fix is not None:
        check_out_dir(fix)  # before any work, so a bad --fix never leaves audit.json behind
    if json_out is not None:
        check_json_path(json_out)
    run_findings = run_label_errors(run) if run is not None else []
    console = Console()
    tables = _load(train, validation, test, text, label, group)
    tokenizer = _tokenizer(model, required=label_errors, max_length=max_length)
    embedder = _embedder(model, max_length) if label_errors else None
    cfg = AuditConfig(label_errors=label_errors)
    with console.status("auditing the data…", spinner="dots") if not quiet else _Null():
        report = run_audit(tables, cfg, tokenizer=tokenizer, max_length=max_length, embedder=embedder)
    render(report, console, quiet=quiet)
    if json_out is not None:
        write_json(report, json_out)
        console.print(f"audit written to {json_out}", highlight=False)
    if fix is not None:
        report = AuditReport([*report.findings, *run_findings], report.stats)
        paths = apply_fixes(tables, report, fixes, fix)
        changed = len(paths[-1].read_text(encoding="utf-8").splitlines())
        console.print(
            f"{changed} rows removed or repaired; cleaned files in {paths[-1].parent}", highlight=False
        )


def run_label_errors(run_dir: Path) -> list[Any]:
    """The training.label_errors finding of a run (from findings.json, else diagnosed from its files)."""
    from tunesmith.diagnosis.rundata import load_run
    from tunesmith.findings import Finding

    data = load_run(run_dir)
    path = Path(run_dir) / "findings.json"
    if path.is_file():
        try:
            found = [Finding.from_dict(f) for f in json.loads(path.read_text(encoding="utf-8"))]
        except (ValueError, TypeError) as error:
            raise UserError(f"--run: {path} is not a valid list of findings: {error}") from error
    else:
        from tunesmith.diagnosis import diagnose_data

        found = diagnose_data(data, ["label_errors"])
    return [f for f in found if f.id == "training.label_errors"]


def _load(
    train: str, validation: str | None, test: str | None, text: str, label: str, group: str | None
) -> dict[str, Table]:
    from tunesmith.data.loaders import read_table

    paths = {"train": train, "validation": validation, "test": test}
    return {
        name: read_table(path, name, text, label, group) for name, path in paths.items() if path is not None
    }


def _tokenizer(model: str, required: bool, max_length: int | None = None) -> Any:
    """The model's tokenizer for exact token counts; without it (and no label errors) count words."""
    from tunesmith.models.registry import resolve_model_dir

    try:
        path = resolve_model_dir(model)
    except UserError:
        if required:
            raise
        log.warning("no tokenizer for '%s': text lengths are counted in words", model)
        return None
    if max_length is not None:
        from tunesmith.models.checks import check_max_length

        check_max_length(path, max_length, key="--max-length")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _embedder(model: str, max_length: int) -> Any:
    from tunesmith.audit.embeddings import minilm_embedder

    return minilm_embedder(max_length=max_length, model=model)


def check_json_path(path: Path) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"--json: {path} is a directory; give a file name such as {path / 'audit.json'}.")
    return path


def write_json(report: AuditReport, path: Path) -> None:
    """audit.json, written to a temporary file and renamed so a crash never leaves half of it."""
    path = check_json_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(report.to_dict(), handle, indent=1, ensure_ascii=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
