"""What every check reads: the tables plus lazily computed, shared views (normalised texts, duplicate keys,
near-duplicate pairs, token lengths, embeddings), so each expensive step runs at most once per audit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.audit import minhash
from tunesmith.audit.text import char_similarity, is_empty, normalize_all, shorten, words
from tunesmith.config.schema import AuditConfig
from tunesmith.data.types import GROUP, LABEL, ROW, TEXT, Table
from tunesmith.findings import Finding, Severity

log = logging.getLogger(__name__)

Embedder = Callable[[list[str]], np.ndarray]
SPLIT_ORDER = ("train", "validation", "test")
EXAMPLES = 5  # examples shown per finding
SHORT_WORDS = 30  # texts under this many words get the single-word near-duplicate search too
SHORT_SEARCH = 0.75  # that search's LSH threshold, as a share of audit.near_duplicate_threshold


@dataclass
class Embedded:
    """Embeddings of a seeded sample of the non-empty rows of all splits (pooled)."""

    split: np.ndarray  # split name per embedded row
    position: np.ndarray  # position in that split
    label: np.ndarray  # label (str) per embedded row
    vectors: np.ndarray  # (n, d) float32, L2-normalised
    sampled_from: int  # non-empty rows available before sampling

    def rows_of(self, split: str, mask: np.ndarray) -> list[int]:
        return sorted(int(p) for p in self.position[mask & (self.split == split)])


EXACT_TOKEN_ROWS = 50_000  # splits up to this size get every text tokenized
TOKEN_SAMPLE = 50_000  # beyond: a seeded sample (quantiles) plus every text that may exceed max_length


@dataclass
class TokenLengths:
    """Token counts of one split: exact for every text that may exceed max_length and for `sample`;
    -1 for the other texts (they provably fit)."""

    counts: np.ndarray
    sample: np.ndarray  # positions of a uniform sample with exact counts (all positions in small splits)

    def over(self, limit: int) -> np.ndarray:
        return np.nonzero(self.counts > limit)[0]

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.counts[self.sample], q)) if len(self.sample) else 0.0

    @property
    def max(self) -> int:
        return int(self.counts.max()) if len(self.counts) else 0


class AuditContext:
    def __init__(
        self,
        tables: dict[str, Table],
        cfg: AuditConfig,
        *,
        tokenizer: Any = None,
        max_length: int = 256,
        embedder: Embedder | None = None,
        balance: str | None = None,
    ) -> None:
        order = [s for s in SPLIT_ORDER if s in tables] + [s for s in tables if s not in SPLIT_ORDER]
        self.tables = {name: tables[name] for name in order}
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.embedder = embedder
        self.balance = balance  # what the run already does about imbalance: class-weights | oversample | None

    @property
    def splits(self) -> list[str]:
        return list(self.tables)

    def frame(self, split: str) -> pd.DataFrame:
        return self.tables[split].frame

    def has_group(self) -> bool:
        return all(GROUP in t.frame.columns for t in self.tables.values())

    @cached_property
    def texts(self) -> dict[str, list[str]]:
        return {s: [_as_text(t) for t in self.frame(s)[TEXT].tolist()] for s in self.splits}

    @cached_property
    def missing_text(self) -> dict[str, np.ndarray]:
        """Rows whose text cell is missing (None / NaN), as opposed to blank."""
        return {s: self.frame(s)[TEXT].isna().to_numpy(dtype=bool) for s in self.splits}

    @cached_property
    def groups(self) -> dict[str, np.ndarray]:
        """Group value per row (object array; None where missing), only when every split has the column."""
        return {
            s: np.array(
                [None if _missing(v) else str(v) for v in self.frame(s)[GROUP].tolist()], dtype=object
            )
            for s in self.splits
        }

    @cached_property
    def labels(self) -> dict[str, np.ndarray]:
        return {s: self.frame(s)[LABEL].astype(str).to_numpy(dtype=object) for s in self.splits}

    @cached_property
    def empty(self) -> dict[str, np.ndarray]:
        return {
            s: np.fromiter((is_empty(t) for t in self.texts[s]), bool, len(self.texts[s]))
            for s in self.splits
        }

    @cached_property
    def normalized(self) -> dict[str, np.ndarray]:
        return {s: normalize_all(self.texts[s]) for s in self.splits}

    @cached_property
    def _factorized(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Integer key per row, equal for texts equal after normalisation (-1 for empty texts)."""
        joined = np.concatenate([self.normalized[s] for s in self.splits])
        codes, uniques = pd.factorize(joined)
        keys: dict[str, np.ndarray] = {}
        start = 0
        for s in self.splits:
            part = codes[start : start + len(self.normalized[s])].astype(np.int64)
            part[self.empty[s]] = -1
            keys[s] = part
            start += len(part)
        return keys, np.asarray(uniques, dtype=object)

    @property
    def keys(self) -> dict[str, np.ndarray]:
        return self._factorized[0]

    @property
    def key_texts(self) -> np.ndarray:
        return self._factorized[1]

    @cached_property
    def near(self) -> minhash.NearPairs:
        """Near-duplicate pairs between distinct normalised texts (indices into key_texts).

        Word-pair shingles miss short near-copies: one word removed from a 12-word text leaves a Jaccard of
        9/12 = 0.75. So texts under SHORT_WORDS words are searched again on single words (11/12 = 0.92),
        and those extra candidates are kept only when their characters agree as well (difflib ratio at
        the same threshold), which single words alone would not ensure (the same words reordered)."""
        cfg = self.cfg
        texts = self.key_texts.tolist()
        pairs = minhash.near_pairs(
            texts, cfg.near_duplicate_threshold, cfg.minhash_num_perm, cfg.shingle_words, cfg.seed
        )
        if cfg.shingle_words <= 1:
            return pairs
        short = np.array([i for i, t in enumerate(texts) if 0 < len(words(t)) < SHORT_WORDS], dtype=np.int64)
        if len(short) < 2:
            return pairs
        # MinHash estimates on a dozen words are noisy: search wider, then verify each candidate exactly.
        extra = minhash.near_pairs(
            [texts[i] for i in short], SHORT_SEARCH * cfg.near_duplicate_threshold, cfg.minhash_num_perm, 1,
            cfg.seed,
        )  # fmt: skip
        left, right = short[extra.left], short[extra.right]
        sims = np.array([_short_similarity(texts[a], texts[b]) for a, b in zip(left, right, strict=True)])
        keep = sims >= cfg.near_duplicate_threshold
        seen = set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))
        new = [i for i in np.nonzero(keep)[0] if (int(left[i]), int(right[i])) not in seen]
        if not new:
            return pairs
        return minhash.NearPairs(
            np.concatenate([pairs.left, left[new]]),
            np.concatenate([pairs.right, right[new]]),
            np.concatenate([pairs.similarity, sims[new]]),
        )

    @cached_property
    def token_lengths(self) -> dict[str, TokenLengths]:
        """Tokens per text: the tokenizer's count (special tokens included) when given, else words."""
        return {s: self._count_tokens(self.texts[s]) for s in self.splits}

    def _count_tokens(self, texts: list[str]) -> TokenLengths:
        n = len(texts)
        if self.tokenizer is None:
            return TokenLengths(np.fromiter((len(t.split()) for t in texts), np.int64, n), np.arange(n))
        # A sub-word token covers at least one byte of the text, so a text of b UTF-8 bytes has at most
        # b + specials (+2 for a word-start marker) tokens: texts below max_length by that bound cannot be
        # truncated and, in large splits, are counted only in a seeded sample (for the quantiles).
        specials = int(getattr(self.tokenizer, "num_special_tokens_to_add", lambda pair=False: 2)(pair=False))
        size = np.fromiter((len(t) if t.isascii() else len(t.encode()) for t in texts), np.int64, n)
        may_exceed = np.nonzero(size + specials + 2 > self.max_length)[0]
        if n <= EXACT_TOKEN_ROWS:
            sample = np.arange(n)
        else:
            sample = np.sort(np.random.default_rng(self.cfg.seed).choice(n, TOKEN_SAMPLE, replace=False))
        counted = np.union1d(sample, may_exceed)
        counts = np.full(n, -1, dtype=np.int64)
        for lo in range(0, len(counted), 4096):
            idx = counted[lo : lo + 4096]
            batch = self.tokenizer(
                [texts[i] for i in idx], add_special_tokens=True, truncation=False, verbose=False,
                return_attention_mask=False, return_token_type_ids=False,
            )  # fmt: skip
            counts[idx] = [len(ids) for ids in batch["input_ids"]]
        return TokenLengths(counts, sample)

    @property
    def embeddings_enabled(self) -> bool:
        return self.cfg.label_errors or self.embedder is not None

    @cached_property
    def embedded(self) -> Embedded:
        splits, positions = [], []
        for s in self.splits:
            idx = np.nonzero(~self.empty[s])[0]
            splits.append(np.full(len(idx), s, dtype=object))
            positions.append(idx)
        split, position = np.concatenate(splits), np.concatenate(positions)
        available = len(split)
        if available > self.cfg.embedding_max_rows:
            keep = np.sort(
                np.random.default_rng(self.cfg.seed).choice(available, self.cfg.embedding_max_rows, False)
            )
            split, position = split[keep], position[keep]
        texts = [self.texts[s][p] for s, p in zip(split, position, strict=False)]
        label = np.array([self.labels[s][p] for s, p in zip(split, position, strict=False)], dtype=object)
        embedder = self.embedder or _default_embedder(self.max_length)
        log.info("embedding %d texts for the model-based checks", len(texts))
        vectors = np.asarray(embedder(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
        return Embedded(split, position, label, vectors, available)

    def examples(self, split: str, rows: Iterable[int], **extra: list[Any]) -> list[dict[str, Any]]:
        """A few affected rows as {row (in the file), text preview, label} plus per-row `extra` values."""
        frame = self.frame(split)
        out = []
        for i, pos in enumerate(list(rows)[:EXAMPLES]):
            item: dict[str, Any] = {
                "row": int(frame[ROW].iat[pos]) if ROW in frame.columns else int(pos),
                "text": shorten(self.texts[split][pos]),
                "label": str(self.labels[split][pos]),
            }
            item.update({key: values[i] for key, values in extra.items()})
            out.append(item)
        return out


def _short_similarity(a: str, b: str) -> float:
    """The lower of the exact word-set Jaccard and the character similarity of two short texts (the same
    words reordered keep their Jaccard, a changed word keeps most of its characters: both must agree)."""
    wa, wb = set(words(a)), set(words(b))
    jaccard = len(wa & wb) / max(len(wa | wb), 1)
    return min(jaccard, char_similarity(a, b)) if jaccard else 0.0


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _as_text(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _default_embedder(max_length: int) -> Embedder:
    from tunesmith.audit.embeddings import minilm_embedder  # lazy: loads torch and the model

    return minilm_embedder(max_length=max_length)


def make_finding(
    check: str,
    severity: Severity,
    title: str,
    evidence: dict[str, Any],
    rows: list[int] | None,
    recommendation: str,
    config_patch: dict[str, Any] | None = None,
) -> Finding:
    return Finding(
        id=f"audit.{check}", stage="audit", severity=severity, title=title, evidence=evidence,
        rows=rows, recommendation=recommendation, config_patch=config_patch,
    )  # fmt: skip


def by_share(share: float, error_at: float | None, warn_at: float = 0.0) -> Severity:
    """error from `error_at` (None: never), warning above `warn_at`, else info."""
    if error_at is not None and share >= error_at:
        return "error"
    return "warning" if share > warn_at else "info"


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else (plural_noun or noun + 's')}"


def pct(share: float) -> str:
    return f"{100 * share:.1f}%" if share >= 0.001 or share == 0 else f"{100 * share:.2g}%"
