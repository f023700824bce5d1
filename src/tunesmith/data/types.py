"""Plain data exchanged between the data stage and the rest of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# Column names of a loaded table after the user's column mapping has been applied.
TEXT, LABEL, GROUP, ROW = "text", "label", "group", "row"


@dataclass
class Table:
    """One loaded file with the user's columns mapped to TEXT / LABEL / GROUP.

    `frame` has columns text, label (as str), group (str, only when a group column was given) and row
    (the 0-based data-row position in the source file, so findings and errors can point at it).
    """

    name: str  # "train" | "validation" | "test"
    path: str  # as the user wrote it
    frame: pd.DataFrame
    # TEXT / LABEL / GROUP -> the user's column name, so later messages can name the column the user knows.
    columns: dict[str, str] = field(default_factory=dict)

    def column(self, key: str) -> str:
        """The user's name for one of TEXT / LABEL / GROUP (the mapped name when unknown)."""
        return self.columns.get(key, key)


@dataclass
class Split:
    """One split ready for training: encoded labels aligned with texts."""

    name: str
    texts: list[str]
    labels: list[int]
    groups: list[str] | None
    rows: list[int]  # source-file row of each example
    source: str  # file path, or "train (held out)" for a validation split taken from train

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class DataBundle:
    labels: list[str]  # id -> label name; ids are positions in this list
    train: Split
    validation: Split
    test: Split | None = None
    notes: dict[str, object] = field(default_factory=dict)  # e.g. how the validation split was made

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels)}
