"""data.balance and data.augment: training split only, seeded, label-preserving, recorded in the run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunesmith.config.schema import DataConfig, Recipe
from tunesmith.data.augment import augment_text, with_balance_setting
from tunesmith.data.prepare import prepare_data
from tunesmith.errors import UserError
from tunesmith.tasks.text_classification import class_weights


def _data(toy_files: dict[str, Path], **extra: Any) -> DataConfig:
    return DataConfig(
        train=str(toy_files["train"]), text="review", label="rating", group="condition", **extra
    )


def _counts(split, labels) -> dict[str, int]:  # type: ignore[no-untyped-def]
    counts = Counter(split.labels)
    return {name: counts[i] for i, name in enumerate(labels)}


def test_oversample_balances_train_and_leaves_validation_alone(toy_files: dict[str, Path]) -> None:
    _, plain = prepare_data(_data(toy_files))
    _, balanced = prepare_data(_data(toy_files, balance="oversample"))
    before, after = _counts(plain.train, plain.labels), _counts(balanced.train, balanced.labels)
    assert len(set(before.values())) > 1 and set(after.values()) == {max(before.values())}
    assert balanced.validation == plain.validation  # the same rows, texts and labels
    assert balanced.train.texts[: len(plain.train)] == plain.train.texts
    # every added row is a copy of a training row of the same class (never a validation row)
    source = dict(zip(plain.train.rows, zip(plain.train.texts, plain.train.labels, strict=True), strict=True))
    extra = range(len(plain.train), len(balanced.train))
    assert all(
        source[balanced.train.rows[i]] == (balanced.train.texts[i], balanced.train.labels[i]) for i in extra
    )
    assert balanced.notes["train_counts_before"] == before and balanced.notes["train_counts_after"] == after
    assert balanced.notes["balance"]["added"] == {k: after[k] - before[k] for k in before}


def test_augment_is_seeded_label_preserving_and_minority_only(toy_files: dict[str, Path]) -> None:
    cfg = {"ops": ["delete", "swap"], "p": 0.2, "copies": 2, "classes": "minority"}
    _, plain = prepare_data(_data(toy_files))
    _, one = prepare_data(_data(toy_files, augment=cfg))
    _, two = prepare_data(_data(toy_files, augment=cfg))
    assert one.train == two.train  # same seed, same rows
    n = len(plain.train)
    assert one.validation == plain.validation
    before = _counts(plain.train, plain.labels)
    largest = max(before, key=before.get)  # type: ignore[arg-type]
    added = one.notes["augment"]["added"]
    assert added[largest] == 0 and all(added[k] == 2 * before[k] for k in before if k != largest)
    source = dict(zip(plain.train.rows, zip(plain.train.texts, plain.train.labels, strict=True), strict=True))
    changed = 0
    for i in range(n, len(one.train)):
        text, label = source[one.train.rows[i]]
        assert one.train.labels[i] == label  # label kept
        new = one.train.texts[i].split()
        assert Counter(new) <= Counter(text.split()) and new  # only deletions / swaps of the source words
        changed += one.train.texts[i] != text
    assert changed >= 0.8 * (len(one.train) - n)


def test_augment_with_another_seed_differs(toy_files: dict[str, Path]) -> None:
    cfg = {"ops": ["swap"], "p": 0.2, "copies": 1, "classes": "all"}
    _, a = prepare_data(_data(toy_files, augment=cfg))
    _, b = prepare_data(_data(toy_files, augment=cfg, seed=1))
    assert len(a.train) == 2 * sum(a.notes["train_counts_before"].values())  # classes: all, one copy each
    assert a.notes["augment"]["seed"] == 42

    # data.seed also moves the validation split, so compare the augmented copies of the same source rows
    def copies(bundle: Any) -> dict[int, str]:
        n = sum(bundle.notes["train_counts_before"].values())
        return dict(zip(bundle.train.rows[n:], bundle.train.texts[n:], strict=True))

    ca, cb = copies(a), copies(b)
    common = set(ca) & set(cb)
    assert len(common) >= 50
    assert sum(ca[r] != cb[r] for r in common) >= 0.5 * len(common)
    _, again = prepare_data(_data(toy_files, augment=cfg))
    assert copies(again) == ca  # the same seed, the same copies


def test_augment_operations() -> None:
    rng = np.random.default_rng(0)
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    swapped = augment_text(" ".join(words), "swap", 0.2, rng).split()
    assert sorted(swapped) == sorted(words) and swapped != words
    deleted = augment_text(" ".join(words), "delete", 0.5, rng).split()
    assert 0 < len(deleted) < len(words) and deleted == [w for w in words if w in deleted]
    assert augment_text("single", "delete", 0.9, rng) == "single"


def test_augment_unknown_class_is_a_user_error(toy_files: dict[str, Path]) -> None:
    with pytest.raises(UserError, match=r"data.augment.classes: 'sarcastic'"):
        prepare_data(_data(toy_files, augment={"classes": ["neutral", "sarcastic"]}))


def test_class_weights_balance_is_train_class_weights(toy_files: dict[str, Path]) -> None:
    recipe = Recipe(data=_data(toy_files, balance="class-weights").model_dump())
    assert not recipe.train.class_weights
    effective = with_balance_setting(recipe)
    assert effective.train.class_weights and not recipe.train.class_weights  # a copy; the input is unchanged
    _, bundle = prepare_data(effective.data)
    weights = class_weights(bundle.train.labels, len(bundle.labels)).tolist()
    recorded = bundle.notes["balance"]["weights"]
    assert [recorded[name] for name in bundle.labels] == pytest.approx(weights, abs=1e-4)
    assert bundle.notes["train_counts_before"] == bundle.notes["train_counts_after"]


def _leak(toy_files: dict[str, Path], n: int = 20) -> None:
    train = toy_files["train"].read_text().splitlines()
    with open(toy_files["test"], "a") as handle:  # n training rows leak into test: an error finding
        handle.write("\n".join(train[1 : n + 1]) + "\n")


def test_gate_error_stops_before_the_run_directory_exists(recipe_dict: dict[str, Any], toy_files) -> None:  # type: ignore[no-untyped-def]
    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.run import run

    _leak(toy_files)
    recipe_dict["audit"] |= {"gate": "error"}
    with pytest.raises(UserError, match="audit.leakage"):
        run(recipe_from_dict(recipe_dict, "test"), quiet=True)
    assert not (Path(recipe_dict["output"]["dir"]) / "toy").exists()


def test_a_tiny_run_records_balance_augment_and_the_audit(recipe_dict: dict[str, Any], toy_files) -> None:  # type: ignore[no-untyped-def]
    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.run import run

    _leak(toy_files)  # gate=warn (the default) reports the error finding and trains anyway
    recipe_dict["train"] |= {"epochs": 1}
    recipe_dict["data"] |= {"balance": "oversample", "augment": {"ops": ["delete"], "copies": 1}}
    result = run(recipe_from_dict(recipe_dict, "test"), quiet=True)
    data = json.loads((result.run_dir / "metrics.json").read_text())["data"]
    assert set(data["train_counts_after"].values()) == {data["train"] // len(data["train_counts_after"])}
    assert (
        sum(data["train_counts_before"].values())
        + sum(data["augment"]["added"].values())
        + sum(data["balance"]["added"].values())
        == data["train"]
    )
    assert data["augment"]["ops"] == ["delete"] and data["balance"]["method"] == "oversample"
    assert data["validation_note"].startswith("a stratified")
    # counts stay numbers under their own keys (programs add them up)
    assert (
        isinstance(data["validation"], int)
        and data["validation"] + sum(data["train_counts_before"].values()) == 160
    )
    audit = json.loads((result.run_dir / "audit.json").read_text())
    assert audit["stats"]["splits"]["train"]["rows"] == 160  # the audit sees the data as given
    assert "audit.leakage" in {f["id"] for f in audit["findings"] if f["severity"] == "error"}
