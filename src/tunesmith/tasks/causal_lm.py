"""`task: causal-lm`: continued pre-training on domain text, prompt/response and chat tuning of a causal LM.

Data shapes and the loss mask are tunesmith.data.lm's (the tokenizer's chat template; loss on responses
only unless data.train_on_prompt); packing is tunesmith.data.packing's (exact: no attention across
examples). The loss is the token mean of the next-token NLL over the tokens that carry loss; perplexity is
exp of it, next-token accuracy the share of those tokens predicted right. Validation and test are always
scored unpacked, one example per row, so each example has its own loss (the monitor's paired noise).
Generations of a few validation prompts by the starting and the tuned model go to
RUN_DIR/evaluation/generations.jsonl.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from tunesmith.data.batching import LengthBucketBatcher
from tunesmith.data.lm import LMRecords, encode_lm, has_chat_template, lm_records, read_lm_file
from tunesmith.data.packing import collate_packed, collate_padded, pack
from tunesmith.data.types import DataBundle, Split, Table
from tunesmith.errors import UserError
from tunesmith.evaluation.generate import generate_greedy, repeated_ngram_share
from tunesmith.export import save_weights
from tunesmith.fileio import write_text_atomic
from tunesmith.findings import Finding
from tunesmith.tasks.base import Encoded, Evaluation, LoadedModel, StepOutput, Task
from tunesmith.tasks.lm_loss import loss_token_nll

GENERATIONS_FILE = "generations.jsonl"
EVAL_BATCH_CAP = 8  # a batch's logits are batch x length x vocabulary (49,152 for SmolLM2) floats
MAX_NEW_TOKENS = 48
# Recipe keys that only mean something for classification: (dotted key, is it set?)
CLASSIFICATION_ONLY = (
    ("train.class_weights", lambda r: r.train.class_weights),
    ("data.balance", lambda r: r.data.balance is not None),
    ("data.augment", lambda r: r.data.augment is not None),
    # set and not the default: a recipe dumped with its defaults (tune trials, compare variants) keeps it
    ("data.label", lambda r: "label" in r.data.model_fields_set and r.data.label != "label"),
    ("data.group", lambda r: r.data.group is not None),
    ("eval.cv", lambda r: r.eval.cv is not None),
    ("forgetting.label", lambda r: r.forgetting.label is not None),
    ("model.classifier_dropout", lambda r: r.model.classifier_dropout is not None),
    ("train.label_smoothing", lambda r: r.train.label_smoothing > 0),
)


@dataclass
class LMSplit(Split):
    """A causal-LM split: the validated records; `texts` holds a readable rendering of each."""

    records: LMRecords | None = None


class CausalLM(Task):
    name = "causal-lm"
    metrics: ClassVar[dict[str, bool]] = {"perplexity": False, "loss": False, "token_accuracy": True}
    # the retain set is general text: its perplexity is measured here, ewc / l2sp / replay are self.callbacks
    uses_forgetting_control = False
    default_metric = "perplexity"
    summary_columns = (("perplexity", "perplexity"), ("token_accuracy", "next-token acc."), ("loss", "loss"))

    def __init__(self, recipe: Any) -> None:
        super().__init__(recipe)
        self.start_generations: list[str] = []
        self.prompts: list[tuple[str, str]] = []  # (prompt, reference) of the generation samples
        self.chat_prompts = False  # prompt/response and chat data: prompts go through the chat template
        self.retain: LMSplit | None = None
        self.retain_before: dict[str, Any] = {}
        self.encoding: dict[str, dict[str, Any]] = {}  # split -> EncodedLM.to_dict(), into metrics.json
        self.audit_splits: dict[str, Any] = {}  # split -> tunesmith.audit.lm.LMSplitRows, for the doctor

    def check_recipe(self) -> None:
        r = self.recipe
        if r.eval.metric not in self.metrics:
            raise UserError(f"eval.metric: {r.eval.metric} is not a causal-lm metric; use one of "
                            f"{', '.join(self.metrics)} (perplexity is the default).")  # fmt: skip
        for key, is_set in CLASSIFICATION_ONLY:
            if is_set(r):
                raise UserError(
                    f"{key}: a text-classification setting, not used by task: causal-lm; remove it."
                )
        if r.strategy.name == "frozen":
            raise UserError(
                "strategy.name: frozen trains only a classification head, and a causal LM has none to train "
                "on its own; use lora (the default for causal-lm), ia3, prompt-tuning or full."
            )

    def check_model(self) -> None:
        from tunesmith.models.checks import check_max_length
        from tunesmith.models.gguf_cache import resolve_causal_lm_dir
        from tunesmith.models.shaping import check_shape

        check_max_length(resolve_causal_lm_dir(self.recipe.model.name), self.recipe.model.max_length)
        check_shape(resolve_causal_lm_dir(self.recipe.model.name), self.recipe.model)

    # ---- data ----
    def prepare_data(self) -> tuple[dict[str, Table], DataBundle]:
        cfg = self.recipe.data
        paths = {"train": cfg.train, "validation": cfg.validation, "test": cfg.test}
        frames = {name: self._read(name, path) for name, path in paths.items() if path is not None}
        notes: dict[str, object] = {}
        train = frames["train"]
        if "validation" in frames:
            val = frames["validation"]
            notes |= {"validation_source": "file", "validation_note": f"from {cfg.validation}"}
        else:
            if len(train) < 4:
                raise UserError(f"data.train: {cfg.train} has {len(train)} rows; a language model needs at "
                                "least 4 to hold some out for validation (or set data.validation).")  # fmt: skip
            train_idx, val_idx = train_test_split(
                np.arange(len(train)), test_size=cfg.validation_split, random_state=cfg.seed % 2**32
            )
            train, val = train.iloc[np.sort(train_idx)], train.iloc[np.sort(val_idx)]
            notes |= {"validation_source": "train split", "validation_note": (
                f"a random {cfg.validation_split:.0%} of train held out (seed {cfg.seed}): {len(val)} rows")}  # fmt: skip
        bundle = DataBundle(
            labels=[],
            train=self._split("train", train, cfg.train),
            validation=self._split("validation", val, cfg.validation or "train (held out)"),
            test=self._split("test", frames["test"], str(cfg.test)) if "test" in frames else None,
            notes=notes,
        )
        if self.recipe.forgetting.retain is not None:
            self.retain = self._retain_split(self.recipe.forgetting.retain)
        return {}, bundle

    def _retain_split(self, path: str) -> LMSplit:
        column = self.recipe.forgetting.text or "text"
        frame = read_lm_file(path, "retain")
        if column not in frame.columns:
            raise UserError(f"forgetting.text: {path} has no column '{column}' (columns: "
                            f"{', '.join(map(str, frame.columns))}); set forgetting.text to its text column.")  # fmt: skip
        frame = frame[[column]].rename(columns={column: "text"}).assign(_row=range(len(frame)))
        return self._split("retain", frame, f"forgetting.retain: {path}")

    def audit(self, tables: dict[str, Table], tokenizer: Any, balance: str | None) -> Any:
        """The language-model doctor (tunesmith.audit.lm) over the splits as trained."""
        from tunesmith.audit.lm import run_lm_audit

        r = self.recipe
        return run_lm_audit(self.audit_splits, r.audit, tokenizer=tokenizer, max_length=r.model.max_length,
                            train_on_prompt=r.data.train_on_prompt)  # fmt: skip

    def _read(self, name: str, path: str) -> pd.DataFrame:
        """The file with the recipe's columns renamed to what tunesmith.data.lm reads (text, prompt,
        response, messages); without a mapping, a messages or prompt/response column is used as it is."""
        cfg = self.recipe.data
        frame = read_lm_file(path, name)
        columns = [str(c) for c in frame.columns]
        mapping = {getattr(cfg, k): k for k in ("messages", "prompt", "response") if getattr(cfg, k)}
        if not mapping:
            present = [k for k in ("messages", "prompt", "response") if k in columns]
            mapping = {k: k for k in present} if present else {cfg.text: "text"}
        for column, key in mapping.items():
            if column not in columns:
                field = key if getattr(cfg, key, None) else "text"
                raise UserError(f"data.{field}: {path} has no column '{column}' (columns: {', '.join(columns)}); "
                                f"set data.{field} to the column that holds the {key}.")  # fmt: skip
        return frame[list(mapping)].rename(columns=mapping).assign(_row=range(len(frame)))

    def _split(self, name: str, frame: pd.DataFrame, source: str) -> LMSplit:
        body = frame.drop(columns="_row").reset_index(drop=True)
        records = lm_records(body, src=f"data.{name}: {source}")
        rows = [int(r) for r in frame["_row"]]
        if name != "retain":  # the doctor's view of the same rows (validated above)
            from tunesmith.audit.lm import read_lm_split

            self.audit_splits[name] = read_lm_split(name, source, body, rows)
        records.rows = rows
        texts = [item if isinstance(item, str) else _render(item) for item in records.items]
        return LMSplit(name, texts, [], None, rows, source, records=records)

    # ---- model ----
    def load_model(self, bundle: DataBundle) -> LoadedModel:
        from transformers import AutoModelForCausalLM

        from tunesmith.models.gguf_cache import resolve_causal_lm_dir
        from tunesmith.models.loader import load_tokenizer
        from tunesmith.models.shaping import shaped_kwargs

        model_dir = resolve_causal_lm_dir(self.recipe.model.name)
        tokenizer = load_tokenizer(model_dir)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        try:
            model = AutoModelForCausalLM.from_pretrained(
                model_dir, use_safetensors=True, trust_remote_code=False,
                **shaped_kwargs(model_dir, self.recipe.model),  # model.dropout / num_layers
            )  # fmt: skip
        except (OSError, ValueError) as exc:
            raise UserError(f"model.name: cannot load {model_dir} as a causal LM ({exc}).") from exc
        self.tokenizer = tokenizer
        pad = int(tokenizer.pad_token_id)
        self.collate_fn = lambda ids, labels: _padded(ids, labels, pad)
        self._samples(bundle.validation)
        return LoadedModel(model, tokenizer, model_dir)

    def _samples(self, split: Split) -> None:
        """The generation samples: the first eval.samples validation prompts, with their references."""
        records = getattr(split, "records", None)
        if records is None:
            return
        self.chat_prompts = records.kind != "text" and has_chat_template(self.tokenizer)
        for item in records.items[: self.recipe.eval.samples]:
            if isinstance(item, str):  # plain text: continue its first words
                words = item.split()
                cut = max(1, min(len(words) // 2, 12))
                self.prompts.append((" ".join(words[:cut]), " ".join(words[cut:])))
            else:
                last = max(i for i, m in enumerate(item) if m["role"] == "assistant")
                user = [m for m in item[:last] if m["role"] == "user"]
                self.prompts.append((user[-1]["content"] if user else "", item[last]["content"]))

    def encode(self, split: Split) -> Encoded:
        records = getattr(split, "records", None)
        assert records is not None, "causal-lm splits come from CausalLM.prepare_data"
        cfg = self.recipe
        encoded = encode_lm(
            records, self.tokenizer, cfg.model.max_length, train_on_prompt=cfg.data.train_on_prompt
        )
        self.encoding[split.name] = encoded.to_dict()  # truncation / prompt-loss shares for the diagnosis
        if split.name == "train" and cfg.data.packing:
            packed = pack(encoded, cfg.model.max_length, seed=cfg.data.seed)
            return Encoded(packed.input_ids, packed.labels, {"position_ids": packed.position_ids})
        return Encoded(encoded.input_ids, encoded.labels)

    def collate(self, data: Encoded, indices: list[int]) -> dict[str, torch.Tensor]:
        if "position_ids" not in data.extra:
            return super().collate(data, indices)
        batch = collate_packed(
            [data.input_ids[i] for i in indices], [data.labels[i] for i in indices],
            [data.extra["position_ids"][i] for i in indices], int(self.tokenizer.pad_token_id),
        )  # fmt: skip
        assert batch.position_ids is not None
        return {"input_ids": batch.input_ids, "labels": batch.labels, "position_ids": batch.position_ids,
                "real_tokens": torch.tensor(batch.real_tokens)}  # fmt: skip

    def count_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        if "real_tokens" in batch:
            return int(batch["real_tokens"])
        return super().count_tokens(batch)

    # ---- training ----
    def new_sums(self, n_train: int, device: torch.device) -> dict[str, torch.Tensor]:
        return {k: torch.zeros((), dtype=torch.float64, device=device) for k in ("nll", "count", "correct")}

    def step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], index: torch.Tensor) -> StepOutput:
        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
        nll, count, correct = loss_token_nll(model, inputs, labels)
        loss = nll.sum() / count.sum().clamp_min(1)
        return StepOutput(loss, {"nll": nll.detach().sum(), "count": count.sum(), "correct": correct.sum()})

    def accumulate(self, sums: dict[str, torch.Tensor], out: StepOutput, keep: torch.Tensor) -> None:
        for key in ("nll", "count", "correct"):
            sums[key] += torch.where(keep, out.stats[key].double(), 0.0)

    def train_metrics(self, sums: dict[str, torch.Tensor]) -> dict[str, Any]:
        nll, count, correct = (float(sums[k].item()) for k in ("nll", "count", "correct"))
        loss = nll / max(count, 1.0)
        return {
            "train_loss": loss,
            "train_perplexity": _exp(loss),
            "train_token_accuracy": correct / max(count, 1.0),
        }

    # ---- evaluation and outputs ----
    @torch.inference_mode()
    def evaluate(
        self, model: torch.nn.Module, data: Encoded, *, batch_size: int, device: torch.device
    ) -> Evaluation:
        was_training = model.training
        model.eval()
        size = min(batch_size, EVAL_BATCH_CAP)
        nll = np.zeros(len(data))
        count = np.zeros(len(data))
        correct = np.zeros(len(data))
        for indices in LengthBucketBatcher(data.lengths, size, seed=0, shuffle=False).batches(0):
            batch = {k: v.to(device) for k, v in self.collate(data, indices).items()}
            inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
            per_nll, per_count, per_correct = loss_token_nll(model, inputs, batch["labels"])
            nll[indices], count[indices], correct[indices] = (
                t.double().cpu().numpy() for t in (per_nll, per_count, per_correct)
            )
        model.train(was_training)
        loss = float(nll.sum() / max(count.sum(), 1.0))
        metrics = {"loss": loss, "perplexity": _exp(loss), "token_accuracy": float(correct.sum() / max(count.sum(), 1.0)),
                   "examples": len(data), "loss_tokens": int(count.sum())}  # fmt: skip
        return Evaluation(metrics, nll / np.maximum(count, 1.0), None)

    def on_start(self, model: torch.nn.Module) -> None:
        """Generations (and retain perplexity) of the starting model, before training or a resume's load."""
        self.start_generations = self._generate(model)
        if self.retain is not None:
            self.retain_before = self._score_retain(model)

    def callbacks(self, model: torch.nn.Module) -> list[Any]:
        """forgetting.method ewc / l2sp / replay on the retain text (tunesmith.forgetting.lm)."""
        if self.retain is None or self.recipe.forgetting.method == "none":
            return []
        from tunesmith.forgetting.lm import lm_callbacks

        return lm_callbacks(self.recipe, model, self.encode(self.retain), self.collate_fn)

    def _score_retain(self, model: torch.nn.Module) -> dict[str, Any]:
        assert self.retain is not None
        device = next(model.parameters()).device
        m = self.evaluate(
            model, self.encode(self.retain), batch_size=self.recipe.eval.batch_size, device=device
        ).metrics
        return {"perplexity": m["perplexity"], "loss": m["loss"], "token_accuracy": m["token_accuracy"]}

    def finish(self, run_dir: Path, model: torch.nn.Module) -> tuple[dict[str, Any], list[Finding]]:
        """evaluation/generations.jsonl: prompt, reference, start and tuned generations; their summary."""
        tuned = self._generate(model)
        lines = [
            json.dumps({"prompt": p, "reference": ref, "start": s, "tuned": t,
                        "repeated_trigrams": round(repeated_ngram_share(t), 4)}, ensure_ascii=False)
            for (p, ref), s, t in zip(self.prompts, self.start_generations or [""] * len(tuned), tuned, strict=True)
        ]  # fmt: skip
        write_text_atomic(run_dir / "evaluation" / GENERATIONS_FILE, "\n".join(lines) + "\n" if lines else "")
        shares = [repeated_ngram_share(t) for t in tuned]
        result: dict[str, Any] = {"generations": {"samples": len(tuned), "file": f"evaluation/{GENERATIONS_FILE}",
                                  "mean_repeated_trigrams": float(np.mean(shares)) if shares else None}}  # fmt: skip
        result["encoding"] = {k: {n: v for n, v in e.items() if n != "dropped_rows"} | {"dropped": len(e["dropped_rows"])}
                              for k, e in self.encoding.items() if k != "retain"}  # fmt: skip
        if self.retain is not None:
            after = self._score_retain(model)
            before = self.retain_before or after
            result["forgetting"] = {
                "retain": self.recipe.forgetting.retain, "examples": len(self.retain), "metric": "perplexity",
                "method": self.recipe.forgetting.method,
                "before": before, "after": after,
                "perplexity_increase": after["perplexity"] / before["perplexity"] - 1.0,
            }  # fmt: skip
        return result, []

    def _generate(self, model: torch.nn.Module) -> list[str]:
        if not self.prompts:
            return []
        prompts = [p for p, _ in self.prompts]
        return generate_greedy(
            model, self.tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS, chat=self.chat_prompts
        )

    def save(self, run_dir: Path, model: torch.nn.Module, metrics: dict[str, Any]) -> Path:
        """model/: the weights (an adapter for PEFT strategies), the tokenizer and a model card, atomically."""
        final, tmp = run_dir / "model", run_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        save_weights(model, tmp)
        self.tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(_card(self.recipe, metrics))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final

    def headline(self, metrics: dict[str, Any]) -> str:
        return f"perplexity {metrics['perplexity']:.2f}  next-token accuracy {metrics['token_accuracy']:.3f}"


def _padded(ids: list[list[int]], labels: list[Any], pad: int) -> dict[str, torch.Tensor]:
    batch = collate_padded(ids, labels, pad)
    assert batch.attention_mask is not None
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "labels": batch.labels}


def _exp(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


def _render(chat: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in chat)


def _card(recipe: Any, metrics: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {s} | {metrics[s]['perplexity']:.3f} | {metrics[s]['token_accuracy']:.4f} |"
        for s in ("validation", "test") if metrics.get(s)
    )  # fmt: skip
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [tunesmith, causal-lm]
---
# {recipe.output.name}

Fine-tuned by tunesmith from `{recipe.model.name}` with strategy `{recipe.strategy.name}` for
{metrics["epochs_run"]} epochs (best epoch {metrics["best_epoch"]}, chosen on validation {recipe.eval.metric}).

| split | perplexity | next-token accuracy |
|---|---|---|
{rows}

`tunesmith generate RUN_DIR "prompt"` generates with it; the full recipe is in the run's `config.yaml`.
"""
