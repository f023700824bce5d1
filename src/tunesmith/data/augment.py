"""Balancing and augmentation of the training split (data.balance, data.augment).

Both act on the training split only, after the validation split is made, so validation and test stay the
data as it is. Both are seeded by data.seed and recorded in bundle.notes (and so in metrics.json "data"):
the class counts before and after, and what was added.

- data.augment adds `copies` edited copies of every training row of the chosen classes (default: every class
  smaller than the largest). Each copy applies one operation picked at random from `ops`: "delete" drops
  each word with probability p (at least one word stays), "swap" swaps two random words round(p x words)
  times (at least once); "typo", "case" and "punctuation" are the robustness suite's perturbations
  (tunesmith.data.perturb: a keyboard-neighbour typo per word with probability p, upper/lower/title case,
  punctuation stripped). All keep the words that carry the label in most texts, so the label is kept
  (Wei and Zou, EDA, 2019).
- data.balance = "oversample" then repeats randomly drawn rows of every smaller class (without
  replacement while rows last) until each class has as many rows as the largest.
- data.balance = "class-weights" leaves the rows alone and turns on train.class_weights (see
  `with_balance_setting`): the loss is weighted by n / (k x count) per class, exactly as the loop does.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from tunesmith.config.schema import AugmentConfig, DataConfig, Recipe
from tunesmith.data import perturb
from tunesmith.data.types import Split
from tunesmith.errors import UserError


def with_balance_setting(recipe: Recipe) -> Recipe:
    """The recipe with train.class_weights on when data.balance is class-weights (same effect, one switch)."""
    if recipe.data.balance != "class-weights" or recipe.train.class_weights:
        return recipe
    return recipe.model_copy(update={"train": recipe.train.model_copy(update={"class_weights": True})})


def balance_training_split(split: Split, labels: list[str], cfg: DataConfig) -> tuple[Split, dict[str, Any]]:
    """Apply data.augment then data.balance to the training split; returns it and the notes to record."""
    if cfg.augment is None and cfg.balance is None:
        return split, {}
    before = _counts(split, labels)
    notes: dict[str, Any] = {"train_counts_before": before}
    rng = np.random.default_rng(cfg.seed)
    if cfg.augment is not None:
        split, added = augment_split(split, labels, cfg.augment, rng)
        notes["augment"] = {**cfg.augment.model_dump(), "added": added, "seed": cfg.seed}
    if cfg.balance == "oversample":
        split, added = oversample_split(split, labels, rng)
        notes["balance"] = {"method": "oversample", "added": added, "seed": cfg.seed}
    elif cfg.balance == "class-weights":
        counts = _counts(split, labels)
        n, k = sum(counts.values()), len(labels)
        weights = {name: round(n / (k * max(c, 1)), 4) for name, c in counts.items()}
        notes["balance"] = {"method": "class-weights", "train.class_weights": True, "weights": weights}
    notes["train_counts_after"] = _counts(split, labels)
    return split, notes


def augment_split(
    split: Split, labels: list[str], cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[Split, dict[str, int]]:
    """Add cfg.copies augmented copies of every row of the selected classes; returns the rows added per class."""
    chosen = _chosen_classes(split, labels, cfg.classes)
    positions = [i for i, y in enumerate(split.labels) if labels[y] in chosen]
    picks: list[int] = []
    texts: list[str] = []
    for pos in positions:
        for _ in range(cfg.copies):
            op = cfg.ops[int(rng.integers(len(cfg.ops)))]
            texts.append(augment_text(split.texts[pos], op, cfg.p, rng))
            picks.append(pos)
    added = Counter(labels[split.labels[p]] for p in picks)
    return _extended(split, picks, texts), {name: added.get(name, 0) for name in labels}


def augment_text(text: str, op: str, p: float, rng: np.random.Generator) -> str:
    """One label-preserving edit of `text`: word deletion or swap, or a typo / case / punctuation change."""
    if op == "typo":
        return perturb.typo(text, rng, p)
    if op in perturb.AUGMENT_OPS:
        return perturb.AUGMENT_OPS[op](text, rng)
    words = text.split()
    if len(words) < 2:
        return text
    if op == "delete":
        keep = rng.random(len(words)) >= p
        if not keep.any():
            keep[int(rng.integers(len(words)))] = True
        return " ".join(w for w, k in zip(words, keep, strict=True) if k)
    if op == "swap":
        for _ in range(max(1, round(p * len(words)))):
            i, j = rng.choice(len(words), size=2, replace=False)
            words[i], words[j] = words[j], words[i]
        return " ".join(words)
    raise ValueError(f"unknown augmentation op {op!r}")


def oversample_split(
    split: Split, labels: list[str], rng: np.random.Generator
) -> tuple[Split, dict[str, int]]:
    """Repeat random rows of every smaller class until each class is as large as the largest."""
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(split.labels):
        by_class.setdefault(y, []).append(i)
    target = max(len(rows) for rows in by_class.values())
    picks: list[int] = []
    added = {name: 0 for name in labels}
    for y, rows in sorted(by_class.items()):
        need = target - len(rows)
        while need > 0:  # whole shuffled passes first, so no row is repeated twice before all once
            take = rng.permutation(rows)[:need].tolist()
            picks += take
            need -= len(take)
        added[labels[y]] = target - len(rows)
    return _extended(split, picks, [split.texts[p] for p in picks]), added


def _chosen_classes(split: Split, labels: list[str], classes: str | list[str]) -> set[str]:
    counts = _counts(split, labels)
    if classes == "all":
        return set(labels)
    if classes == "minority":
        largest = max(counts.values())
        return {name for name, c in counts.items() if 0 < c < largest}
    unknown = sorted(set(classes) - set(labels))
    if unknown:
        raise UserError(
            f"data.augment.classes: {', '.join(map(repr, unknown))} not among the training labels "
            f"({', '.join(labels)}); use labels from the data, 'minority' or 'all'."
        )
    return set(classes)


def _extended(split: Split, picks: list[int], texts: list[str]) -> Split:
    """`split` plus rows copied from positions `picks` with the given texts (label, group, row kept)."""
    if not picks:
        return split
    return Split(
        name=split.name,
        texts=split.texts + texts,
        labels=split.labels + [split.labels[p] for p in picks],
        groups=None if split.groups is None else split.groups + [split.groups[p] for p in picks],
        rows=split.rows + [split.rows[p] for p in picks],
        source=split.source,
    )


def _counts(split: Split, labels: list[str]) -> dict[str, int]:
    counts = Counter(split.labels)
    return {name: counts.get(i, 0) for i, name in enumerate(labels)}
