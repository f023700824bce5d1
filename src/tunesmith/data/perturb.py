"""Seeded, label-preserving text perturbations: the robustness suite's tests and the matching augmentation ops.

Each function takes the text and a numpy Generator and returns the perturbed text (the same text when
nothing applies, e.g. no number to change). The same edits serve `data.augment.ops` (typo, case,
punctuation), so a model found fragile under a perturbation can be trained on it.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Callable, Sequence

import numpy as np

# QWERTY neighbours: a typo hits a key next to the intended one.
_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_ROWS):
    for _c, _ch in enumerate(_row):
        near = [_row[j] for j in (_c - 1, _c + 1) if 0 <= j < len(_row)]
        for other in (_r - 1, _r + 1):
            if 0 <= other < len(_ROWS):
                near += [_ROWS[other][j] for j in (_c - 1, _c, _c + 1) if 0 <= j < len(_ROWS[other])]
        NEIGHBOURS[_ch] = "".join(near)

CONTRACTIONS = {
    "don't": "do not", "doesn't": "does not", "didn't": "did not", "can't": "cannot", "won't": "will not",
    "isn't": "is not", "wasn't": "was not", "aren't": "are not", "weren't": "were not", "i'm": "i am",
    "i've": "i have", "i'd": "i would", "i'll": "i will", "it's": "it is", "couldn't": "could not",
    "wouldn't": "would not", "shouldn't": "should not", "haven't": "have not", "hasn't": "has not",
    "that's": "that is", "there's": "there is", "they're": "they are", "you're": "you are",
}  # fmt: skip
GENDER = {
    "he": "she", "she": "he", "him": "her", "his": "her", "her": "his", "himself": "herself",
    "herself": "himself", "man": "woman", "woman": "man", "men": "women", "women": "men", "boy": "girl",
    "girl": "boy", "husband": "wife", "wife": "husband", "boyfriend": "girlfriend", "girlfriend": "boyfriend",
    "father": "mother", "mother": "father", "son": "daughter", "daughter": "son", "male": "female",
    "female": "male", "mr": "mrs", "mrs": "mr",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z']+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")

Perturb = Callable[[str, np.random.Generator], str]


def _words(text: str, min_len: int = 3) -> list[re.Match[str]]:
    return [m for m in _WORD.finditer(text) if len(m.group()) >= min_len]


def typo(text: str, rng: np.random.Generator, p: float = 0.1) -> str:
    """Replace one letter by a keyboard neighbour in each word with probability p (at least one word)."""
    words = _words(text)
    if not words:
        return text
    hit = rng.random(len(words)) < p
    if not hit.any():
        hit[int(rng.integers(len(words)))] = True
    chars = list(text)
    for m, h in zip(words, hit, strict=True):
        if not h:
            continue
        pos = m.start() + int(rng.integers(len(m.group())))
        low = chars[pos].lower()
        if low in NEIGHBOURS:
            new = NEIGHBOURS[low][int(rng.integers(len(NEIGHBOURS[low])))]
            chars[pos] = new.upper() if chars[pos].isupper() else new
    return "".join(chars)


def delete_char(text: str, rng: np.random.Generator) -> str:
    """Delete one inner letter of one word of three or more letters."""
    words = _words(text, 4)
    if not words:
        return text
    m = words[int(rng.integers(len(words)))]
    pos = m.start() + 1 + int(rng.integers(len(m.group()) - 2))
    return text[:pos] + text[pos + 1 :]


def upper(text: str, rng: np.random.Generator) -> str:
    return text.upper()


def lower(text: str, rng: np.random.Generator) -> str:
    return text.lower()


def title(text: str, rng: np.random.Generator) -> str:
    return text.title()


def case(text: str, rng: np.random.Generator) -> str:
    """One of upper / lower / title case, picked at random (the augmentation op)."""
    return (upper, lower, title)[int(rng.integers(3))](text, rng)


def punctuation(text: str, rng: np.random.Generator) -> str:
    """Strip punctuation (apostrophes and entities' & # ; included); whitespace collapsed."""
    return " ".join(_PUNCT.sub("", text).split()) or text


def whitespace(text: str, rng: np.random.Generator) -> str:
    """Two to four spaces between words, plus spaces and a newline around the text."""
    words = text.split()
    gaps = [" " * int(rng.integers(2, 5)) for _ in range(max(len(words) - 1, 0))]
    out = words[0] if words else ""
    for gap, word in zip(gaps, words[1:], strict=True):
        out += gap + word
    return f"  {out} \n"


def html_escape(text: str, rng: np.random.Generator) -> str:
    """Apostrophes and quotes as HTML entities (&#039; &quot;), as scraped reviews often hold them."""
    return html.escape(text, quote=True).replace("&#x27;", "&#039;")


def contractions(text: str, rng: np.random.Generator) -> str:
    """Expand contractions (don't -> do not), keeping a leading capital."""

    def expand(m: re.Match[str]) -> str:
        word = m.group()
        full = CONTRACTIONS.get(word.lower().replace("’", "'"))
        if full is None:
            return word
        return full[0].upper() + full[1:] if word[0].isupper() else full

    return _WORD.sub(expand, text)


def numbers(text: str, rng: np.random.Generator) -> str:
    """Change every number to another one of the same number of digits."""

    def change(m: re.Match[str]) -> str:
        digits = m.group()
        out = "".join(str(int(rng.integers(10))) if c.isdigit() else c for c in digits)
        return out if out != digits else str(int(digits.split(".")[0]) + 1)

    return _NUMBER.sub(change, text)


def gender(text: str, rng: np.random.Generator) -> str:
    """Swap gendered words (he/she, his/her, husband/wife...), keeping capitals."""

    def swap(m: re.Match[str]) -> str:
        word = m.group()
        other = GENDER.get(word.lower())
        if other is None:
            return word
        return (
            other.upper()
            if word.isupper() and len(word) > 1
            else (other.capitalize() if word[0].isupper() else other)
        )

    return _WORD.sub(swap, text)


def value_swap(values: Sequence[str]) -> Perturb:
    """Replace a mention of one of `values` (e.g. a condition or drug named in the data) by another one."""
    usable = sorted({v for v in values if v and len(v) >= 3}, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(v) for v in usable) + r")\b", re.I) if usable else None

    def perturb(text: str, rng: np.random.Generator) -> str:
        if pattern is None or len(usable) < 2:
            return text

        def swap(m: re.Match[str]) -> str:
            others = [v for v in usable if v.lower() != m.group().lower()]
            return others[int(rng.integers(len(others)))]

        return pattern.sub(swap, text)

    return perturb


# Perturbations of the robustness suite, and the augmentation op that trains against each.
PERTURBATIONS: dict[str, Perturb] = {
    "typo": typo, "char_delete": delete_char, "upper": upper, "lower": lower, "title": title,
    "punctuation": punctuation, "whitespace": whitespace, "html_escape": html_escape,
    "contractions": contractions, "numbers": numbers, "gender": gender,
}  # fmt: skip
AUGMENT_OP = {"typo": "typo", "char_delete": "typo", "upper": "case", "lower": "case", "title": "case",
              "punctuation": "punctuation"}  # fmt: skip
AUGMENT_OPS: dict[str, Perturb] = {"typo": typo, "case": case, "punctuation": punctuation}
