"""Causal-LM data: rows -> token ids and labels (-100 where no loss), as plain lists.

Three shapes of data, picked by the columns present:
- `text`: continued pre-training on domain text; loss on every token, EOS appended.
- `prompt` + `response`: one user turn and one assistant turn, formatted with the tokenizer's chat template.
- `messages`: a chat, a list of {role, content} (a JSON list in JSONL, or a JSON string in CSV/Parquet).

Loss is on the response / assistant tokens only unless `train_on_prompt`. Which tokens belong to an
assistant turn is found by rendering prefixes of the chat with the template (messages[:i] with the
generation prompt, then messages[:i+1]) and comparing token prefixes, never by searching strings, so any
template that renders a chat left to right works. The first label of every example is -100 (no token
precedes it); that is also what makes packed windows exact (see data/packing.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tunesmith.data.messages import describe_rows, list_names
from tunesmith.errors import UserError

IGNORE = -100
PROMPT_SHARE_SAMPLE = 500  # examples re-encoded response-only to measure the loss share on prompts
ROLES = ("system", "user", "assistant")
Chat = list[dict[str, str]]


@dataclass
class LMRecords:
    """Validated rows: `kind` is 'text', 'prompt-response' or 'messages'; `items` a str or a chat per row."""

    kind: str
    items: list[str | Chat]
    rows: list[int]
    src: str = "data"


@dataclass
class EncodedLM:
    """Token ids and labels per example (same lengths; -100 where no loss), plus per-example flags."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    rows: list[int]  # source row of each example
    truncated: list[bool]  # the example was longer than max_length
    response_truncated: list[bool]  # tokens that carry loss were cut by max_length
    kind: str
    used_chat_template: bool
    max_length: int
    dropped_rows: list[int] = field(default_factory=list)  # no loss token left after truncation
    full_lengths: list[int] = field(default_factory=list)  # tokens per example before truncation
    prompt_loss_share: float = 0.0  # share of loss tokens outside the responses (train_on_prompt, chat data)

    def loss_tokens(self) -> int:
        return sum(sum(1 for label in labels if label != IGNORE) for labels in self.labels)

    def response_truncated_share(self) -> float:
        """Share of kept and dropped examples whose response lost tokens to max_length."""
        total = len(self.rows) + len(self.dropped_rows)
        return (sum(self.response_truncated) + len(self.dropped_rows)) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "examples": len(self.input_ids), "tokens": sum(map(len, self.input_ids)),
            "loss_tokens": self.loss_tokens(), "truncated": sum(self.truncated),
            "response_truncated": sum(self.response_truncated), "dropped_rows": self.dropped_rows,
            "response_truncated_share": self.response_truncated_share(),
            "used_chat_template": self.used_chat_template, "max_length": self.max_length,
            "tokens_p95_full": _percentile(self.full_lengths, 95), "tokens_max_full": max(self.full_lengths, default=0),
            "prompt_loss_share": round(self.prompt_loss_share, 4),
        }  # fmt: skip


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] if ordered else 0


# ---------------------------------------------------------------- reading and validating rows


def read_lm_file(path: str | Path, name: str = "train") -> pd.DataFrame:
    """Read a CSV / TSV / JSONL / JSON / Parquet file as a raw DataFrame (the shared readers' errors)."""
    from tunesmith.data.loaders import read_file

    return read_file(str(path), name, f"data.{name}: {path}")


def detect_kind(columns: Sequence[str]) -> str:
    if "messages" in columns:
        return "messages"
    if "prompt" in columns or "response" in columns:
        return "prompt-response"
    if "text" in columns:
        return "text"
    return ""


def lm_records(frame: pd.DataFrame, src: str = "data") -> LMRecords:
    """Pick the data shape from the columns and validate every row; UserError names the row and column."""
    columns = [str(c) for c in frame.columns]
    kind = detect_kind(columns)
    if not kind:
        raise UserError(
            f"{src} has no 'text', 'prompt'+'response' or 'messages' column (columns: {list_names(columns)}); "
            "rename the column that holds your text, or map it in the recipe."
        )
    if kind == "prompt-response":
        missing = [c for c in ("prompt", "response") if c not in columns]
        if missing:
            raise UserError(
                f"{src} has a '{'response' if missing[0] == 'prompt' else 'prompt'}' column but no "
                f"'{missing[0]}' column; prompt/response data needs both (or use a 'text' column)."
            )
    items: list[str | Chat] = []
    if kind == "text":
        values = [cell_text(v) for v in frame["text"]]
        _require_nonempty(values, src, "text", "an empty text")
        items = list(values)  # type: ignore[arg-type]
    elif kind == "prompt-response":
        prompts = [cell_text(v) for v in frame["prompt"]]
        responses = [cell_text(v) for v in frame["response"]]
        _require_nonempty(prompts, src, "prompt", "an empty prompt")
        _require_nonempty(responses, src, "response", "an empty response")
        items = [
            [{"role": "user", "content": p}, {"role": "assistant", "content": r}]  # type: ignore[dict-item]
            for p, r in zip(prompts, responses, strict=True)
        ]
    else:
        items = [_chat(value, row, src) for row, value in enumerate(frame["messages"])]
    return LMRecords(kind=kind, items=items, rows=list(range(len(frame))), src=src)


def cell_text(value: object) -> str | None:
    """A table cell as text; None for a missing one (None or NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else str(value)


def _require_nonempty(values: list[str | None], src: str, column: str, what: str) -> None:
    bad = [row for row, value in enumerate(values) if value is None or not value.strip()]
    if bad:
        raise UserError(f"{src} column '{column}': {describe_rows(bad)} {'has' if len(bad) == 1 else 'have'} "
                        f"{what}; fill {'it' if len(bad) == 1 else 'them'} in or drop those rows.")  # fmt: skip


def parse_chat(value: object, row: int, src: str, allow_empty: bool = False) -> Chat:
    """One 'messages' cell as a validated chat (UserError names the row); `allow_empty` keeps empty
    assistant turns (the data doctor reports them instead of refusing the file)."""
    return _chat(value, row, src, allow_empty)


def _chat(value: object, row: int, src: str, allow_empty: bool = False) -> Chat:
    where = f"{src} row {row} column 'messages'"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{where} is not valid JSON ({exc.msg}); write it as a JSON list of "
                '{"role": ..., "content": ...} objects.'
            ) from None
    if hasattr(value, "tolist"):  # Parquet gives numpy arrays of dicts
        value = value.tolist()
    if not isinstance(value, list) or not value:
        raise UserError(
            f'{where} must be a non-empty list of {{"role", "content"}} objects; got {_kind(value)}.'
        )
    chat: Chat = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise UserError(
                f'{where} message {i} must be an object with "role" and "content"; got {_kind(message)}.'
            )
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise UserError(f"{where} message {i} has unknown role {role!r}; use one of {', '.join(ROLES)}.")
        if not isinstance(content, str):
            raise UserError(f"{where} message {i} content must be a string; got {_kind(content)}.")
        if role == "assistant" and not content.strip() and not allow_empty:  # the doctor reports them
            raise UserError(
                f"{where} message {i} is an empty assistant response; write the answer or drop the row."
            )
        chat.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in chat):
        raise UserError(f"{where} has no assistant message, so nothing to learn; add the assistant's answer.")
    return chat


def _kind(value: object) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


# ---------------------------------------------------------------- encoding


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def encode_lm(
    records: LMRecords, tokenizer: Any, max_length: int, *, train_on_prompt: bool = False
) -> EncodedLM:
    """Tokenise every record, mask prompts (unless train_on_prompt), truncate to max_length."""
    if max_length < 2:
        raise UserError(f"model.max_length must be at least 2 for a language model; got {max_length}.")
    template = has_chat_template(tokenizer)
    if records.kind == "messages" and not template:
        raise UserError(
            f"{records.src}: the 'messages' column needs a tokenizer with a chat template and this one has none; "
            "use a chat model (e.g. model.name: smollm2) or write the data as 'prompt'+'response' or 'text'."
        )
    out = EncodedLM([], [], [], [], [], records.kind, template and records.kind != "text", max_length)
    full_lengths: list[int] = []
    for row, item in zip(records.rows, records.items, strict=True):
        ids, labels = encode_item(item, tokenizer, train_on_prompt=train_on_prompt, src=records.src, row=row)
        full_lengths.append(len(ids))
        cut = len(ids) > max_length
        lost = cut and any(label != IGNORE for label in labels[max_length:])
        ids, labels = ids[:max_length], labels[:max_length]
        if all(label == IGNORE for label in labels):
            out.dropped_rows.append(row)
            continue
        out.input_ids.append(ids)
        out.labels.append(labels)
        out.rows.append(row)
        out.truncated.append(cut)
        out.response_truncated.append(lost)
    out.full_lengths = full_lengths
    if train_on_prompt and records.kind != "text":  # how much of the loss is on prompts (diagnosis)
        sample = list(zip(records.rows, records.items, strict=True))[:PROMPT_SHARE_SAMPLE]
        response = sum(
            sum(1 for label in encode_item(item, tokenizer, src=records.src, row=row)[1][:max_length] if label != IGNORE)
            for row, item in sample
        )  # fmt: skip
        carried = sum(sum(1 for label in labels if label != IGNORE) for labels in out.labels[: len(sample)])
        out.prompt_loss_share = max(0.0, 1.0 - response / carried) if carried else 0.0
    if full_lengths and min(full_lengths) > max_length:
        median = sorted(full_lengths)[len(full_lengths) // 2]
        raise UserError(
            f"{records.src}: every example is longer than model.max_length={max_length} tokens (shortest "
            f"{min(full_lengths)}, median {median}); raise model.max_length (e.g. to {median}) or shorten the data."
        )
    if not out.input_ids:
        raise UserError(
            f"{records.src}: no example keeps a response token within model.max_length={max_length}; raise "
            "model.max_length or shorten the prompts."
        )
    return out


def encode_item(
    item: str | Chat, tokenizer: Any, *, train_on_prompt: bool = False, src: str = "data", row: int = 0
) -> tuple[list[int], list[int]]:
    """One example's full (untruncated) token ids and labels, as training encodes it."""
    template = has_chat_template(tokenizer)
    if isinstance(item, str):
        ids, labels = _encode_text(item, tokenizer)
    elif template and train_on_prompt:
        ids = _render(tokenizer, item, generation_prompt=False)
        labels = list(ids)
    elif template:
        ids, labels = _encode_chat(item, tokenizer, src, row)
    else:
        ids, labels = _encode_plain(item, tokenizer)
    if train_on_prompt:
        labels = list(ids)
    if labels:
        labels[0] = IGNORE  # no token precedes the first one (and packing relies on it)
    return ids, labels


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _encode_text(text: str, tokenizer: Any) -> tuple[list[int], list[int]]:
    ids = list(tokenizer(text)["input_ids"])  # the tokenizer's own BOS, if it adds one
    eos = tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)  # the model learns where a document ends
    return ids, list(ids)


def _encode_plain(chat: Chat, tokenizer: Any) -> tuple[list[int], list[int]]:
    """No chat template: 'prompt\\n' + response + EOS, loss on the response and EOS."""
    prompt = "\n".join(m["content"] for m in chat if m["role"] != "assistant") + "\n"
    response = next(m["content"] for m in chat if m["role"] == "assistant")
    prompt_ids, response_ids = _ids(tokenizer, prompt), _ids(tokenizer, response)
    if tokenizer.eos_token_id is not None:
        response_ids.append(tokenizer.eos_token_id)
    return prompt_ids + response_ids, [IGNORE] * len(prompt_ids) + response_ids


def _render(tokenizer: Any, chat: Chat, generation_prompt: bool) -> list[int]:
    rendered = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation_prompt)
    return _ids(tokenizer, rendered)


def _encode_chat(chat: Chat, tokenizer: Any, src: str, row: int) -> tuple[list[int], list[int]]:
    ids = _render(tokenizer, chat, generation_prompt=False)
    labels = [IGNORE] * len(ids)
    for i, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, chat[:i], generation_prompt=True) if i else []
        through = _render(tokenizer, chat[: i + 1], generation_prompt=False)
        start, end = len(before), len(through)
        if ids[:start] != before or ids[:end] != through or start >= end:
            raise UserError(
                f"{src} row {row}: the tokenizer's chat template does not render this chat left to right "
                "(a prefix of the chat renders differently), so the assistant tokens cannot be found; "
                "use data.train_on_prompt: true or a template that renders turns in order."
            )
        labels[start:end] = ids[start:end]
    return ids, labels
