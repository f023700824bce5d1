"""The data doctor on language-model corpora: planted duplicates, leakage, empties, truncation, template."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer
from typer.testing import CliRunner

from tunesmith.audit.lm import read_lm_split, run_lm_audit
from tunesmith.cli import app
from tunesmith.config.schema import AuditConfig

VOCAB = ["tablet", "pain", "sleep", "dose", "week", "doctor", "nausea", "relief", "morning", "night", "skin", "rash", "headache", "mood", "appetite", "energy", "weight", "blood", "pressure", "heart", "stomach", "joint", "muscle", "anxiety", "focus"]  # fmt: skip


def _sentences(n: int, seed: int, words: tuple[int, int] = (10, 18)) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(VOCAB, k=rng.randint(*words))) + f" number {i}" for i in range(n)]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _ids(finding_list: list[Any]) -> dict[str, Any]:
    return {f.id: f for f in finding_list}


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_llama)


def test_text_corpus_duplicates_leakage_empties_and_truncation(tokenizer: Any) -> None:
    import pandas as pd

    train = _sentences(60, 1)
    train[10] = train[3]  # exact duplicate
    train[11] = " ".join(train[4].split()[1:])  # near duplicate: first word removed
    train[12] = "   "  # whitespace only
    train[13] = " ".join(_sentences(1, 9, (150, 160))[0].split())  # far longer than max_length
    test = _sentences(20, 2)
    test[0] = train[5]  # leaked
    splits = {
        "train": read_lm_split("train", "train.jsonl", pd.DataFrame({"text": train})),
        "test": read_lm_split("test", "test.jsonl", pd.DataFrame({"text": test})),
    }
    report = run_lm_audit(splits, AuditConfig(label_errors=False), tokenizer=tokenizer, max_length=64)
    found = _ids(report.findings)
    assert found["audit.exact_duplicates"].rows == [10]
    assert 11 in (found["audit.near_duplicates"].rows or [])
    assert found["audit.empty_texts"].rows == [12] and found["audit.empty_texts"].severity == "error"
    assert found["audit.leakage"].rows == [5] and found["audit.leakage"].evidence["other_split"] == "test"
    cut = found["audit.lm_truncation"]
    assert cut.rows == [13] and cut.evidence["max"] > 64
    assert "label" not in json.dumps(found["audit.leakage"].evidence["examples"])  # no label fields
    assert "label_errors" in report.stats["checks_skipped"]
    assert not {"audit.class_imbalance", "audit.label_sets", "audit.conflicting_labels"} & found.keys()
    # a clean corpus raises nothing above info
    clean = {"train": read_lm_split("train", "t", pd.DataFrame({"text": _sentences(40, 5)}))}
    quiet = run_lm_audit(clean, AuditConfig(label_errors=False), tokenizer=tokenizer, max_length=64)
    assert [f.id for f in quiet.findings if f.severity != "info"] == []


def test_prompt_response_cut_and_empty_responses_and_template(tokenizer: Any, tmp_path: Path) -> None:
    import pandas as pd

    prompts = [f"How did dose {i} go?" for i in range(30)]
    responses = _sentences(30, 3)
    responses[2] = ""  # empty response
    responses[7] = " ".join(_sentences(1, 4, (120, 130))[0].split())  # cut by max_length
    frame = pd.DataFrame({"prompt": prompts, "response": responses})
    splits = {"train": read_lm_split("train", "qa.jsonl", frame)}
    report = run_lm_audit(splits, AuditConfig(label_errors=False), tokenizer=tokenizer, max_length=96)
    found = _ids(report.findings)
    assert found["audit.empty_responses"].rows == [2] and found["audit.empty_responses"].severity == "error"
    cut = found["audit.response_truncation"]
    assert cut.rows == [7] and cut.config_patch and cut.config_patch["model.max_length"] > 96
    assert found["audit.lm_truncation"].rows == [7]

    # the same pairs through a tokenizer without a chat template: a warning (plain formatting)
    plain = AutoTokenizer.from_pretrained(Path(tokenizer.name_or_path))
    plain.chat_template = None
    report = run_lm_audit(splits, AuditConfig(label_errors=False), tokenizer=plain, max_length=96)
    assert _ids(report.findings)["audit.chat_template"].severity == "warning"
    chats = pd.DataFrame({"messages": [json.dumps([{"role": "user", "content": "hi"},
                                                   {"role": "assistant", "content": "hello"}])] * 3})  # fmt: skip
    report = run_lm_audit({"train": read_lm_split("train", "c", chats)}, AuditConfig(label_errors=False),
                          tokenizer=plain, max_length=96)  # fmt: skip
    assert _ids(report.findings)["audit.chat_template"].severity == "error"


def test_doctor_cli_on_causal_lm_data(tiny_llama: Path, tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "response": s} for i, s in enumerate(_sentences(20, 6))]
    rows[4]["response"] = " "
    train = _jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "audit.json"
    runner = CliRunner()
    args = ["doctor", str(train), "--task", "causal-lm", "--model", str(tiny_llama), "--max-length", "64"]
    result = runner.invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    audit = json.loads(out.read_text())
    assert audit["stats"]["task"] == "causal-lm" and audit["stats"]["kind"] == "prompt-response"
    assert any(f["id"] == "audit.empty_responses" and f["rows"] == [4] for f in audit["findings"])
    # bad input: one line, exit 2
    for extra, words in ((["--label", "x"], "no label"), (["--text", "nope"], "no column 'nope'"),
                         (["--fix", str(tmp_path)], "not empty"),
                         (["--fix", str(tmp_path / "fixed"), "--fix-only", "label_errors"], "unknown causal-lm fix"),
                         (["--fix-only", "encoding"], "add --fix")):  # fmt: skip
        bad = runner.invoke(app, [*args, *extra])
        assert bad.exit_code == 2 and words in bad.output, bad.output
    assert not (tmp_path / "fixed").exists()
    missing = runner.invoke(app, ["doctor", str(train)])
    assert missing.exit_code == 2 and "--task causal-lm" in missing.output


def test_run_gate_stops_a_leaking_lm_run_before_the_run_directory(tiny_llama: Path, tmp_path: Path) -> None:
    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.errors import UserError
    from tunesmith.run import run

    texts = _sentences(24, 7)
    recipe = recipe_from_dict({
        "task": "causal-lm", "model": {"name": str(tiny_llama), "max_length": 48},
        "data": {"train": str(_jsonl(tmp_path / "train.jsonl", [{"text": t} for t in texts])),
                 "test": str(_jsonl(tmp_path / "test.jsonl", [{"text": t} for t in texts[:6]]))},
        "train": {"epochs": 1, "batch_size": 8, "precision": "fp32"}, "eval": {"samples": 0},
        "audit": {"gate": "error"}, "output": {"dir": str(tmp_path / "runs"), "name": "leaky"},
    })  # fmt: skip
    with pytest.raises(UserError, match=r"audit.leakage"):
        run(recipe, quiet=True)
    assert not (tmp_path / "runs" / "leaky").exists()
