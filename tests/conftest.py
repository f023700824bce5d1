"""Shared fixtures: a tiny random BERT (real architecture, packaged MiniLM tokenizer) and toy data."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tunesmith.testing import make_tiny_bert, make_tiny_llama

WORDS = {
    "positive": ["great", "excellent", "wonderful", "helped", "love", "amazing", "relief", "best"],
    "negative": ["awful", "terrible", "worse", "pain", "hate", "useless", "nausea", "worst"],
    "neutral": ["okay", "average", "fine", "moderate", "unsure", "mixed", "some", "maybe"],
}
FILLER = ["the", "drug", "i", "took", "it", "for", "weeks", "and", "was", "my", "doctor", "said"]


# Causal-LM test text: plain sentences of a small medical vocabulary.
LM_WORDS = [
    "the",
    "patient",
    "took",
    "the",
    "tablet",
    "daily",
    "and",
    "the",
    "pain",
    "eased",
    "after",
    "two",
    "weeks",
    "of",
    "steady",
    "use",
]


def lm_text(rng: random.Random, low: int, high: int) -> str:
    """One sentence of `low`..`high` words drawn from LM_WORDS."""
    return " ".join(rng.choices(LM_WORDS, k=rng.randint(low, high)))


def toy_rows(n: int, seed: int, neutral_share: float = 0.2) -> list[tuple[str, str, str]]:
    """Separable 3-class texts: each label has its own keywords among shared filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "neutral" if rng.random() < neutral_share else rng.choice(["positive", "negative"])
        words = rng.choices(FILLER, k=rng.randint(4, 18)) + rng.choices(WORDS[label], k=rng.randint(2, 4))
        rng.shuffle(words)
        rows.append((" ".join(words) + f" #{i}", label, rng.choice(["pain", "acne", "migraine"])))
    return rows


def write_tsv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("review\trating\tcondition\n" + "".join(f"{t}\t{label}\t{g}\n" for t, label, g in rows))
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Llama (hidden 32, 2 layers) with the SmolLM2 tokenizer (chat template included)."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture()
def toy_files(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    data.mkdir()
    return {
        "train": write_tsv(data / "train.tsv", toy_rows(160, seed=1)),
        "test": write_tsv(data / "test.tsv", toy_rows(60, seed=2)),
    }


@pytest.fixture()
def recipe_dict(tmp_path: Path, tiny_model: Path, toy_files: dict[str, Path]) -> dict[str, Any]:
    """A small, fast recipe on the tiny model: fp32 so results are identical on every CPU."""
    return {
        "model": {"name": str(tiny_model), "max_length": 64},
        "data": {"train": str(toy_files["train"]), "test": str(toy_files["test"]), "text": "review",
                 "label": "rating", "group": "condition"},
        "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "log_every": 2},
        "output": {"dir": str(tmp_path / "runs"), "name": "toy"},
        # the confident-learning check embeds with the real MiniLM: its own tests cover it
        "audit": {"label_errors": False},
        # the cheap evaluation checks; latency (ONNX export) and explanations have their own tests
        "eval": {"suite": ["slices", "calibration", "baseline"]},
    }  # fmt: skip
