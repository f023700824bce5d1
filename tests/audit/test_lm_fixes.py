"""`doctor --task causal-lm --fix`: cleaned copies of text and prompt/response files, fixes.jsonl, inputs kept."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from conftest import lm_text
from tunesmith.cli import app


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [lm_text(rng, 6, 10) + f" number {seed}-{i}" for i in range(n)]


def _doctor(tiny_llama: Path, *args: str) -> str:
    base = ["doctor", "--task", "causal-lm", "--model", str(tiny_llama), "--max-length", "40", "--quiet"]
    result = CliRunner().invoke(app, [*base[:1], *args, *base[1:]])
    assert result.exit_code == 0, result.output
    return result.output


def test_fix_cleans_a_text_corpus(tiny_llama: Path, tmp_path: Path) -> None:
    train_texts, val_texts = _texts(24, 1), _texts(6, 2)
    train_texts[3] = train_texts[2]  # exact duplicate
    train_texts[5] = "   "  # empty
    train_texts[7] = "the dose was fine &amp; the nausea went away after a week"  # an HTML entity
    train_texts[9] = " ".join(["word"] * 80) + " long"  # over --max-length 40
    train_texts[11] = val_texts[0]  # leaks into validation
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(json.dumps({"text": t, "source": f"s{i}"}) + "\n" for i, t in enumerate(train_texts))
    )
    validation = tmp_path / "validation.jsonl"
    validation.write_text("".join(json.dumps({"text": t, "source": "v"}) + "\n" for t in val_texts))
    before = train.read_bytes()
    output = _doctor(tiny_llama, str(train), "--validation", str(validation), "--fix", str(tmp_path / "out"))
    assert "rows removed or repaired" in output
    assert train.read_bytes() == before  # the input is never touched
    fixed = pd.read_json(tmp_path / "out/train.jsonl", lines=True)
    fixes = [json.loads(x) for x in (tmp_path / "out/fixes.jsonl").read_text().splitlines()]
    by_row = {(f["split"], f["row"]): f for f in fixes}
    assert by_row[("train", 3)]["fix"] == "exact_duplicates" and by_row[("train", 5)]["fix"] == "empty_texts"
    assert (
        by_row[("train", 7)]["action"] == "repair" and by_row[("train", 7)]["after"]["text"].count("&") == 1
    )
    assert "&amp;" not in " ".join(fixed["text"]) and "the dose was fine & the nausea" in " ".join(
        fixed["text"]
    )
    assert list(fixed.columns) == ["text", "source"]  # every column kept
    assert set(fixed["source"]) == {f"s{i}" for i in range(24)} - {"s3", "s5", "s11"}
    assert not (set(fixed["text"]) & set(pd.read_json(tmp_path / "out/validation.jsonl", lines=True)["text"]))
    assert any(t.endswith(" long") for t in fixed["text"])  # not a default fix
    # on request: examples longer than max_length go too
    _doctor(tiny_llama, str(train), "--fix", str(tmp_path / "out2"), "--fix-only", "long_examples")
    kept = pd.read_json(tmp_path / "out2/train.jsonl", lines=True)
    assert len(kept) == 23 and not any(t.endswith(" long") for t in kept["text"])


def test_fix_cleans_prompt_response_csv(tiny_llama: Path, tmp_path: Path) -> None:
    rows = [{"prompt": f"question {i}?", "response": t, "id": i} for i, t in enumerate(_texts(16, 3))]
    rows[2]["response"] = ""
    rows[4]["response"] = "the rash caf\u00c3\u00a9 cleared &quot;quickly&quot; after two weeks"
    train = tmp_path / "train.csv"
    pd.DataFrame(rows).to_csv(train, index=False)
    _doctor(tiny_llama, str(train), "--fix", str(tmp_path / "out"))
    fixed = pd.read_csv(tmp_path / "out/train.csv", keep_default_na=False)
    assert list(fixed.columns) == ["prompt", "response", "id"] and 2 not in set(fixed["id"])
    repaired = fixed.loc[fixed["id"] == 4, "response"].item()
    assert "&quot;" not in repaired and '"quickly"' in repaired
    assert (
        fixed.loc[fixed["id"] == 5, "response"].item() == rows[5]["response"]
    )  # untouched rows as they were
