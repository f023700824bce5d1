"""The embedded causal-LM demo data: review corpus, instructions from the review columns, retain set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.data.lm import lm_records, read_lm_file
from tunesmith.data.lm_demo import (
    clean_review,
    demo_corpus,
    demo_instructions,
    demo_retain_chats,
    demo_retain_text,
)


def test_corpus_is_the_cleaned_reviews() -> None:
    train, test = demo_corpus("train"), demo_corpus("test")
    assert (len(train), len(test)) == (600, 379) and list(train.columns) == ["text"]
    assert not train.text.str.startswith('"').any() and not train.text.str.contains("&#039;").any()
    assert clean_review('"It&#039;s  fine &amp;amp; cheap"') == "It's fine & cheap"


def test_instructions_are_built_from_the_review_columns() -> None:
    frame = demo_instructions("train")
    assert len(frame) == 1200 and list(frame.columns) == ["prompt", "response"]
    assert frame.prompt[0] == "Write a patient review of Nubain for pain."
    assert frame.response[0] == demo_corpus("train").text[0]
    assert frame.response[1] == "The review is positive." and frame.prompt[1].endswith(frame.response[0])
    assert not frame.prompt.str.contains("Disorde\\.|</span>").any()
    assert len(demo_instructions("train", rating_questions=False)) == 600


def test_retain_set_is_everyday_dialogue() -> None:
    text, chats = demo_retain_text(), demo_retain_chats()
    assert len(text) == len(chats) > 500
    assert any("How are you doing?" in t for t in text.text)
    assert all(chat[-1]["role"] == "assistant" for chat in chats.messages)
    lm_records(chats)  # every chat is valid causal-LM data


def test_export_demo_task_causal_lm_writes_loadable_jsonl(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "export-demo", "--task", "causal-lm", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["corpus-test.jsonl", "corpus-train.jsonl", "instructions-test.jsonl",
                     "instructions-train.jsonl", "retain.jsonl"]  # fmt: skip
    assert lm_records(read_lm_file(tmp_path / "instructions-train.jsonl")).kind == "prompt-response"
    assert lm_records(read_lm_file(tmp_path / "corpus-test.jsonl")).kind == "text"
    again = CliRunner().invoke(app, ["data", "export-demo", "--task", "causal-lm", str(tmp_path)])
    assert again.exit_code == 0  # same content: harmless to repeat
    (tmp_path / "retain.jsonl").write_text(json.dumps({"text": "mine"}) + "\n")
    clash = CliRunner().invoke(app, ["data", "export-demo", "--task", "causal-lm", str(tmp_path)])
    assert clash.exit_code == 2 and "already exists with other content" in clash.output
    assert json.loads((tmp_path / "retain.jsonl").read_text()) == {"text": "mine"}  # never clobbered


@pytest.mark.parametrize("task", ["image", "causal_lm"])
def test_export_demo_unknown_task(tmp_path: Path, task: str) -> None:
    result = CliRunner().invoke(app, ["data", "export-demo", "--task", task, str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown task" in result.output and not (tmp_path / "x").exists()
