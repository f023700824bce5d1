"""Causal-LM encoding: the three data shapes, prompt masking by template prefixes, truncation, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoTokenizer

from tunesmith.data.lm import IGNORE, encode_lm, lm_records, read_lm_file
from tunesmith.errors import UserError


@pytest.fixture(scope="module")
def tok(tiny_llama: Path):
    return AutoTokenizer.from_pretrained(tiny_llama)


def _loss_text(tok, ids: list[int], labels: list[int]) -> str:
    return tok.decode([t for t, label in zip(ids, labels, strict=True) if label != IGNORE])


def test_text_rows_carry_loss_on_every_token_and_end_with_eos(tok) -> None:
    enc = encode_lm(lm_records(pd.DataFrame({"text": ["the drug helped my pain", "awful"]})), tok, 64)
    assert enc.kind == "text" and enc.rows == [0, 1]
    for ids, labels in zip(enc.input_ids, enc.labels, strict=True):
        assert ids[-1] == tok.eos_token_id
        assert (
            labels[0] == IGNORE and labels[1:] == ids[1:]
        )  # every token but the first (nothing precedes it)


def test_prompt_response_loss_is_on_the_response_only(tok) -> None:
    frame = pd.DataFrame({"prompt": ["Review aspirin for pain"], "response": ["It worked well."]})
    enc = encode_lm(lm_records(frame), tok, 128)
    assert enc.kind == "prompt-response" and enc.used_chat_template
    text = tok.decode(enc.input_ids[0])
    assert "<|im_start|>user\nReview aspirin for pain<|im_end|>" in text  # the tokenizer's own template
    assert _loss_text(tok, enc.input_ids[0], enc.labels[0]).strip() == "It worked well.<|im_end|>"


def test_chat_masks_system_and_user_turns_and_learns_every_assistant_turn(tok) -> None:
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Name a colour"},
        {"role": "assistant", "content": "Blue."},
    ]
    enc = encode_lm(lm_records(pd.DataFrame({"messages": [json.dumps(chat)]})), tok, 256)
    learned = _loss_text(tok, enc.input_ids[0], enc.labels[0])
    assert learned.replace("\n", "") == "Hello.<|im_end|>Blue.<|im_end|>"
    everything = encode_lm(lm_records(pd.DataFrame({"messages": [chat]})), tok, 256, train_on_prompt=True)
    assert everything.input_ids == enc.input_ids
    assert everything.labels[0][1:] == everything.input_ids[0][1:]


def test_truncation_flags_examples_whose_response_lost_tokens(tok) -> None:
    long_response = " ".join(["word"] * 80)
    frame = pd.DataFrame({"prompt": ["short", "short"], "response": ["fine", long_response]})
    enc = encode_lm(lm_records(frame), tok, 40)
    assert [len(ids) <= 40 for ids in enc.input_ids] == [True, True]
    assert enc.truncated == [False, True] and enc.response_truncated == [False, True]
    assert enc.response_truncated_share() == 0.5


def test_examples_with_no_loss_left_are_dropped_and_recorded(tok) -> None:
    frame = pd.DataFrame({"prompt": ["short", " ".join(["word"] * 80)], "response": ["fine", "fine"]})
    enc = encode_lm(lm_records(frame), tok, 40)
    assert enc.rows == [0] and enc.dropped_rows == [1]
    assert enc.response_truncated_share() == 0.5


def test_reads_messages_from_jsonl_and_from_a_json_string_in_csv(tmp_path: Path, tok) -> None:
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    (tmp_path / "a.jsonl").write_text(json.dumps({"messages": chat}) + "\n")
    pd.DataFrame({"messages": [json.dumps(chat)]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"messages": [json.dumps(chat)]}).to_parquet(tmp_path / "a.parquet")
    encoded = [encode_lm(lm_records(read_lm_file(tmp_path / f"a.{ext}")), tok, 64).input_ids
               for ext in ("jsonl", "csv", "parquet")]  # fmt: skip
    assert encoded[0] == encoded[1] == encoded[2]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"body": ["x"]}), "no 'text', 'prompt'+'response' or 'messages' column"),
        (pd.DataFrame({"prompt": ["x"]}), "no 'response' column"),
        (pd.DataFrame({"prompt": ["a", "b"], "response": ["ok", " "]}), "column 'response': row 1"),
        (pd.DataFrame({"text": ["a", None]}), "column 'text': row 1"),
        (pd.DataFrame({"messages": ['[{"role": "bot", "content": "x"}]']}), "unknown role 'bot'"),
        (pd.DataFrame({"messages": ['[{"role": "user", "content": 3}]']}), "content must be a string; got a int"),
        (pd.DataFrame({"messages": ["[{"]}), "row 0 column 'messages' is not valid JSON"),
        (pd.DataFrame({"messages": ['[{"role": "user", "content": "x"}]']}), "no assistant message"),
        (pd.DataFrame({"messages": ['[{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]']}),
         "empty assistant response"),
    ],
)  # fmt: skip
def test_bad_rows_name_the_row_and_column(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("+", r"\+")) as info:
        lm_records(frame, src="data.train: t.csv")
    assert str(info.value).startswith("data.train: t.csv") and "\n" not in str(info.value)


def test_messages_need_a_chat_template(tok) -> None:
    plain = AutoTokenizer.from_pretrained(tok.name_or_path)
    plain.chat_template = None
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    with pytest.raises(UserError, match="needs a tokenizer with a chat template"):
        encode_lm(lm_records(pd.DataFrame({"messages": [chat]})), plain, 64)
    # prompt/response falls back to 'prompt\n' + response and says so
    enc = encode_lm(lm_records(pd.DataFrame({"prompt": ["Hi"], "response": ["Hello."]})), plain, 64)
    assert not enc.used_chat_template
    assert _loss_text(plain, enc.input_ids[0], enc.labels[0]) == "Hello.<|im_end|>"


def test_every_example_longer_than_max_length_is_an_error(tok) -> None:
    frame = pd.DataFrame({"text": [" ".join(["word"] * 50)] * 3})
    with pytest.raises(
        UserError, match=r"every example is longer than model.max_length=8 .* raise model.max_length"
    ):
        encode_lm(lm_records(frame, src="data.train: t.csv"), tok, 8)
