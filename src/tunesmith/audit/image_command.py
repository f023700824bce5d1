"""`tunesmith doctor --task image-classification`: the image doctor (tunesmith.audit.images) on a folder or CSV.

Unreadable files are findings here, not errors (the doctor exists to name them); everything else that is
wrong with the input (no class subfolders, a path column pointing nowhere, a model that is not an image
model) is a UserError before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from tunesmith.config.schema import AuditConfig, DataConfig
from tunesmith.errors import UserError

DEFAULT_MODEL = "efficientnet-lite0"


def image_embedder(model_name: str) -> Any:
    """paths -> pooled features of the pre-trained backbone (the label-error check's embedding)."""
    from tunesmith.models.vision import (
        embed_images,
        load_image_classifier,
        model_info,
        resolve_image_model_dir,
    )

    model_dir = resolve_image_model_dir(model_name)
    info = model_info(model_dir, None)
    model = load_image_classifier(model_dir, ["a", "b"], seed=0, image_size=info.image_size).eval()
    return lambda paths: embed_images(model, info, paths)


def image_doctor(
    train: str, validation: str | None, test: str | None, *, path_column: str | None, label: str | None,
    model: str | None, label_errors: bool, json_out: Path | None, quiet: bool,
) -> None:  # fmt: skip
    from tunesmith.audit.command import check_json_path, write_json
    from tunesmith.audit.images import image_audit
    from tunesmith.audit.terminal import render
    from tunesmith.data.images import read_image_tables

    if json_out is not None:
        check_json_path(json_out)
    cfg = DataConfig(train=train, validation=validation, test=test, image=path_column, label=label or "label")
    embed = image_embedder(model or DEFAULT_MODEL) if label_errors else None  # a bad --model: before the scan
    tables = read_image_tables(cfg, strict=False)
    if not any(len(t.frame) for t in tables.values()):
        raise UserError(
            f"{train}: no images to audit; point it at a folder of class subfolders or a CSV of paths."
        )
    console = Console()
    report = image_audit(tables, AuditConfig(label_errors=label_errors), embed=embed)
    render(report, console, quiet=quiet)
    for finding in report.findings:  # the table gives counts; a broken file is only useful by name
        if finding.id.endswith("unreadable_images"):
            for file, error in zip(finding.evidence["files"], finding.evidence["errors"], strict=True):
                console.print(Text(f"unreadable: {file} ({error})", style="red"), soft_wrap=True)
    if json_out is not None:
        write_json(report, json_out)
        console.print(f"audit written to {json_out}", highlight=False)
