"""Image data for `task: image-classification`: folders of class subfolders, or CSV / Parquet path lists.

A data source is one of
- a folder with one subfolder per class (`dir/cat/1.png`, `dir/dog/2.jpg`); the validation split is held
  out of it (stratified, seeded) unless data.validation names another such folder;
- a folder with `train/`, `val/` (or `validation/`) and `test/` folders of class subfolders;
- a .csv / .tsv / .jsonl / .parquet file with a path column (data.image, default `path`) and a label column
  (data.label); paths are relative to the file.

The loaded tables are the text pipeline's tables with the image's absolute path in the TEXT column, so the
validation split, balancing, label checks and per-example records are the text code, unchanged. Every image
is opened and fully decoded here (Pillow), so an unreadable or truncated file stops the run before anything
is written, naming the file. Width, height and mode are kept in the table for the image doctor.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from tunesmith.config.schema import DataConfig
from tunesmith.data.loaders import read_table
from tunesmith.data.prepare import bundle_from_tables
from tunesmith.data.types import LABEL, ROW, TEXT, DataBundle, Table
from tunesmith.data.validate import validate_for_training
from tunesmith.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SPLIT_FOLDERS = {"train": ("train",), "validation": ("val", "validation", "valid"), "test": ("test",)}
DEFAULT_PATH_COLUMN = "path"
# Extra columns of an image table (beside text = path, label, row): what the doctor's outliers read.
WIDTH, HEIGHT, MODE, ERROR = "width", "height", "mode", "error"


def image_column(cfg: DataConfig) -> str:
    return cfg.image or DEFAULT_PATH_COLUMN


def read_image_tables(cfg: DataConfig, *, strict: bool = True) -> dict[str, Table]:
    """Tables train / validation / test from the recipe's folders or path files.

    strict (training): the first unreadable image raises UserError; otherwise (the doctor) it is kept with
    its error in the ERROR column."""
    sources = {"train": cfg.train, "validation": cfg.validation, "test": cfg.test}
    tables: dict[str, Table] = {}
    root = Path(cfg.train).expanduser()
    if root.is_dir() and _split_folder(root, "train") is not None:
        if cfg.validation or cfg.test:
            raise UserError(
                f"data.train: {cfg.train} holds train/ (and val/, test/) folders already; remove "
                "data.validation / data.test, or point data.train at a folder of class subfolders."
            )
        for name in SPLIT_FOLDERS:
            folder = _split_folder(root, name)
            if folder is not None:
                tables[name] = _folder_table(folder, name, str(folder))
    else:
        for name, source in sources.items():
            if source is not None:
                tables[name] = _read_source(source, name, cfg)
    for table in tables.values():
        scan_images(table, strict=strict)
    return tables


def prepare_image_data(cfg: DataConfig) -> tuple[dict[str, Table], DataBundle]:
    """Read, decode-check, validate and split: the image twin of `tunesmith.data.prepare.prepare_data`."""
    tables = read_image_tables(cfg)
    validate_for_training(tables)
    # data.augment is applied per batch for images (tunesmith.data.image_ops), never as copied rows.
    return tables, bundle_from_tables(tables, cfg.model_copy(update={"augment": None}))


def _split_folder(root: Path, name: str) -> Path | None:
    for candidate in SPLIT_FOLDERS[name]:
        if (root / candidate).is_dir():
            return root / candidate
    return None


def _read_source(source: str, name: str, cfg: DataConfig) -> Table:
    path = Path(source).expanduser()
    if path.is_dir():
        return _folder_table(path, name, source)
    column = image_column(cfg)
    table = read_table(source, name, column, cfg.label)
    base = path.resolve().parent
    frame = table.frame
    resolved = []
    for value, row in zip(frame[TEXT], frame[ROW], strict=True):
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"data.{name}: {source}: row {int(row) + 1} has no path in column '{column}'; "
                            "fill it in or remove the row.")  # fmt: skip
        file = (base / value.strip()).resolve()
        if not file.is_file():
            raise UserError(
                f"data.{name}: {source}: row {int(row) + 1}, column '{column}': {value} does not exist "
                f"(looked for {file}); paths are relative to {base}: fix the path or remove the row."
            )
        resolved.append(str(file))
    frame = frame.assign(**{TEXT: resolved})
    return Table(name=name, path=source, frame=frame, columns=table.columns)


def _folder_table(folder: Path, name: str, source: str) -> Table:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(
            f"data.{name}: {source} has no class subfolders; put the images in one folder per class "
            f"({source}/<class>/<image>.png), or use a CSV with path and label columns."
        )
    paths, labels = [], []
    for class_dir in classes:
        for file in sorted(class_dir.rglob("*")):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(str(file.resolve()))
                labels.append(class_dir.name)
    if not paths:
        raise UserError(
            f"data.{name}: the class subfolders of {source} ({', '.join(c.name for c in classes[:5])}) hold no "
            f"images ({', '.join(IMAGE_SUFFIXES)}); add images to them."
        )
    frame = pd.DataFrame({TEXT: paths, LABEL: labels, ROW: range(len(paths))})
    return Table(name=name, path=source, frame=frame, columns={TEXT: "path", LABEL: "class folder"})


def scan_images(table: Table, *, strict: bool) -> None:
    """Fully decode each image once (truncated files only fail on load) and record size and mode."""
    widths, heights, modes, errors = [], [], [], []
    for path in table.frame[TEXT]:
        try:
            with Image.open(path) as image:
                image.load()
                size, mode, error = image.size, image.mode, ""
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            if strict:
                raise UserError(
                    f"data.{table.name}: image {path} cannot be decoded ({type(exc).__name__}: {exc}); "
                    "replace or remove the file (`tunesmith doctor` lists every unreadable image)."
                ) from None
            size, mode, error = (0, 0), "", f"{type(exc).__name__}: {exc}"
        widths.append(size[0])
        heights.append(size[1])
        modes.append(mode)
        errors.append(error)
    table.frame = table.frame.assign(**{WIDTH: widths, HEIGHT: heights, MODE: modes, ERROR: errors})
