"""Forgetting control under task: causal-lm on the tiny Llama: ewc / l2sp pull, replay draws retain text."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import lm_text
from tunesmith.config.loader import recipe_from_dict
from tunesmith.data.lm import encode_lm, lm_records
from tunesmith.data.packing import collate_padded
from tunesmith.forgetting.lm import LMReplay, lm_callbacks
from tunesmith.forgetting.penalties import Penalty
from tunesmith.models.loader import load_tokenizer
from tunesmith.run import run
from tunesmith.tasks.base import Encoded
from tunesmith.tasks.lm_loss import loss_token_nll

RETAIN = ["hello, how are you today?", "i am fine, thank you.", "what is your favourite colour?",
          "blue, like the sky.", "do you like music?", "yes, mostly jazz and a little rock."] * 2  # fmt: skip


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _recipe(tmp_path: Path, tiny_llama: Path, name: str, forgetting: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(1)
    train = _jsonl(tmp_path / "train.jsonl", [{"text": lm_text(rng, 6, 14)} for _ in range(32)])
    return {
        "task": "causal-lm", "model": {"name": str(tiny_llama), "max_length": 32}, "data": {"train": train},
        "train": {"epochs": 1, "batch_size": 8, "lr": 2e-2, "precision": "fp32", "log_every": 1},
        "eval": {"samples": 0, "on_start": False}, "audit": {"gate": "off"},
        "forgetting": {"retain": _jsonl(tmp_path / "retain.jsonl", [{"text": t} for t in RETAIN]), **forgetting},
        "output": {"dir": str(tmp_path / "runs"), "name": name},
    }  # fmt: skip


def test_ewc_keeps_the_retain_perplexity_closer_to_the_start(tmp_path: Path, tiny_llama: Path) -> None:
    free = run(recipe_from_dict(_recipe(tmp_path, tiny_llama, "none", {})), quiet=True).metrics["forgetting"]
    ewc_run = run(recipe_from_dict(_recipe(tmp_path, tiny_llama, "ewc", {
        "method": "ewc", "ewc_weight": 1e4, "ewc_samples": 6})), quiet=True)  # fmt: skip
    held = ewc_run.metrics["forgetting"]
    assert free["method"] == "none" and held["method"] == "ewc"
    assert free["before"]["perplexity"] == pytest.approx(held["before"]["perplexity"])  # the same start
    assert abs(held["perplexity_increase"]) < 0.5 * abs(free["perplexity_increase"])
    steps = [json.loads(x) for x in (ewc_run.run_dir / "history.jsonl").open() if '"kind": "step"' in x]
    assert steps and all(r["ewc_penalty"] >= 0 for r in steps) and any(r["ewc_penalty"] > 0 for r in steps)


def _retain(tiny_llama: Path) -> tuple[Encoded, Any]:
    tokenizer = load_tokenizer(tiny_llama)
    encoded = encode_lm(lm_records(pd.DataFrame({"text": RETAIN})), tokenizer, 32)
    pad = int(tokenizer.pad_token_id or tokenizer.eos_token_id)

    def collate(ids: list[list[int]], labels: list[Any]) -> dict[str, torch.Tensor]:
        b = collate_padded(ids, labels, pad)
        assert b.attention_mask is not None
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "labels": b.labels}

    return Encoded(encoded.input_ids, encoded.labels), collate


def test_l2sp_and_ewc_pull_the_trainable_weights_to_the_start(tiny_llama: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    data, collate = _retain(tiny_llama)
    for method in ("l2sp", "ewc"):
        recipe = recipe_from_dict({"task": "causal-lm", "model": {"name": str(tiny_llama)}, "data": {"train": "x"},
                                   "forgetting": {"retain": "r", "method": method, "ewc_samples": 4}})  # fmt: skip
        (penalty,) = lm_callbacks(recipe, model, data, collate)
        assert isinstance(penalty, Penalty) and penalty.name == method
        assert float(penalty.penalty().detach()) == 0.0  # at the start
        if method == "ewc":
            assert penalty.importance is not None
            flat = torch.cat([i.flatten() for i in penalty.importance])
            assert float(flat.max()) == 1.0 and float(flat.min()) >= 0.0 and float(flat.mean()) < 1.0
        with torch.no_grad():
            next(model.parameters()).add_(0.1)
        assert float(penalty.penalty().detach()) > 0.0
        with torch.no_grad():
            next(model.parameters()).sub_(0.1)


def test_replay_adds_the_drawn_retain_texts_loss_and_redraws_the_same_on_resume(tiny_llama: Path) -> None:
    from accelerate import Accelerator

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    data, collate = _retain(tiny_llama)
    replay = LMReplay(data, collate, fraction=0.25, seed=3)
    ctx = SimpleNamespace(step=5, model=model, accelerator=Accelerator(cpu=True))
    batch = {"input_ids": torch.zeros(8, 4, dtype=torch.long)}
    term = replay.extra_loss(ctx, batch)  # type: ignore[arg-type]
    assert term is not None and term.requires_grad
    replay.on_step_end(ctx, {})  # type: ignore[arg-type]  # a new step: the draw restarts at micro 0
    again = replay.extra_loss(ctx, batch)  # type: ignore[arg-type]
    assert again is not None and float(again) == pytest.approx(float(term))
    # 2 of the 12 retain texts (a quarter of the batch of 8), their token-mean loss scaled by 2 / 8
    losses = []
    for i in range(len(data)):
        b = collate([data.input_ids[i]], [data.labels[i]])
        nll, count, _ = loss_token_nll(model, {"input_ids": b["input_ids"]}, b["labels"])
        losses.append((float(nll.sum()), float(count.sum())))
    pairs = [(a, b) for a in range(len(data)) for b in range(a + 1, len(data))]
    means = [(losses[a][0] + losses[b][0]) / (losses[a][1] + losses[b][1]) * 2 / 8 for a, b in pairs]
    assert min(abs(m - float(term)) for m in means) < 1e-5
