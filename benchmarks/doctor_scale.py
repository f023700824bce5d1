"""How the data doctor scales: the checks that need no model on 1,000,000 synthetic short texts (target
under 120 s and under 4 GiB peak RSS on 2 cores), and the confident-learning label-error check on 10,000
rows embedded with the real MiniLM. Prints one JSON line.

Each part runs in a fresh subprocess so its peak RSS (resource.getrusage of that child) is its own.

    python benchmarks/doctor_scale.py                       # 1,000,000 rows + label errors on 10,000
    python benchmarks/doctor_scale.py --rows 20000 --label-rows 0   # a quick check, no model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

LABELS = ("positive", "negative", "neutral")
SHARES = (0.6, 0.3, 0.1)


def synthetic_texts(n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """Short texts (4-20 words, Zipf over 20,000 words): 1% exact and 1% near copies, 2% with HTML entities,
    mojibake or accents."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)], dtype=object)
    cues = {label: vocab[i * 50 : (i + 1) * 50] for i, label in enumerate(LABELS)}
    labels = rng.choice(np.array(LABELS, dtype=object), size=n, p=SHARES)
    lengths = rng.integers(4, 21, size=n)
    zipf = np.minimum(rng.zipf(1.3, size=int(lengths.sum())), len(vocab)) - 1
    words = vocab[zipf]
    texts: list[str] = []
    start = 0
    for i in range(n):
        end = start + int(lengths[i])
        chosen = list(words[start:end])
        chosen[int(rng.integers(len(chosen)))] = cues[labels[i]][int(rng.integers(50))]
        texts.append(" ".join(chosen))
        start = end
    dup = rng.choice(n, size=n // 100, replace=False)
    src = rng.choice(n, size=n // 100, replace=False)
    for d, s in zip(dup[: n // 200], src[: n // 200], strict=True):
        texts[d], labels[d] = texts[s].upper(), labels[s]  # exact after case folding
    for d, s in zip(dup[n // 200 :], src[n // 200 :], strict=True):
        texts[d], labels[d] = texts[s] + " indeed", labels[s]  # near copy
    for i in rng.choice(n, size=n // 50, replace=False):  # encoding artefacts and non-ASCII text
        texts[i] = texts[i] + rng.choice(
            np.array([" don&#039;t", " cafÃ© visit", " naïve café"], dtype=object)
        )
    groups = rng.choice(np.array(["pain", "acne", "migraine", "Bipolar Disorde"], dtype=object), size=n)
    return texts, labels.tolist(), groups.tolist()


CUES = {
    "positive": [
        "great",
        "excellent",
        "wonderful",
        "helped",
        "love",
        "amazing",
        "relief",
        "best",
        "effective",
        "recommend",
    ],
    "negative": [
        "awful",
        "terrible",
        "worse",
        "pain",
        "hate",
        "useless",
        "nausea",
        "worst",
        "dizzy",
        "stopped",
    ],
    "neutral": [
        "okay",
        "average",
        "fine",
        "moderate",
        "unsure",
        "mixed",
        "some",
        "maybe",
        "partly",
        "somewhat",
    ],
}
FILLER = [
    "the",
    "drug",
    "i",
    "took",
    "it",
    "for",
    "weeks",
    "and",
    "was",
    "my",
    "doctor",
    "said",
    "after",
    "two",
    "days",
    "then",
    "side",
    "effects",
    "started",
    "with",
    "morning",
    "dose",
    "night",
    "sleep",
    "appetite",
    "weight",
    "first",
    "month",
    "second",
    "year",
    "pill",
    "tablet",
    "daily",
]


def review_texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    """English-like reviews: filler words plus 2-3 cue words of the label (for the embedding check)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array(LABELS, dtype=object), size=n, p=SHARES)
    texts = []
    for label in labels:
        words = list(rng.choice(FILLER, size=int(rng.integers(6, 16)))) + list(
            rng.choice(CUES[label], size=int(rng.integers(2, 4)))
        )
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, labels.tolist()


def _tables(n: int, seed: int, test_share: float = 0.1) -> dict[str, Any]:
    import pandas as pd

    from tunesmith.data.types import GROUP, LABEL, ROW, TEXT, Table

    texts, labels, groups = synthetic_texts(n, seed)
    cut = int(n * (1 - test_share))
    tables = {}
    for name, lo, hi in (("train", 0, cut), ("test", cut, n)):
        if hi == lo:
            continue
        frame = pd.DataFrame({TEXT: texts[lo:hi], LABEL: labels[lo:hi], GROUP: groups[lo:hi]})
        frame[ROW] = np.arange(hi - lo)
        tables[name] = Table(name, f"synthetic:{name}", frame)
    return tables


def _peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def child_data(rows: int, seed: int, words: bool = False) -> dict[str, Any]:
    """Audit `rows` texts with every check that needs no model (label errors and embeddings off); lengths
    are counted with the MiniLM tokenizer, as `tunesmith doctor` does, unless `words`."""
    from tunesmith.audit import run_audit
    from tunesmith.config.schema import AuditConfig

    tokenizer = None
    if not words:
        from transformers import AutoTokenizer

        from tunesmith.models.registry import resolve_model_dir

        tokenizer = AutoTokenizer.from_pretrained(resolve_model_dir("minilm"))

    start = time.perf_counter()
    tables = _tables(rows, seed)
    made = time.perf_counter() - start
    rss_before = _peak_rss_mib()
    start = time.perf_counter()
    report = run_audit(tables, AuditConfig(label_errors=False, seed=seed), tokenizer=tokenizer)
    seconds = time.perf_counter() - start
    found = {f.id: len(f.rows or []) for f in report.findings if f.evidence.get("split") == "train"}
    return {
        "rows": rows, "audit_s": round(seconds, 2), "peak_rss_mib": round(_peak_rss_mib(), 1),
        "rss_after_data_mib": round(rss_before, 1), "make_data_s": round(made, 2),
        "lengths_counted_with": report.stats["tokens_counted_with"], "check_s": report.stats["timings_s"], "train_rows_flagged": found,
    }  # fmt: skip


def child_labels(rows: int, seed: int) -> dict[str, Any]:
    """The confident-learning check on `rows` texts (3% of labels flipped), embedded with MiniLM."""
    import pandas as pd

    from tunesmith.audit.checks.label_errors import label_errors
    from tunesmith.audit.context import AuditContext
    from tunesmith.config.schema import AuditConfig
    from tunesmith.data.types import LABEL, ROW, TEXT, Table

    texts, labels = review_texts(rows, seed)
    frame = pd.DataFrame({TEXT: texts, LABEL: labels, ROW: np.arange(rows)})
    tables = {"train": Table("train", "synthetic:train", frame)}
    rng = np.random.default_rng(seed + 1)
    flip = rng.choice(len(frame), size=len(frame) * 3 // 100, replace=False)
    frame.loc[flip, "label"] = [LABELS[(LABELS.index(v) + 1) % 3] for v in frame.loc[flip, "label"]]
    cfg = AuditConfig(label_errors=True, seed=seed, embedding_max_rows=max(100, rows))
    ctx = AuditContext(tables, cfg, max_length=128)
    start = time.perf_counter()
    _ = ctx.embedded
    embed_s = time.perf_counter() - start
    findings = label_errors(ctx)
    total = time.perf_counter() - start
    flagged = set(findings[0].rows or []) if findings else set()
    hits = len(flagged & {int(i) for i in flip})
    return {
        "rows": len(frame), "label_errors_s": round(total, 2), "embed_s": round(embed_s, 2),
        "confident_learning_s": round(total - embed_s, 2), "flipped": len(flip), "flagged": len(flagged),
        "precision": round(hits / max(1, len(flagged)), 3), "recall": round(hits / len(flip), 3),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }  # fmt: skip


def _in_child(part: str, rows: int, seed: int, words: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", part, "--rows", str(rows), "--seed", str(seed)]
    cmd += ["--words"] if words else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="texts for the model-free audit")
    parser.add_argument("--label-rows", type=int, default=10_000, help="rows for label errors (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--words", action="store_true", help="count lengths in words, not MiniLM tokens")
    parser.add_argument("--child", choices=["data", "labels"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        part = child_data(args.rows, args.seed, args.words) if args.child == "data" else None
        print(json.dumps(part or child_labels(args.rows, args.seed)))
        return
    result: dict[str, Any] = {
        "benchmark": "doctor_scale", "cpus": os.cpu_count(), "python": platform.python_version(),
        "data_checks": _in_child("data", args.rows, args.seed, args.words),
    }  # fmt: skip
    data = result["data_checks"]
    data["target_met"] = data["audit_s"] < 120 and data["peak_rss_mib"] < 4096
    if args.label_rows > 0:
        result["label_errors"] = _in_child("labels", args.label_rows, args.seed)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
