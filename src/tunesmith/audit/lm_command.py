"""`tunesmith doctor --task causal-lm`: the language-model doctor (tunesmith.audit.lm) from the command line.

The data shape is read from the columns (text, prompt+response, messages; `--text COL` names the text
column); token counts use the model's own tokenizer and chat template, as training will.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rich.console import Console

from tunesmith.audit.lm import LMSplitRows, read_lm_split, run_lm_audit
from tunesmith.audit.terminal import render
from tunesmith.config.schema import AuditConfig
from tunesmith.errors import UserError

log = logging.getLogger(__name__)


def lm_doctor(
    train: str,
    validation: str | None,
    test: str | None,
    *,
    text: str | None,
    label: str | None,
    model: str | None,
    max_length: int,
    json_out: Path | None,
    fix: Path | None,
    fix_only: str | None = None,
    quiet: bool,
    train_on_prompt: bool,
) -> None:
    from tunesmith.audit.command import check_json_path, write_json

    if label is not None:
        raise UserError(
            "--label: causal-lm data has no label column; drop --label (or use --task text-classification)."
        )
    from tunesmith.audit.lm_fixes import apply_lm_fixes, parse_lm_fixes

    if fix_only is not None and fix is None:
        raise UserError("--fix-only chooses which fixes --fix applies; add --fix OUT_DIR.")
    fixes = parse_lm_fixes(fix_only)
    if fix is not None:
        from tunesmith.audit.fixes import check_out_dir

        check_out_dir(fix)  # before any work, so a bad --fix never leaves audit.json behind
    if json_out is not None:
        check_json_path(json_out)
    splits = load_splits({"train": train, "validation": validation, "test": test}, text)
    tokenizer = lm_tokenizer(model or "smollm2", max_length)
    console = Console()
    report = run_lm_audit(
        splits, AuditConfig(label_errors=False), tokenizer=tokenizer, max_length=max_length,
        train_on_prompt=train_on_prompt,
    )  # fmt: skip
    render(report, console, quiet=quiet)
    if json_out is not None:
        write_json(report, json_out)
        console.print(f"audit written to {json_out}", highlight=False)
    if fix is not None:
        from tunesmith.data.lm import read_lm_file

        paths = {"train": train, "validation": validation, "test": test}
        files = {
            name: (path, read_lm_file(path, name), text or "text") for name, path in paths.items() if path
        }
        written = apply_lm_fixes(files, report, fixes, fix)
        changed = len(written[-1].read_text(encoding="utf-8").splitlines())
        console.print(
            f"{changed} rows removed or repaired; cleaned files in {written[-1].parent}", highlight=False
        )


def load_splits(paths: dict[str, str | None], text: str | None) -> dict[str, LMSplitRows]:
    from tunesmith.data.lm import read_lm_file

    splits = {}
    for name, path in paths.items():
        if path is None:
            continue
        frame = read_lm_file(path, name)
        if text is not None:
            if text not in frame.columns:
                raise UserError(f"--text: {path} has no column '{text}' (columns: "
                                f"{', '.join(map(str, frame.columns))}); name the column holding the text.")  # fmt: skip
            frame = frame[[text]].rename(columns={text: "text"})
        if frame.empty:
            raise UserError(f"data.{name}: {path} has no rows; point it at a file with data rows.")
        splits[name] = read_lm_split(name, path, frame)
    return splits


def lm_tokenizer(model: str, max_length: int) -> Any:
    """The causal LM's tokenizer: an embedded model's cached tokenizer (no weight conversion), or a local
    directory's."""
    from transformers import AutoTokenizer

    from tunesmith.models.gguf_cache import cached_tokenizer_dir

    path: Path
    if model == "smollm2":
        path = cached_tokenizer_dir(model)
    else:
        path = Path(model).expanduser()
        if not (path / "tokenizer_config.json").is_file() and not (path / "tokenizer.json").is_file():
            raise UserError(f"--model: {model} is not smollm2 or a local directory with a tokenizer; "
                            "give the causal LM you will train.")  # fmt: skip
        from tunesmith.models.checks import check_max_length

        if (path / "config.json").is_file():
            check_max_length(path, max_length, key="--max-length")
    return AutoTokenizer.from_pretrained(path)
