"""Read one data file (or a built-in data set) into a Table with the user's columns mapped.

Only file-level problems raise here (missing or unreadable file, encoding, malformed rows, missing columns,
missing labels). Empty or null texts stay in the table: the data doctor reports them, and
`prepare.validate_for_training` refuses to train on them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from tunesmith.data import formats
from tunesmith.data.demo import DEMO_SPLITS, demo_table
from tunesmith.data.messages import describe_rows, did_you_mean, list_names
from tunesmith.data.types import GROUP, LABEL, ROW, TEXT, Table
from tunesmith.errors import UserError

BUILTIN_PREFIX = "builtin:"
BUILTIN_DATASETS = {f"{BUILTIN_PREFIX}drugreview/{split}": split for split in DEMO_SPLITS}


def read_table(path: str, name: str, text: str, label: str, group: str | None = None) -> Table:
    """Load `path` (the recipe key data.<name>) and map its text / label / group columns.

    The frame has columns text (missing values kept), label (str), group (str, only when `group` is given)
    and row (0-based data-row position in the file).
    """
    src = f"data.{name}: {path}"
    raw = _read_builtin(path, src) if path.startswith(BUILTIN_PREFIX) else read_file(path, name, src)
    mapping = {TEXT: text, LABEL: label} | ({GROUP: group} if group is not None else {})
    frame = _map_columns(raw, mapping, path, name)
    _check_labels_present(frame, label, src)
    return Table(name=name, path=path, frame=frame, columns=mapping)


def read_raw(path: str, option: str) -> pd.DataFrame:
    """The file's columns as they are (no mapping): for options that name other columns (eval.slices)."""
    src = f"{option}: {path}"
    return _read_builtin(path, src) if path.startswith(BUILTIN_PREFIX) else read_file(path, option, src)


def _read_builtin(path: str, src: str) -> pd.DataFrame:
    if path not in BUILTIN_DATASETS:
        raise UserError(f"{src} is not a built-in data set; available: {', '.join(BUILTIN_DATASETS)}.")
    return demo_table(BUILTIN_DATASETS[path])


def read_file(path: str, name: str, src: str) -> pd.DataFrame:
    """A data file's columns as they are; UserError (naming `src`) for a missing, empty or unreadable file."""
    file = Path(path).expanduser()
    _check_is_file(file, path, name, src)
    suffix = file.suffix.lower()
    if suffix not in formats.SUPPORTED:
        supported = ", ".join(f"{ext} ({kind})" for ext, kind in formats.SUPPORTED.items())
        raise UserError(
            f"{src} has an unsupported extension '{file.suffix or '(none)'}'; supported: {supported}. "
            "Convert the file to one of these (e.g. save it as CSV) or rename it if it already is one."
        )
    data = _read_bytes(file, src)
    if not data or data.isspace():
        raise UserError(f"{src} is empty; point data.{name} at a file with a header row and data rows.")
    if suffix == ".parquet":
        return formats.read_parquet(data, src)
    text = formats.decode_utf8(data, src)
    if suffix in (".csv", ".tsv"):
        return formats.read_delimited(text, suffix, src)
    return formats.read_json(text, src)


def _check_is_file(file: Path, path: str, name: str, src: str) -> None:
    if file.is_dir():
        raise UserError(f"{src} is a directory, not a file; set data.{name} to a data file inside it.")
    if not file.exists():
        guess = _similar_file(file)
        hint = f"did you mean {guess}? " if guess else ""
        # A relative path is resolved from the current directory, which may not be the one the user meant.
        where = "" if file.is_absolute() else f" (looked for {file.resolve()})"
        raise UserError(f"{src} does not exist{where}; {hint}fix the path in data.{name}.")


def _similar_file(file: Path) -> str | None:
    """A sibling with a similar name (trian.csv -> train.csv), when the folder exists."""
    parent = file.parent
    if not parent.is_dir():
        return None
    try:
        siblings = [p.name for p in parent.iterdir() if p.is_file()]
    except OSError:
        return None
    guess = did_you_mean(file.name, siblings)
    return str(parent / guess) if guess else None


def _read_bytes(file: Path, src: str) -> bytes:
    try:
        return file.read_bytes()
    except PermissionError:
        raise UserError(
            f"{src} cannot be read (permission denied); give your user read access (e.g. `chmod u+r FILE`)."
        ) from None
    except OSError as exc:
        raise UserError(
            f"{src} cannot be read ({exc.strerror or exc}); check the file and the path."
        ) from None


def _map_columns(raw: pd.DataFrame, mapping: dict[str, str], path: str, name: str) -> pd.DataFrame:
    columns = [str(c) for c in raw.columns]
    for key, column in mapping.items():
        if column not in columns:
            guess = did_you_mean(column, columns)
            hint = f"did you mean '{guess}'? " if guess else ""
            raise UserError(
                f"data.{key}: column '{column}' is not in {path} (data.{name}); {hint}columns present: "
                f"{list_names(columns)}; set data.{key} to the column that holds the {key}."
            )
        if columns.count(column) > 1:
            raise UserError(
                f"data.{name}: {path} has {columns.count(column)} columns named '{column}' (data.{key}); "
                "rename them so each column name is unique."
            )
    raw = raw.set_axis(columns, axis=1)
    for key, column in mapping.items():
        _check_scalars(raw[column], key, column, path, name)
    frame = pd.DataFrame({TEXT: [_text_value(v) for v in raw[mapping[TEXT]]]})
    frame[LABEL] = [_label_value(v) for v in raw[mapping[LABEL]]]
    if GROUP in mapping:
        frame[GROUP] = [_label_value(v) for v in raw[mapping[GROUP]]]
    frame[ROW] = np.arange(len(raw), dtype=np.int64)
    return frame


def _kind(value: object) -> str | None:
    """What a non-scalar cell is ('an object', 'a list', 'bytes'); None for a string, number or missing value."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple | set | np.ndarray):
        return "a list"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    return None


def _check_scalars(values: pd.Series, key: str, column: str, path: str, name: str) -> None:
    """Texts and labels must be scalars: an object or list would be turned into its Python repr silently."""
    bad = [(row, kind) for row, value in enumerate(values) if (kind := _kind(value)) is not None]
    if not bad:
        return
    row, kind = bad[0]
    preview = repr(values.iloc[row])
    preview = preview if len(preview) <= 60 else preview[:57] + "..."
    wanted = "a string" if key == TEXT else "a single string or number"
    fix = (
        f"flatten the file so '{column}' holds the text itself, or set data.text to a column of strings"
        if key == TEXT
        else f"give each row one {key} value in '{column}' (one class per row)"
    )
    raise UserError(
        f"data.{name}: {path}: column '{column}' (data.{key}) holds {kind} in "
        f"{describe_rows([r for r, _ in bad])}, not {wanted} (row {row}: {preview}); {fix}."
    )


def _check_labels_present(frame: pd.DataFrame, column: str, src: str) -> None:
    missing = frame.loc[frame[LABEL].isna(), ROW].tolist()
    if missing:
        raise UserError(
            f"{src}: {len(missing)} of {len(frame)} rows have no label in column '{column}': "
            f"{describe_rows(missing)}; fill in their labels or remove those rows."
        )


def _is_missing(value: object) -> bool:
    # pd.isna on a list or dict would answer element-wise; only scalars can be missing here.
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _text_value(value: object) -> str | None:
    if _is_missing(value):
        return None
    return value if isinstance(value, str) else str(value)


def _label_value(value: object) -> str | None:
    """Labels and groups as trimmed strings, so 1, 1.0 (a JSON or Parquet number) and "1" are one label."""
    if isinstance(value, np.generic):
        value = value.item()
    if _is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None
