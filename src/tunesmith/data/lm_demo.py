"""Embedded data for `task: causal-lm`: the drug reviews as a domain corpus and as instructions, and a
general-text retain set (for forgetting) from PyPI package `chatterbot-corpus` (BSD-3-Clause).

Both packages are only located, never imported. The reviews are lightly cleaned for a language model
(HTML entities decoded, the literal quotes around every review removed); the classification demo keeps
them raw on purpose, because there the data doctor is meant to find those defects.
"""

from __future__ import annotations

import html
import importlib.metadata
import json
from pathlib import Path

import pandas as pd
import yaml

from tunesmith.data.demo import _write_atomic, demo_table
from tunesmith.errors import UserError

RETAIN_DIST = "chatterbot-corpus"
_RETAIN_INSTALL = f"pip install --no-deps {RETAIN_DIST}"


def clean_review(text: str) -> str:
    text = html.unescape(html.unescape(text)).strip()  # a few are escaped twice (&amp;#039;)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return " ".join(text.split())


def _reviews(split: str) -> pd.DataFrame:
    table = demo_table(split)
    table["review"] = table["review"].map(clean_review)
    # The source cuts some condition names ("Bipolar Disorde"); garbled ones hold HTML ("</span>").
    table["condition"] = table["condition"].str.strip().str.replace(r"Disorde$", "Disorder", regex=True)
    return table[table["review"].str.len() > 0].reset_index(drop=True)


def demo_corpus(split: str) -> pd.DataFrame:
    """The reviews as domain text: one column `text` (continued pre-training; held-out perplexity)."""
    return pd.DataFrame({"text": _reviews(split)["review"]})


def demo_instructions(split: str, rating_questions: bool = True) -> pd.DataFrame:
    """Instructions built from the review columns: `prompt` + `response`.

    Each review gives "Write a patient review of DRUG for CONDITION." -> the review; with
    `rating_questions`, also "Is this review of DRUG positive, neutral or negative? ..." -> the rating.
    """
    table = _reviews(split)
    prompts, responses = [], []
    for row in table.itertuples(index=False):
        condition = (
            f" for {row.condition.lower()}" if row.condition and "</span>" not in row.condition else ""
        )
        prompts.append(f"Write a patient review of {row.drugName}{condition}.")
        responses.append(row.review)
        if rating_questions:
            prompts.append(f"Is this review of {row.drugName} positive, neutral or negative?\n\n{row.review}")
            responses.append(f"The review is {row.rating}.")
    return pd.DataFrame({"prompt": prompts, "response": responses})


def _retain_files() -> list[Path]:
    try:
        files = importlib.metadata.files(RETAIN_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        raise UserError(
            f"the general-text retain set is not installed; install it with `{_RETAIN_INSTALL}`."
        ) from None
    found = sorted(Path(str(f.locate())) for f in files if "/data/english/" in f"/{f}" and f.suffix == ".yml")
    if not found:
        raise UserError(
            f"{RETAIN_DIST} has no English YAML files; reinstall it with `{_RETAIN_INSTALL} --force-reinstall`."
        )
    return found


def retain_conversations() -> list[list[str]]:
    """Every English dialogue of chatterbot-corpus, as a list of turns (strings)."""
    dialogues: list[list[str]] = []
    for path in _retain_files():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations") or []:
            turns = [str(turn).strip() for turn in conversation if turn is not None and str(turn).strip()]
            if len(turns) >= 2:
                dialogues.append(turns)
    return dialogues


def demo_retain_text() -> pd.DataFrame:
    """General everyday text for forgetting: one `text` per dialogue, turns on their own lines."""
    return pd.DataFrame({"text": ["\n".join(turns) for turns in retain_conversations()]})


def demo_retain_chats() -> pd.DataFrame:
    """The same dialogues as chats (`messages`): turns alternate user / assistant."""
    chats = []
    for turns in retain_conversations():
        turns = turns[: len(turns) // 2 * 2]  # end on an assistant turn
        roles = ["user", "assistant"] * (len(turns) // 2)
        chats.append([{"role": r, "content": t} for r, t in zip(roles, turns, strict=True)])
    return pd.DataFrame({"messages": chats})


def _jsonl(frame: pd.DataFrame) -> bytes:
    lines = (json.dumps(record, ensure_ascii=False) for record in frame.to_dict(orient="records"))
    return ("\n".join(lines) + "\n").encode("utf-8")


def export_lm_demo_data(out_dir: Path, overwrite: bool = False) -> dict[str, Path]:
    """Write the causal-LM demo files as JSON Lines under `out_dir`; returns name -> path.

    Same contract as the classification export: same content is left alone, other content only
    replaced with `overwrite=True`, every file written atomically.
    """
    out_dir = Path(out_dir).expanduser()
    contents = {
        "corpus-train": _jsonl(demo_corpus("train")),
        "corpus-test": _jsonl(demo_corpus("test")),
        "instructions-train": _jsonl(demo_instructions("train")),
        "instructions-test": _jsonl(demo_instructions("test")),
        "retain": _jsonl(demo_retain_text()),
    }
    paths = {name: out_dir / f"{name}.jsonl" for name in contents}
    for name, path in paths.items():
        if path.is_dir() or (path.exists() and not overwrite and path.read_bytes() != contents[name]):
            raise UserError(
                f"{path} already exists with other content; move it away or choose another directory "
                "(tunesmith data export-demo --task causal-lm DIR)."
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, path in paths.items():
        _write_atomic(path, contents[name])
    return paths
