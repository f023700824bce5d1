"""Planted label errors in the real drug-review training data: tunesmith's audit check vs cleanlab.

For each seed, `--flips` rows of the packaged train split (600 reviews) get a label drawn from the other
classes; both methods see the same flipped labels and the same MiniLM embeddings (computed once and cached
under runs/.bench-cache/). Scored against the planted rows only, so the data's own label noise counts as
false alarms for both. cleanlab (AGPL-3.0) is never a dependency of tunesmith: `pip install cleanlab` to
include it; its input is the standard recipe (out-of-fold probabilities of a 5-fold logistic regression on
the same embeddings, `cleanlab.filter.find_label_issues`). Prints one JSON line.

    python benchmarks/label_errors.py                # 5 seeds x 48 flips
    python benchmarks/label_errors.py --seeds 2 --embedder hashing   # a quick check, no model
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.audit.checks import label_errors as tl
from tunesmith.audit.embeddings import hashing_embedder, minilm_embedder
from tunesmith.data.demo import demo_table

CACHE = Path("runs/.bench-cache")


def embeddings(texts: list[str], kind: str) -> np.ndarray:
    if kind == "hashing":
        vectors = hashing_embedder()(texts)
    else:
        key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
        path = CACHE / f"minilm-{key}.npy"
        if path.is_file():
            vectors = np.load(path)
        else:
            vectors = minilm_embedder(max_length=256)(texts)
            CACHE.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def plant(y: np.ndarray, flips: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, planted rows): `flips` rows get a uniformly drawn other label."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(y), size=flips, replace=False))
    noisy = y.copy()
    noisy[rows] = (y[rows] + rng.integers(1, k, size=flips)) % k
    return noisy, rows


def score(flagged: np.ndarray, planted: np.ndarray) -> dict[str, float]:
    hit = len(np.intersect1d(flagged, planted))
    precision = hit / len(flagged) if len(flagged) else 0.0
    recall = hit / len(planted)
    f1 = 2 * precision * recall / (precision + recall) if hit else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": float(len(flagged))}


def cleanlab_flags(vectors: np.ndarray, noisy: np.ndarray, seed: int) -> np.ndarray | None:
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        return None
    probs = tl.out_of_fold_probabilities(vectors, noisy, 5, seed)
    return np.nonzero(find_label_issues(noisy, probs))[0]


def mean(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(float(np.mean([r[key] for r in results])), 4) for key in results[0]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--flips", type=int, default=48)
    parser.add_argument("--embedder", choices=["minilm", "hashing"], default="minilm")
    args = parser.parse_args(argv)
    frame = demo_table("train")
    texts = frame["review"].tolist()
    names = sorted(set(frame["rating"]))
    y = np.array([names.index(v) for v in frame["rating"]])
    start = time.perf_counter()
    vectors = embeddings(texts, args.embedder)
    embed_s = time.perf_counter() - start
    ours: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    for seed in range(args.seeds):
        noisy, planted = plant(y, args.flips, len(names), seed)
        ours.append(score(np.nonzero(tl.detect(vectors, texts, noisy, 5, seed).issues)[0], planted))
        flagged = cleanlab_flags(vectors, noisy, seed)
        if flagged is not None:
            theirs.append(score(flagged, planted))
    result: dict[str, Any] = {
        "benchmark": "label_errors", "rows": len(y), "flips": args.flips, "seeds": args.seeds,
        "embedder": args.embedder, "embed_s": round(embed_s, 1), "tunesmith": mean(ours),
        "tunesmith_per_seed_f1": [round(r["f1"], 3) for r in ours],
    }  # fmt: skip
    if theirs:
        result["cleanlab"] = mean(theirs)
        result["cleanlab_per_seed_f1"] = [round(r["f1"], 3) for r in theirs]
        base = result["cleanlab"]["f1"]
        result["f1_ratio"] = round(result["tunesmith"]["f1"] / base, 3) if base else None
        result["target_met"] = bool(base and result["f1_ratio"] >= 1.3)
    else:
        result["cleanlab"] = "not installed (pip install cleanlab)"
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
