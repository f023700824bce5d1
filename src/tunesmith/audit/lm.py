"""The data doctor for language-model corpora (task: causal-lm): text, prompt/response and messages data.

The label checks do not apply (there is no label); the text checks do, on one rendering of each example
(the text, `prompt + response`, or the chat's turns): exact and near duplicates, leakage between splits,
quoted exports, encoding, length outliers. What only a language model has is checked here too, with the
tokenizer and chat template training will use (tunesmith.data.lm.encode_item, so the counts are the
training's own):

    empty_texts          error: an empty text or prompt (training refuses it)
    empty_responses      error: an empty response / assistant turn (nothing to learn; training refuses it)
    chat_template        error for messages data, warning for prompt/response, when the tokenizer has none
    lm_truncation        examples longer than model.max_length (warning from audit.truncation_warn_share),
                         with a model.max_length patch covering 95% of them
    response_truncation  warning: examples whose response / assistant tokens are cut by max_length (the
                         model never sees how those answers end)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.audit.context import AuditContext, make_finding, pct, plural
from tunesmith.audit.registry import CHECKS
from tunesmith.audit.report import AuditReport
from tunesmith.audit.text import is_empty, shorten
from tunesmith.config.schema import AuditConfig
from tunesmith.data.lm import IGNORE, Chat, cell_text, detect_kind, encode_item, has_chat_template, parse_chat
from tunesmith.data.messages import list_names
from tunesmith.data.types import LABEL, ROW, TEXT, Table
from tunesmith.errors import UserError
from tunesmith.findings import SEVERITY_ORDER, Finding

# The classification doctor's checks that read only the text: run on the rendering of each example.
TEXT_CHECKS = (
    "exact_duplicates",
    "near_duplicates",
    "leakage",
    "quoted_texts",
    "encoding",
    "length_outliers",
)
TEXT_ONLY = ("empty_texts", "short_texts")  # these read the text itself: only for `text` data
LABEL_KEYS = ("label", "other_label", "labels_disagree", "pairs_with_different_labels")
MAX_SUGGESTED_LENGTH = 4096


@dataclass
class LMSplitRows:
    """One split's examples as the doctor reads them: no row is refused for being empty."""

    name: str
    path: str
    kind: str  # text | prompt-response | messages
    rows: list[int]  # row in the source file
    items: list[str | Chat]
    prompts: list[str] = field(default_factory=list)  # what the model reads (empty for text data)
    responses: list[str] = field(default_factory=list)  # what carries the loss (the text for text data)

    def rendered(self) -> list[str]:
        """One string per example for the text checks (duplicates, leakage, encoding)."""
        if self.kind == "text":
            return [str(item) for item in self.items]
        return [_render(item) for item in self.items]  # type: ignore[arg-type]


def _render(chat: Chat) -> str:
    return "\n".join(m["content"] for m in chat)


def read_lm_split(name: str, path: str, frame: pd.DataFrame, rows: list[int] | None = None) -> LMSplitRows:
    """A frame with text / prompt+response / messages columns -> the doctor's rows (UserError for a file
    whose shape cannot be read at all: no such column, a chat that is not a list of role/content)."""
    src = f"data.{name}: {path}"
    columns = [str(c) for c in frame.columns]
    kind = detect_kind(columns)
    if not kind:
        raise UserError(
            f"{src} has no 'text', 'prompt'+'response' or 'messages' column (columns: {list_names(columns)}); "
            "rename the column that holds your text, or map it (--text COL)."
        )
    rows = list(range(len(frame))) if rows is None else rows
    if kind == "text":
        texts = [cell_text(v) or "" for v in frame["text"]]
        return LMSplitRows(name, path, kind, rows, list(texts), [""] * len(texts), texts)
    if kind == "prompt-response":
        missing = [c for c in ("prompt", "response") if c not in columns]
        if missing:
            raise UserError(f"{src} has no '{missing[0]}' column; prompt/response data needs both.")
        prompts = [cell_text(v) or "" for v in frame["prompt"]]
        responses = [cell_text(v) or "" for v in frame["response"]]
        items: list[str | Chat] = [
            [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
            for p, r in zip(prompts, responses, strict=True)
        ]
        return LMSplitRows(name, path, kind, rows, items, prompts, responses)
    chats = [
        parse_chat(v, row, src, allow_empty=True) for row, v in zip(rows, frame["messages"], strict=True)
    ]
    prompts = ["\n".join(m["content"] for m in c if m["role"] != "assistant") for c in chats]
    responses = ["\n".join(m["content"] for m in c if m["role"] == "assistant") for c in chats]
    return LMSplitRows(name, path, kind, rows, list(chats), prompts, responses)


def run_lm_audit(
    splits: dict[str, LMSplitRows],
    cfg: AuditConfig,
    *,
    tokenizer: Any = None,
    max_length: int = 256,
    train_on_prompt: bool = False,
) -> AuditReport:
    """Every check that applies to a language-model corpus, over `splits` (train / validation / test)."""
    if "train" not in splits:
        raise UserError("the audit needs a 'train' table; pass the training file first.")
    kind = splits["train"].kind
    tables = {name: _table(s) for name, s in splits.items()}
    ctx = AuditContext(tables, cfg, tokenizer=tokenizer, max_length=max_length)
    lm = LMChecks(splits, cfg, tokenizer, max_length, train_on_prompt)
    names = TEXT_CHECKS + (TEXT_ONLY if kind == "text" else ())
    checks: list[tuple[str, Callable[[], list[Finding]]]] = [
        (c.name, partial(c.run, ctx)) for c in CHECKS if c.name in names
    ]
    checks += [
        ("empty_responses", lm.empty_fields),
        ("chat_template", lm.chat_template),
        ("lm_truncation", lm.truncation),
    ]
    findings: list[Finding] = []
    timings: dict[str, float] = {}
    for name, check in checks:
        start = time.perf_counter()
        findings.extend(_without_labels(f) for f in check())
        timings[name] = round(time.perf_counter() - start, 3)
    findings.sort(key=lambda f: -SEVERITY_ORDER[f.severity])
    skipped = {
        c.name: "counted as training encodes: lm_truncation" if c.name == "truncation"
        else "reads a text column only" if c.name in TEXT_ONLY
        else "a label check: causal-lm data has no label"
        for c in CHECKS if c.name not in names
    }  # fmt: skip
    stats = {
        "task": "causal-lm",
        "kind": kind,
        "splits": lm.split_stats(),
        "max_length": max_length,
        "tokens_counted_with": "tokenizer" if tokenizer is not None else "whitespace words",
        "config": cfg.model_dump(),
        "checks_run": list(timings),
        "checks_skipped": skipped,
        "timings_s": timings,
    }
    return AuditReport(findings, stats)


def _table(split: LMSplitRows) -> Table:
    frame = pd.DataFrame({TEXT: split.rendered(), LABEL: "", ROW: split.rows})
    return Table(name=split.name, path=split.path, frame=frame, columns={TEXT: "text"})


def _without_labels(finding: Finding) -> Finding:
    """The text checks' evidence minus the label fields (all equal here: they would only confuse)."""
    evidence = {k: v for k, v in finding.evidence.items() if k not in LABEL_KEYS}
    if isinstance(evidence.get("examples"), list):
        evidence["examples"] = [
            {k: v for k, v in e.items() if k not in LABEL_KEYS} if isinstance(e, dict) else e
            for e in evidence["examples"]
        ]
    finding.evidence = evidence
    return finding


class LMChecks:
    def __init__(
        self,
        splits: dict[str, LMSplitRows],
        cfg: AuditConfig,
        tokenizer: Any,
        max_length: int,
        train_on_prompt: bool,
    ) -> None:
        self.splits, self.cfg, self.tokenizer = splits, cfg, tokenizer
        self.max_length, self.train_on_prompt = max_length, train_on_prompt
        self._lengths: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _examples(self, split: LMSplitRows, positions: list[int], **extra: list[Any]) -> list[dict[str, Any]]:
        out = []
        for i, pos in enumerate(positions[:5]):
            item: dict[str, Any] = {"row": split.rows[pos]}
            if split.kind == "text":
                item["text"] = shorten(str(split.items[pos]))
            else:
                item["prompt"] = shorten(split.prompts[pos])
                item["response"] = shorten(split.responses[pos])
            item.update({key: values[i] for key, values in extra.items()})
            out.append(item)
        return out

    # ---- empty texts, prompts and responses ----
    def empty_fields(self) -> list[Finding]:
        findings = []
        for split in self.splits.values():
            if split.kind == "text":
                continue  # the shared empty_texts check reads the text itself
            n = len(split.rows)
            empty_prompt = [i for i, p in enumerate(split.prompts) if is_empty(p)]
            empty_response = [i for i, r in enumerate(split.responses) if is_empty(r)]
            if split.kind == "prompt-response" and empty_prompt:
                findings.append(self._empty(split, "empty_texts", empty_prompt, n, "prompt"))
            if empty_response:
                findings.append(self._empty(split, "empty_responses", empty_response, n, "response"))
        return findings

    def _empty(self, split: LMSplitRows, check: str, positions: list[int], n: int, what: str) -> Finding:
        share = len(positions) / n
        answer = "an assistant turn" if split.kind == "messages" and what == "response" else f"a {what}"
        return make_finding(
            check,
            "error",
            f"{plural(len(positions), 'example')} in {split.name} with an empty {what} ({pct(share)})",
            {"split": split.name, "count": len(positions), "share": round(share, 6), "field": what,
             "examples": self._examples(split, positions)},  # fmt: skip
            [split.rows[i] for i in positions],
            f"Write {answer} for these rows or drop them: "
            + ("an empty response teaches the model to answer with nothing" if what == "response"
               else "an empty prompt gives the response nothing to answer")
            + "; training refuses them.",
        )  # fmt: skip

    # ---- the chat template ----
    def chat_template(self) -> list[Finding]:
        kind = self.splits["train"].kind
        if kind == "text" or self.tokenizer is None or has_chat_template(self.tokenizer):
            return []
        name = getattr(self.tokenizer, "name_or_path", "the tokenizer")
        if kind == "messages":
            return [make_finding(
                "chat_template", "error", f"messages data, but the tokenizer of {name} has no chat template",
                {"kind": kind, "tokenizer": str(name)}, None,
                "Use a chat model (e.g. model.name: smollm2), or write the data as prompt/response or text; "
                "training refuses chats it cannot format.",
            )]  # fmt: skip
        return [make_finding(
            "chat_template", "warning", f"prompt/response data, but the tokenizer of {name} has no chat template",
            {"kind": kind, "tokenizer": str(name), "format_used": "prompt + newline + response + EOS"}, None,
            "Training formats each pair as plain text (prompt, a newline, the response); a chat model's "
            "template would match how the model is prompted later. Use a chat model if you will chat with it.",
        )]  # fmt: skip

    # ---- length in tokens and truncation ----
    def lengths(self, split: LMSplitRows) -> tuple[np.ndarray, np.ndarray]:
        """(tokens per example, tokens of the last one that carries loss + 1) as training encodes them;
        -1 for examples that cannot be encoded (empty ones: reported by empty_fields)."""
        if split.name in self._lengths:
            return self._lengths[split.name]
        n = len(split.rows)
        total, loss_end = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        template = self.tokenizer is not None and has_chat_template(self.tokenizer)
        for i, item in enumerate(split.items):
            if is_empty(split.responses[i]) or (split.kind == "messages" and not template):
                continue
            if self.tokenizer is None:
                total[i] = loss_end[i] = len(
                    _render(item).split() if not isinstance(item, str) else item.split()
                )
                continue
            ids, labels = encode_item(
                item, self.tokenizer, train_on_prompt=self.train_on_prompt, src=f"data.{split.name}", row=split.rows[i]
            )  # fmt: skip
            carrying = [j for j, label in enumerate(labels) if label != IGNORE]
            total[i], loss_end[i] = len(ids), (carrying[-1] + 1 if carrying else 0)
        self._lengths[split.name] = (total, loss_end)
        return total, loss_end

    def truncation(self) -> list[Finding]:
        findings = []
        limit = self.max_length
        method = "tokenizer" if self.tokenizer is not None else "whitespace words"
        for split in self.splits.values():
            total, loss_end = self.lengths(split)
            counted = total[total >= 0]
            over = np.nonzero(total > limit)[0]
            if len(over) == 0 or len(counted) == 0:
                continue
            share = len(over) / len(counted)
            p95 = float(np.percentile(counted, 95))
            suggested = min(MAX_SUGGESTED_LENGTH, int(math.ceil(p95 / 32) * 32))
            patch = {"model.max_length": suggested} if suggested > limit else None
            evidence = {
                "split": split.name, "count": len(over), "share": round(share, 6), "max_length": limit,
                "counted_with": method, "median": float(np.median(counted)), "p95": p95,
                "max": int(counted.max()),
                "examples": self._examples(split, over.tolist(), tokens=total[over[:5]].tolist()),
            }  # fmt: skip
            advice = (f"Raise model.max_length to {suggested} (covers 95% of the examples; memory and time grow "
                      "with length), or set data.packing: true with a longer window") if patch else \
                "Most examples fit; the few long ones lose their ends"  # fmt: skip
            findings.append(make_finding(
                "lm_truncation", "warning" if share >= self.cfg.truncation_warn_share else "info",
                f"{plural(len(over), 'example')} in {split.name} longer than max_length {limit} ({pct(share)} "
                "truncated)", evidence, [split.rows[i] for i in over], advice + ".", patch,
            ))  # fmt: skip
            if split.kind != "text":
                findings += self._cut_responses(split, total, loss_end)
        return findings

    def _cut_responses(self, split: LMSplitRows, total: np.ndarray, loss_end: np.ndarray) -> list[Finding]:
        limit = self.max_length
        cut = np.nonzero(loss_end > limit)[0]
        if len(cut) == 0:
            return []
        # the length that keeps every cut response whole (a response is what the model must learn to end)
        suggested = min(MAX_SUGGESTED_LENGTH, int(math.ceil(int(loss_end[cut].max()) / 32) * 32))
        patch = {"model.max_length": suggested} if suggested > limit else None
        counted = int((total >= 0).sum())
        share = len(cut) / counted
        lost = [int(loss_end[i] - max(limit, 0)) for i in cut[:5]]
        nothing_left = sum(1 for i in cut if _first_loss(split, int(i), self) >= limit)
        return [make_finding(
            "response_truncation", "warning",
            f"{plural(len(cut), 'response')} in {split.name} cut by max_length {limit} ({pct(share)})",
            {"split": split.name, "count": len(cut), "share": round(share, 6), "max_length": limit,
             "responses_lost_entirely": nothing_left,
             "examples": self._examples(split, cut.tolist(), response_tokens_lost=lost)},
            [split.rows[i] for i in cut],
            "These answers lose their ends, so the model learns to stop mid-sentence (and never learns the "
            "end-of-turn token for them)"
            + (f": raise model.max_length to {suggested}" if patch else ": raise model.max_length")
            + ", or shorten the prompts (system prompt included).",
            patch,
        )]  # fmt: skip

    def split_stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for split in self.splits.values():
            total, _ = self.lengths(split)
            counted = total[total >= 0]
            out[split.name] = {
                "path": split.path,
                "rows": len(split.rows),
                "kind": split.kind,
                "empty": int(sum(1 for r in split.responses if is_empty(r))),
                "tokens_median": float(np.median(counted)) if len(counted) else 0.0,
                "tokens_p95": float(np.percentile(counted, 95)) if len(counted) else 0.0,
                "tokens_max": int(counted.max()) if len(counted) else 0,
            }
        return out


def _first_loss(split: LMSplitRows, i: int, checks: LMChecks) -> int:
    """Position of the first token that carries loss (where the response starts)."""
    if checks.tokenizer is None:
        return 0
    _, labels = encode_item(split.items[i], checks.tokenizer, train_on_prompt=checks.train_on_prompt)
    return next((j for j, label in enumerate(labels) if label != IGNORE), len(labels))
