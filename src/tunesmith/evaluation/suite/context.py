"""Plain data every check receives: the evaluation set, the validation and training texts, the model handle.

Predictions are computed once per set and shared by the checks (`Context.probs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config.schema import EvalConfig
from tunesmith.evaluation.suite.predictor import ModelHandle


@dataclass
class EvalSet:
    """Labelled texts (label ids into Context.labels) with their slice columns."""

    name: str  # "test" | "validation" | a file
    texts: list[str]
    labels: np.ndarray
    rows: list[int]
    slices: dict[str, list[str]] = field(default_factory=dict)  # column -> value per example

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: np.ndarray) -> EvalSet:
        pick = [int(i) for i in index]
        return EvalSet(self.name, [self.texts[i] for i in pick], self.labels[pick], [self.rows[i] for i in pick],
                       {k: [v[i] for i in pick] for k, v in self.slices.items()})  # fmt: skip


@dataclass
class Context:
    run_dir: Path
    cfg: EvalConfig
    handle: ModelHandle
    eval_set: EvalSet  # test (validation when there is none), sampled down to eval.max_examples
    validation: EvalSet | None = None  # temperature scaling is fitted here
    train: EvalSet | None = None  # the baseline trains here
    group_column: str | None = None  # the data.group column (train.group_weights weights by it)
    seed: int = 0
    device: str = "cpu"
    _cache: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return self.handle.labels

    def probs(self, which: str = "eval") -> np.ndarray:
        """Probabilities on the evaluation ("eval") or validation set, computed once."""
        if which not in self._cache:
            data = self.eval_set if which == "eval" else self.validation
            assert data is not None, which
            self._cache[which] = self.handle.predict(data.texts)
        return self._cache[which]


def sample(data: EvalSet, limit: int, seed: int) -> EvalSet:
    """At most `limit` examples, a seeded sample stratified by label so rare classes keep their share."""
    return data if len(data) <= limit else data.subset(sample_index(data.labels, limit, seed))


def sample_index(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted positions of at most `limit` examples, stratified by label (all of them when few enough)."""
    if len(labels) <= limit:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picks: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = max(1, round(limit * len(members) / len(labels)))
        picks += rng.choice(members, size=min(take, len(members)), replace=False).tolist()
    return np.asarray(sorted(picks)[:limit], dtype=np.int64)


def ci(values: np.ndarray, confidence: float = 0.95) -> list[float]:
    alpha = (1.0 - confidence) / 2.0
    return [float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))]


def proportion_ci(hits: int, n: int) -> list[float]:
    """Wilson 95% interval of a proportion (flip rates): sane at 0 and 1, unlike the normal one."""
    if n == 0:
        return [0.0, 1.0]
    z, p = 1.959964, hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def clip(text: str, chars: int = 300) -> str:
    return text if len(text) <= chars else text[:chars] + " …"


Result = dict[str, Any]
