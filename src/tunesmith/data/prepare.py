"""The data stage: read the recipe's files, check them, encode labels and make the validation split."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tunesmith.config.schema import DataConfig
from tunesmith.data.augment import balance_training_split
from tunesmith.data.loaders import read_table
from tunesmith.data.types import GROUP, LABEL, ROW, TEXT, DataBundle, Split, Table
from tunesmith.data.validate import validate_for_training

MISSING_GROUP = "(missing)"  # slice name for rows whose group cell is empty
HELD_OUT = "train (held out)"
_INTEGER = re.compile(r"[+-]?\d+")


def read_tables(cfg: DataConfig) -> dict[str, Table]:
    """Read train and, when configured, validation and test; no training checks (the doctor uses this)."""
    paths = {"train": cfg.train, "validation": cfg.validation, "test": cfg.test}
    return {
        name: read_table(path, name, cfg.text, cfg.label, cfg.group)
        for name, path in paths.items()
        if path is not None
    }


def prepare_data(cfg: DataConfig) -> tuple[dict[str, Table], DataBundle]:
    """Read, validate, encode and split. Raises UserError naming the file, row and fix on bad data."""
    tables = read_tables(cfg)
    validate_for_training(tables)
    return tables, bundle_from_tables(tables, cfg)


def bundle_from_tables(tables: dict[str, Table], cfg: DataConfig) -> DataBundle:
    """Encode labels and split validated tables (text rows here, image paths in tunesmith.data.images)."""
    train = tables["train"].frame
    labels = label_names(train[LABEL])
    label2id = {name: i for i, name in enumerate(labels)}
    notes: dict[str, object] = {"label_order": "numeric" if _all_integers(labels) else "alphabetical"}

    if "validation" in tables:
        train_frame, val_frame = train, tables["validation"].frame
        val_source = tables["validation"].path
        notes |= {"validation_source": "file", "validation_note": f"from {val_source}"}
    else:
        train_idx, val_idx, split_notes = split_validation(
            train[LABEL].tolist(), cfg.validation_split, cfg.seed
        )
        train_frame, val_frame, val_source = train.iloc[train_idx], train.iloc[val_idx], HELD_OUT
        notes |= split_notes

    bundle = DataBundle(
        labels=labels,
        train=to_split("train", train_frame, label2id, cfg.train),
        validation=to_split("validation", val_frame, label2id, val_source),
        test=to_split("test", tables["test"].frame, label2id, cfg.test) if cfg.test else None,
        notes=notes,
    )
    # data.augment / data.balance: the training split only, after validation is split off.
    bundle.train, balance_notes = balance_training_split(bundle.train, labels, cfg)
    bundle.notes |= balance_notes
    return bundle


def label_names(values: Iterable[str]) -> list[str]:
    """Sorted label names; ids are positions. Integer-like labels sort by value, so "2" < "10" and 0 -> 0."""
    unique = set(values)
    if _all_integers(unique):
        return sorted(unique, key=lambda v: (int(v), v))
    return sorted(unique)


def _all_integers(values: Iterable[str]) -> bool:
    return all(_INTEGER.fullmatch(v) for v in values)


def split_validation(
    labels: list[str], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """Seeded train / validation positions, stratified by label when every class has at least 2 examples.

    Positions come back sorted (file order); the batcher shuffles anyway, and sorted output reads better.
    """
    positions = np.arange(len(labels))
    counts = Counter(labels)
    rare = sorted(label for label, count in counts.items() if count < 2)
    notes: dict[str, object] = {
        "validation_source": "train split",
        "validation_fraction": fraction,
        "split_seed": seed,
    }
    state = seed % 2**32  # sklearn takes seeds in [0, 2**32); the recipe allows any int
    reason = f"classes with fewer than 2 examples: {', '.join(map(repr, rare))}" if rare else None
    if reason is None:
        try:
            train_idx, val_idx = train_test_split(
                positions, test_size=fraction, random_state=state, stratify=labels
            )
        except ValueError as exc:  # e.g. the held-out part is smaller than the number of classes
            reason = str(exc)
    if reason is not None:
        train_idx, val_idx = train_test_split(positions, test_size=fraction, random_state=state, shuffle=True)
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    kind = "an unstratified" if reason else "a stratified"
    notes["validation_stratified"] = reason is None
    # A sentence of its own: metrics.json's data.validation is the row count, read by programs.
    notes["validation_note"] = (
        f"{kind} {fraction:.0%} of train held out (seed {seed}): {len(val_idx)} of {len(labels)} rows"
    )
    if reason is not None:
        notes["validation_fallback"] = f"stratification impossible ({reason}); split without it"
        absent = sorted(set(counts) - {labels[i] for i in train_idx})
        if absent:
            notes["classes_only_in_validation"] = absent
    return train_idx, val_idx, notes


def to_split(name: str, frame: pd.DataFrame, label2id: dict[str, int], source: str) -> Split:
    groups = None
    if GROUP in frame:
        groups = [MISSING_GROUP if pd.isna(g) else str(g) for g in frame[GROUP]]
    return Split(
        name=name,
        texts=[str(t) for t in frame[TEXT]],
        labels=[label2id[v] for v in frame[LABEL]],
        groups=groups,
        rows=[int(r) for r in frame[ROW]],
        source=source,
    )
