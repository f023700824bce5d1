"""Checks that data is fit to train on, separate from reading so `tunesmith doctor` can load dirty data.

Each check raises UserError naming the file, the rows and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping

from tunesmith.data.messages import ROWS_NOTE, describe_rows, did_you_mean
from tunesmith.data.types import LABEL, ROW, TEXT, Table
from tunesmith.errors import UserError


def validate_for_training(tables: Mapping[str, Table]) -> None:
    """Raise UserError on the first problem that would make training meaningless.

    `tables` maps "train" (required), "validation" and "test" (optional) to loaded tables.
    """
    for table in tables.values():
        check_texts(table)
    train = tables["train"]
    check_classes(train)
    known = set(train.frame[LABEL])
    for name in ("validation", "test"):
        if name in tables:
            check_known_labels(tables[name], known, train.path)


def empty_text_rows(table: Table) -> list[int]:
    """Source rows whose text is null, empty or only whitespace."""
    text = table.frame[TEXT]
    empty = text.isna() | (text.fillna("").astype(str).str.strip() == "")
    return table.frame.loc[empty, ROW].astype(int).tolist()


def check_texts(table: Table) -> None:
    rows = empty_text_rows(table)
    if rows:
        raise UserError(
            f"data.{table.name}: {table.path}: empty or null text in column '{table.column(TEXT)}' in "
            f"{len(rows)} of {len(table.frame)} rows: {describe_rows(rows)}; remove those rows or run "
            "`tunesmith doctor --fix` to drop them."
        )


def check_classes(table: Table) -> None:
    classes = table.frame[LABEL].unique().tolist()
    if len(classes) < 2:
        raise UserError(
            f"data.{table.name}: {table.path}: column '{table.column(LABEL)}' has only one class "
            f"({classes[0]!r}) in all {len(table.frame)} rows; a classifier needs at least two: check that "
            "data.label names the label column, or add examples of the other classes."
        )


def check_known_labels(table: Table, known: set[str], train_path: str) -> None:
    """Every label in validation / test must occur in training, or the model can never predict it."""
    frame = table.frame
    unseen = frame.loc[~frame[LABEL].isin(known)]
    if unseen.empty:
        return
    parts = []
    for value, group in unseen.groupby(LABEL, sort=True):
        guess = did_you_mean(str(value), sorted(known))
        hint = f" (did you mean {guess!r}?)" if guess else ""
        parts.append(
            f"{value!r} in {describe_rows(group[ROW].astype(int).tolist(), limit=3, note=False)}{hint}"
        )
    raise UserError(
        f"data.{table.name}: {table.path}: labels in column '{table.column(LABEL)}' never seen in training "
        f"({train_path}): {'; '.join(parts)} {ROWS_NOTE}; fix their spelling, add examples of them to the "
        "training data, or remove those rows."
    )
