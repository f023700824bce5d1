"""Rules that only a language-model run (task: causal-lm) has: what it generates, what its loss covers, what
it forgets.

- degenerate_generations: the tuned model's greedy generations of the validation prompts
  (evaluation/generations.jsonl) loop (half or more of their word trigrams repeat an earlier one) or are
  empty. Worse than the starting model: a warning (the tuning did it); as bad: info (the starting model
  already did it, greedy decoding of a small model).
- cut_responses: responses / assistant turns that lost tokens to model.max_length in training (the model
  learns to stop mid-answer, and never the end-of-turn token for those rows).
- prompt_loss: prompt/response or chat data trained with data.train_on_prompt: true, so the loss (and the
  gradient) is largely spent on reproducing prompts.
- lm_forgetting: the perplexity of the general-text retain set (forgetting.retain) rose by more than
  FORGET_RISE: the model is losing its general language.

Their inputs are in metrics.json (`encoding`, `forgetting`) and evaluation/generations.jsonl; a run of
another task has none of them, so the rules say nothing there.
"""

from __future__ import annotations

import json
from typing import Any

from tunesmith.diagnosis.common import finding, lr_of, rnd, sig
from tunesmith.diagnosis.registry import rule
from tunesmith.diagnosis.rundata import RunData, finite
from tunesmith.evaluation.generate import repeated_ngram_share
from tunesmith.findings import Finding

LOOP_SHARE = 0.5  # a generation whose word trigrams repeat this much is a loop
DEGENERATE_SHARE = 0.5  # ... and half the samples doing it is a finding
CUT_WARN = 0.05  # share of responses cut by max_length that is a warning (info above 0)
PROMPT_WARN = 0.3  # share of loss tokens on prompts that is a warning
FORGET_RISE = 0.10  # retain perplexity up 10%
MAX_LENGTH_CAP = 4096


def _is_lm(data: RunData) -> bool:
    return data.setting("task") == "causal-lm"


def _generations(data: RunData) -> list[dict[str, Any]]:
    path = data.run_dir / "evaluation" / "generations.jsonl" if data.run_dir else None
    if path is None or not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn line: judge the rest
        if isinstance(row, dict):
            rows.append(row)
    return rows


def degenerate(text: Any) -> str | None:
    """Why a generation is degenerate ('empty', 'loop'), or None."""
    if not isinstance(text, str) or not text.strip():
        return "empty"
    return "loop" if repeated_ngram_share(text) >= LOOP_SHARE else None


@rule("degenerate_generations")
def degenerate_generations(data: RunData) -> list[Finding]:
    rows = _generations(data)
    if not _is_lm(data) or not rows:
        return []
    tuned = [degenerate(r.get("tuned")) for r in rows]
    start = [degenerate(r.get("start")) for r in rows if "start" in r]
    bad = [i for i, why in enumerate(tuned) if why]
    share = len(bad) / len(rows)
    if share < DEGENERATE_SHARE:
        return []
    worse = len(bad) > sum(1 for why in start if why)
    evidence: dict[str, Any] = {
        "samples": len(rows), "degenerate": len(bad), "share": rnd(share, 3),
        "loops": sum(1 for why in tuned if why == "loop"), "empty": sum(1 for why in tuned if why == "empty"),
        "degenerate_at_start": sum(1 for why in start if why), "loop_threshold": LOOP_SHARE,
        "examples": [{"prompt": str(rows[i].get("prompt", ""))[:120], "tuned": str(rows[i].get("tuned", ""))[:160],
                      "repeated_trigrams": rnd(repeated_ngram_share(str(rows[i].get("tuned") or "")), 3)}
                     for i in bad[:3]],
    }  # fmt: skip
    lr = lr_of(data)
    if worse:
        epochs = data.setting("train.epochs")
        patch: dict[str, Any] = {"train.lr": sig(lr / 3)}
        if finite(epochs) and epochs > 1:
            patch["train.epochs"] = max(1, int(epochs) // 2)
        advice = (
            f"The tuned model repeats itself or answers with nothing in {len(bad)} of {len(rows)} samples, more "
            f"than the starting model ({evidence['degenerate_at_start']}): it has over-fitted a few phrasings "
            f"(or the end-of-text token). Lower train.lr (from {lr:g} to {sig(lr / 3):g}) and train fewer "
            "epochs, add more varied data, and check the responses are not cut by max_length."
        )
        return [finding("degenerate_generations", "warning", f"degenerate generations: {len(bad)} of "
                        f"{len(rows)} samples loop or are empty", evidence, advice, patch)]  # fmt: skip
    return [finding(
        "degenerate_generations", "info",
        f"{len(bad)} of {len(rows)} generations loop or are empty, as the starting model's did",
        evidence,
        "The starting model already did this with greedy decoding, so the tuning did not cause it; longer "
        "tuning on well-formed responses usually reduces it.",
    )]  # fmt: skip


def _encoding(data: RunData) -> dict[str, Any]:
    encoding = data.metrics.get("encoding")
    train = encoding.get("train") if isinstance(encoding, dict) else None
    return train if isinstance(train, dict) else {}


@rule("cut_responses")
def cut_responses(data: RunData) -> list[Finding]:
    train = _encoding(data)
    if not _is_lm(data) or train.get("kind") in (None, "text"):
        return []
    share = train.get("response_truncated_share")
    if not finite(share) or share <= 0:
        return []
    limit = int(data.setting("model.max_length", train.get("max_length", 0)) or 0)
    p95 = train.get("tokens_p95_full")
    suggested = min(MAX_LENGTH_CAP, -(-int(p95) // 32) * 32) if finite(p95) else 0
    patch = {"model.max_length": suggested} if suggested > limit else None
    evidence = {
        "share": rnd(share, 4), "responses_cut": train.get("response_truncated"), "training_examples": train.get("examples"),
        "dropped_entirely": train.get("dropped"), "max_length": limit, "tokens_p95": p95,
        "tokens_max": train.get("tokens_max_full"),
    }  # fmt: skip
    return [finding(
        "cut_responses", "warning" if share >= CUT_WARN else "info",
        f"{share:.1%} of the training responses were cut by max_length {limit}",
        evidence,
        "Those answers lose their ends, so the model learns to stop mid-answer and never sees the end-of-turn "
        "token for them. "
        + (f"Raise model.max_length to {suggested} (95% of the examples fit)" if patch else "Raise model.max_length")
        + ", or shorten the prompts (the system prompt counts too).",
        patch,
    )]  # fmt: skip


@rule("prompt_loss")
def prompt_loss(data: RunData) -> list[Finding]:
    train = _encoding(data)
    if not _is_lm(data) or train.get("kind") in (None, "text") or not data.setting("data.train_on_prompt"):
        return []
    share = train.get("prompt_loss_share")
    if not finite(share) or share <= 0:
        return []
    return [finding(
        "prompt_loss", "warning" if share >= PROMPT_WARN else "info",
        f"{share:.0%} of the loss is on prompt tokens (data.train_on_prompt is on)",
        {"prompt_loss_share": rnd(share, 4), "kind": train.get("kind"), "loss_tokens": train.get("loss_tokens"),
         "train_on_prompt": True},  # fmt: skip
        "With prompt/response or chat data the model should learn to answer, not to reproduce the prompts "
        "(and the chat template's system text): set data.train_on_prompt: false so only the responses carry "
        "loss; perplexity then measures the answers.",
        {"data.train_on_prompt": False},
    )]  # fmt: skip


@rule("lm_forgetting")
def lm_forgetting(data: RunData) -> list[Finding]:
    forgetting = data.metrics.get("forgetting")
    if not _is_lm(data) or not isinstance(forgetting, dict):
        return []
    rise = forgetting.get("perplexity_increase")
    before = (forgetting.get("before") or {}).get("perplexity")
    after = (forgetting.get("after") or {}).get("perplexity")
    if not finite(rise) or rise <= FORGET_RISE or not finite(before) or not finite(after):
        return []
    lr = lr_of(data)
    patch: dict[str, Any] = {"train.lr": sig(lr / 2)}
    strategy = data.setting("strategy.name")
    if strategy in ("full", "discriminative", "progressive"):
        patch["strategy.name"] = "lora"  # far fewer weights move
    elif finite(data.setting("strategy.r")) and data.setting("strategy.r") > 4:
        patch["strategy.r"] = max(4, int(data.setting("strategy.r")) // 2)
    epochs = data.setting("train.epochs")
    if finite(epochs) and epochs > 1:
        patch["train.epochs"] = max(1, int(epochs) // 2)
    return [finding(
        "lm_forgetting", "warning",
        f"forgetting: the retain set's perplexity rose {rise:.0%} ({before:.2f} -> {after:.2f})",
        {"retain": forgetting.get("retain"), "perplexity_before": rnd(before, 3), "perplexity_after": rnd(after, 3),
         "increase": rnd(rise, 4), "threshold": FORGET_RISE, "examples": forgetting.get("examples"),
         "strategy": strategy, "lr": lr},  # fmt: skip
        "The model is losing the general language it started with. Move fewer weights, or move them less: "
        + ", ".join(f"{k}: {json.dumps(v)}" for k, v in patch.items())
        + ". forgetting.method: ewc, l2sp or replay (general text mixed into every batch) also protects it.",
        patch,
    )]  # fmt: skip
