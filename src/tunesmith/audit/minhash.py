"""Near-duplicate search: MinHash signatures over word shingles and LSH banding, vectorised with numpy.

datasketch's optimiser picks the banding (b bands of r rows) for the configured Jaccard threshold; the
signatures and buckets themselves are computed on whole arrays, because one datasketch object per text
costs tens of microseconds and a Python dict per band, which is minutes and gigabytes at a million texts.

Signatures use multiply-shift hashing (Dietzfelbinger et al.): h_p(x) = (a_p * x + b_p mod 2^64) >> 32 with
odd random a_p, a 2-universal family, so no modular arithmetic is needed. Buckets are found by sorting the
band keys; pairs are taken between bucket members at most WINDOW positions apart in the sorted order (all
pairs for buckets up to WINDOW members, a chain through larger buckets), then verified on the full
signature.
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from datasketch import MinHashLSH

WINDOW = 16
_BLOCK = 1 << 13  # shingles per signature block: num_perm x block uint64 stays in cache (8 MiB)
_WORKERS = max(1, min(4, os.cpu_count() or 1))
_PAD = np.uint64(0)
_TEXT_CHUNK = 100_000
_SEP = "\x01"
# Punctuation and control characters -> space: "great!" and "great" are one word; _SEP stays unique.
_TO_SPACE = str.maketrans({c: " " for c in string.punctuation + "".join(map(chr, range(32))) if c != _SEP})
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class NearPairs:
    """Verified pairs of item indices (left < right) with their estimated Jaccard similarity."""

    left: np.ndarray
    right: np.ndarray
    similarity: np.ndarray

    def __len__(self) -> int:
        return len(self.left)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads dense integer ids over all 64 bits."""
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of all words (flat, text by text) and the number of words per text.

    Texts are processed in chunks as one joined string split once (a C loop, not one per text); the
    separator is blanked out of any text that contains it.
    """
    hashes: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    for lo in range(0, len(texts), _TEXT_CHUNK):
        chunk = texts[lo : lo + _TEXT_CHUNK]
        joined = _SEP.join(chunk)
        if joined.count(_SEP) != len(chunk) - 1:  # a text holds the separator itself: blank it out
            joined = _SEP.join(t.replace(_SEP, " ") for t in chunk)
        joined = joined.translate(_TO_SPACE).replace(_SEP, f" {_SEP} ")
        tokens = np.array(joined.split(), dtype=object)
        is_sep = tokens == _SEP
        bounds = np.concatenate([[-1], np.nonzero(is_sep)[0], [len(tokens)]])
        lengths.append(np.diff(bounds) - 1)
        hashes.append(pd.util.hash_array(tokens[~is_sep]))
    if not hashes:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return np.concatenate(hashes), np.concatenate(lengths).astype(np.int64)


def shingle_hashes(texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every k-word shingle (flat, text by text) and the count per text.

    A text with fewer than k words (but at least one) is one shingle of all its words.
    """
    ids, lengths = word_hashes(texts)
    n_tokens = len(ids)
    if n_tokens == 0:
        return np.zeros(0, np.uint64), np.zeros(len(texts), np.int64)
    row = np.repeat(np.arange(len(texts)), lengths)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(n_tokens) - starts[row]
    length = lengths[row]
    first = np.nonzero(pos <= np.maximum(length - k, 0))[0]
    acc = np.full(len(first), _GOLDEN, dtype=np.uint64)
    for t in range(k):
        inside = pos[first] + t < length[first]
        value = np.where(inside, ids[np.minimum(first + t, n_tokens - 1)], _PAD)
        acc = _mix(acc ^ value)
    return acc, np.bincount(row[first], minlength=len(texts)).astype(np.int64)


def signatures(hashes: np.ndarray, counts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signature (n, num_perm) uint32; texts without shingles keep the all-max signature."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    sig = np.full((len(counts), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    rows = np.nonzero(counts)[0]
    ends = np.cumsum(counts[rows])
    starts = ends - counts[rows]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(rows):
        j = max(int(np.searchsorted(ends, starts[i] + _BLOCK, side="right")), i + 1)
        spans.append((i, j))
        i = j

    def work(worker: int) -> None:
        # Each worker reuses one cache-sized buffer: fresh large arrays cost more in page faults than maths.
        buffer = np.empty((num_perm, _BLOCK), dtype=np.uint64)
        for i, j in spans[worker::_WORKERS]:
            lo, hi = int(starts[i]), int(ends[j - 1])
            block = buffer[:, : hi - lo] if hi - lo <= _BLOCK else np.empty((num_perm, hi - lo), np.uint64)
            np.multiply(a[:, None], hashes[None, lo:hi], out=block)
            block += b[:, None]
            block >>= np.uint64(32)
            sig[rows[i:j]] = np.minimum.reduceat(block, starts[i:j] - lo, axis=1).T

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:  # numpy ufuncs release the GIL
        list(pool.map(work, range(_WORKERS)))
    return sig


def banding(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's optimiser picks for this threshold."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def _band_keys(band: np.ndarray) -> np.ndarray:
    acc = np.full(len(band), _GOLDEN, dtype=np.uint64)
    for column in band.T:
        acc = _mix(acc ^ column.astype(np.uint64))
    return acc


def candidate_pairs(sig: np.ndarray, items: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Unique candidate pairs as codes left * n + right (left < right) over indices `items` of `sig`."""
    n = len(sig)
    codes: list[np.ndarray] = []
    for band in range(bands):
        keys = _band_keys(sig[items, band * rows : (band + 1) * rows])
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        group = np.concatenate([[0], np.cumsum(sorted_keys[1:] != sorted_keys[:-1])])
        members = items[order]
        for d in range(1, WINDOW):
            same = group[d:] == group[:-d]
            if not same.any():
                break
            left, right = members[:-d][same], members[d:][same]
            codes.append(np.minimum(left, right) * n + np.maximum(left, right))
        if sum(len(c) for c in codes) > 4_000_000:  # bound memory on pathological data
            codes = [np.unique(np.concatenate(codes))]
    return np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)


def verify(sig: np.ndarray, codes: np.ndarray, threshold: float) -> NearPairs:
    """Keep candidate pairs whose signature agreement (the Jaccard estimate) reaches `threshold`."""
    n = len(sig)
    left, right = codes // n, codes % n
    sims = np.empty(len(codes), dtype=np.float32)
    step = max(1, (1 << 24) // max(1, sig.shape[1]))
    for lo in range(0, len(codes), step):
        hi = lo + step
        sims[lo:hi] = (sig[left[lo:hi]] == sig[right[lo:hi]]).mean(axis=1)
    keep = sims >= threshold
    return NearPairs(left[keep], right[keep], sims[keep])


def near_pairs(texts: Sequence[str], threshold: float, num_perm: int, shingle: int, seed: int) -> NearPairs:
    """Pairs of `texts` (by index) whose word-shingle sets have estimated Jaccard >= threshold."""
    hashes, counts = shingle_hashes(texts, shingle)
    sig = signatures(hashes, counts, num_perm, seed)
    del hashes
    bands, rows = banding(threshold, num_perm)
    codes = candidate_pairs(sig, np.nonzero(counts)[0], bands, rows)
    return verify(sig, codes, threshold)
