"""Text helpers shared by the checks: normalisation, cheap word splitting, encoding-artefact patterns."""

from __future__ import annotations

import html
import re
import string
import unicodedata
from collections.abc import Sequence

import numpy as np

# Punctuation -> space, so "great!" and "great" are one word for shingling.
_PUNCT_TO_SPACE = str.maketrans({c: " " for c in string.punctuation})

HTML_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# C0/C1 control characters except tab, newline and carriage return, plus the BOM inside a text.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")
MARKUP = re.compile(r"</?[A-Za-z][^<>]{0,200}>|</|/>")
# Texts that cannot hold entities, mojibake or control characters skip the slow checks.
_SUSPECT = re.compile("[&\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# Placeholders an export writes for "no text" (after quotes and punctuation around them are stripped).
PLACEHOLDERS = frozenset({"n/a", "na", "n.a", "none", "null", "nil", "nan", "undefined", "tbd"})


def is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


def is_empty(text: str | None) -> bool:
    """No content: missing, blank, no letter or digit at all (`""`, `-`, `...`) or a placeholder (`n/a`)."""
    if is_blank(text):
        return True
    assert text is not None
    if not any(c.isalnum() for c in text):
        return True
    return len(text) <= 12 and text.strip().strip("\"'.-_ ").casefold() in PLACEHOLDERS


def normalize(text: str | None) -> str:
    """Unicode NFKC, case folded, runs of whitespace collapsed: the key of an exact duplicate."""
    if not text:
        return ""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def char_similarity(a: str, b: str) -> float:
    """Character-level similarity in [0, 1] (difflib's ratio: 2 x matched characters / total length)."""
    from difflib import SequenceMatcher

    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def normalize_all(texts: Sequence[str | None]) -> np.ndarray:
    return np.array([normalize(t) for t in texts], dtype=object)


def words(normalized: str) -> list[str]:
    """Words of an already normalised text, punctuation dropped."""
    return normalized.translate(_PUNCT_TO_SPACE).split()


def suspect(text: str) -> bool:
    """True when the text could hold an encoding artefact (cheap prefilter for the slow checks)."""
    return not text.isascii() or _SUSPECT.search(text) is not None


def html_entities(text: str) -> list[str]:
    """HTML entities in `text` that decode to something else (e.g. &#039; -> ')."""
    return [m for m in HTML_ENTITY.findall(text) if html.unescape(m) != m]


def shorten(text: str | None, limit: int = 120) -> str:
    """A one-line preview of a text for evidence and terminal output."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
