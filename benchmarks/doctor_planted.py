"""Planted defects in the real drug-review data: the doctor's recall per defect and its false flags.

Into copies of the packaged train (600) and test (379) splits go: near-duplicates (one word removed) of
long reviews and of short ones (the first 12 words of a review, planted as both copies), test rows copied
from train with one word removed (near leakage, long and short), and empty reviews written as the export
does (`""`, `-`, `...`, `n/a`). False flags are rows a check flags in the planted data that are neither
planted nor flagged by it on the clean data. Prints one JSON line.

    python benchmarks/doctor_planted.py [--per-kind 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.audit import run_audit
from tunesmith.config.schema import AuditConfig
from tunesmith.data.demo import demo_table
from tunesmith.data.types import LABEL, ROW, TEXT, Table

EMPTY = ['""', "-", "...", "n/a", '"-"', '"..."', '"n/a"', '" "']


def as_table(name: str, frame: pd.DataFrame) -> Table:
    data = pd.DataFrame({TEXT: frame["review"].tolist(), LABEL: frame["rating"].tolist()})
    data[ROW] = np.arange(len(data), dtype=np.int64)
    return Table(name, f"planted:{name}", data, {TEXT: "review", LABEL: "rating"})


def drop_word(text: str, rng: random.Random) -> str:
    words = text.split()
    k = rng.randrange(1, len(words) - 1)
    return " ".join(words[:k] + words[k + 1 :])


def flagged(findings: list[Any], fid: str, split: str) -> set[int]:
    return {r for f in findings if f.id == fid and f.evidence.get("split") == split for r in f.rows or []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng, n = random.Random(args.seed), args.per_kind
    train, test = demo_table("train"), demo_table("test")
    cfg = AuditConfig(label_errors=False)
    clean = run_audit({"train": as_table("train", train), "test": as_table("test", test)}, cfg).findings
    tr, te = train.copy(), test.copy()
    rows = rng.sample(range(len(tr)), 8 * n)
    groups = [rows[i * n : (i + 1) * n] for i in range(8)]
    planted: dict[str, tuple[str, str, set[int]]] = {}
    # near duplicates inside train: copies appended at the end (the later copy is flagged)
    long_src, short_src = groups[0], groups[1]
    extra = []
    for r in long_src:
        extra.append((drop_word(tr.at[r, "review"], rng), tr.at[r, "rating"]))
    for src in short_src:
        twelve = " ".join(str(tr.at[src, "review"]).split()[:12])
        tr.at[src, "review"] = twelve
        extra.append((drop_word(twelve, rng), tr.at[src, "rating"]))
    start = len(tr)
    tr = pd.concat([tr, pd.DataFrame({"review": [t for t, _ in extra], "rating": [lb for _, lb in extra]})],
                   ignore_index=True)  # fmt: skip
    planted["near_duplicates_long"] = ("audit.near_duplicates", "train", set(range(start, start + n)))
    planted["near_duplicates_short"] = (
        "audit.near_duplicates",
        "train",
        set(range(start + n, start + 2 * n)),
    )
    # near leakage: test rows replaced by train rows with one word removed (the train row is flagged)
    te_rows = rng.sample(range(len(te)), 2 * n)
    for r, t in zip(groups[3], te_rows[:n], strict=True):
        te.at[t, "review"] = drop_word(tr.at[r, "review"], rng)
    for r, t in zip(groups[4], te_rows[n:], strict=True):
        twelve = " ".join(str(tr.at[r, "review"]).split()[:12])
        tr.at[r, "review"] = twelve
        te.at[t, "review"] = drop_word(twelve, rng)
    planted["near_leakage_long"] = ("audit.near_leakage", "train", set(groups[3]))
    planted["near_leakage_short"] = ("audit.near_leakage", "train", set(groups[4]))
    for i, r in enumerate(groups[5]):
        tr.at[r, "review"] = EMPTY[i % len(EMPTY)]
    planted["empty_texts"] = ("audit.empty_texts", "train", set(groups[5]))
    found = run_audit({"train": as_table("train", tr), "test": as_table("test", te)}, cfg).findings
    result: dict[str, Any] = {"benchmark": "doctor_planted", "per_kind": n, "seed": args.seed}
    by_check: dict[tuple[str, str], set[int]] = {}
    for kind, (fid, split, rows_) in planted.items():
        hit = flagged(found, fid, split) & rows_
        result[f"recall_{kind}"] = round(len(hit) / len(rows_), 3)
        by_check.setdefault((fid, split), set()).update(rows_)
    for (fid, split), rows_ in by_check.items():
        got = flagged(found, fid, split)
        false = got - rows_ - flagged(clean, fid, split)
        result[f"false_flags_{fid.split('.')[1]}"] = len(false)
        result[f"false_share_{fid.split('.')[1]}"] = round(len(false) / max(len(got), 1), 3)
    result["quoted_texts_on_clean_train"] = any(
        f.id == "audit.quoted_texts" and f.evidence["split"] == "train" for f in clean
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
