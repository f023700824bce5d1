"""Readers for each file format: bytes on disk -> a raw DataFrame with the file's own columns.

File-level problems (encoding, malformed rows, no data) raise UserError here; column mapping and value
normalisation happen in loaders.py. Every message starts with `src`, e.g. "data.train: data/train.csv".
"""

from __future__ import annotations

import codecs
import csv
import io
import json

import pandas as pd

from tunesmith.errors import UserError

# extension -> reader description, in the order the error message lists them
SUPPORTED: dict[str, str] = {
    ".csv": "CSV",
    ".tsv": "TSV",
    ".jsonl": "JSON Lines",
    ".json": "JSON Lines or a JSON array",
    ".parquet": "Parquet",
}
_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_FIELD_LIMIT = 2**31 - 1  # csv's default 128 KiB per field is too small for long documents


def decode_utf8(data: bytes, src: str) -> str:
    """Decode UTF-8 (a BOM is allowed); on bad bytes name the line and byte offset."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise UserError(f"{src} is UTF-16 text, not UTF-8; re-save the file as UTF-8.")
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        line = data.count(b"\n", 0, offset) + 1
        raise UserError(
            f"{src} is not valid UTF-8: byte 0x{data[offset]:02x} at line {line} (byte offset {offset}); "
            "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`, or 'Save as UTF-8' in your "
            "editor or spreadsheet)."
        ) from None


def read_delimited(text: str, suffix: str, src: str) -> pd.DataFrame:
    """CSV / TSV with standard quoting; every row must have as many fields as the header."""
    delimiter = _DELIMITERS[suffix]
    kind = SUPPORTED[suffix]
    # newline="" keeps line breaks inside quoted fields intact, as the csv module expects.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    records: list[list[str | None]] = []
    old_limit = csv.field_size_limit(_FIELD_LIMIT)
    try:
        start = 1
        for record in reader:
            if record and header is None:
                header = record
            elif record:
                _check_field_count(record, header or [], start, reader.line_num, kind, src)
                records.append([value or None for value in record])  # an empty cell is a missing value
            start = reader.line_num + 1  # the next record starts on the line after this one ended
    except csv.Error as exc:
        raise UserError(f"{src} line {start}: {exc}; fix that row or re-export the file as {kind}.") from None
    finally:
        csv.field_size_limit(old_limit)
    if header is None:
        raise UserError(f"{src} is empty; it needs a header row and data rows ({kind}).")
    if not records:
        raise UserError(f"{src} has a header but no data rows; add data rows or point at the right file.")
    # Same names as pandas gives unnamed columns, so they look familiar.
    columns = [name or f"Unnamed: {i}" for i, name in enumerate(header)]
    return pd.DataFrame(records, columns=columns, dtype=object)


def _check_field_count(
    record: list[str], header: list[str], start: int, end: int, kind: str, src: str
) -> None:
    if len(record) == len(header):
        return
    hint = (
        f'the row runs on to line {end}, so a quote (") is probably not closed'
        if end > start
        else f"quote fields that contain the delimiter ({'tab' if kind == 'TSV' else 'comma'}) or fix the row"
    )
    raise UserError(
        f"{src} line {start}: expected {len(header)} fields (as in the header), saw {len(record)}; {hint}."
    )


def read_json(text: str, src: str) -> pd.DataFrame:
    """JSON Lines (one object per line, blank lines skipped) or a single JSON array of objects."""
    if text.lstrip().startswith("["):
        return _read_json_array(text, src)
    records: list[dict[str, object]] = []
    # split on "\n" only: str.splitlines would also split on U+2028 and friends, which JSON strings may hold.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{src} line {number} is not valid JSON ({exc.msg} at column {exc.colno}); each line must be "
                'one JSON object, e.g. {"text": "...", "label": "..."}.'
            ) from None
        records.append(_as_record(value, f"line {number}", src))
    if not records:
        raise UserError(f"{src} is empty; it needs one JSON object per line.")
    return pd.DataFrame.from_records(records)


def _read_json_array(text: str, src: str) -> pd.DataFrame:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{src} line {exc.lineno} is not valid JSON ({exc.msg} at column {exc.colno}); fix the JSON or "
            "write one object per line (JSON Lines)."
        ) from None
    records = [_as_record(value, f"item {i}", src) for i, value in enumerate(values)]
    if not records:
        raise UserError(f"{src} is an empty JSON array; it needs one object per example.")
    return pd.DataFrame.from_records(records)


def _as_record(value: object, where: str, src: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise UserError(
            f"{src} {where} is a JSON {type(value).__name__}, not an object; each example must be an object "
            'such as {"text": "...", "label": "..."}.'
        )
    return value


def read_parquet(data: bytes, src: str) -> pd.DataFrame:
    import pyarrow as pa

    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except (OSError, ValueError, pa.ArrowException) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{src} is not a readable Parquet file ({reason}); re-save it with `DataFrame.to_parquet` or "
            "use CSV / JSON Lines."
        ) from None
    if frame.empty:
        raise UserError(f"{src} has no data rows; add data rows or point at the right file.")
    frame.columns = [str(c) for c in frame.columns]
    return frame.reset_index(drop=True)
