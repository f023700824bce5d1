"""Small helpers that keep the data stage's error messages in one shape (one line, names rows and a fix)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

ROWS_NOTE = "(0-based, header not counted)"


def describe_rows(rows: Sequence[int], limit: int = 5, note: bool = True) -> str:
    """'row 3' / 'rows 3, 9, 12 and 4 more', with ROWS_NOTE unless the caller adds it once itself."""
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    noun = "row" if len(rows) == 1 else "rows"
    return f"{noun} {shown}{more}" + (f" {ROWS_NOTE}" if note else "")


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """The closest choice: a case-insensitive match first, else difflib's best guess above 0.6."""
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return lowered[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def list_names(names: Sequence[str], limit: int = 20) -> str:
    """'a', 'b', 'c' (and N more): column lists can be long, a message line should not be."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
