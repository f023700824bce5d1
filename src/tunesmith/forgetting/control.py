"""Forgetting control for one run: read the retain set up front, measure before and after, add the method.

run.py calls `plan(...)` while validating (bad retain input never leaves a run directory behind), `start(...)`
once the model is prepared and before training (measures the starting model and builds the EWC / L2-SP /
replay callback from it: on a resume the model is still the freshly loaded start at that point, so the
anchors are the same), and `finish(...)` after training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from tunesmith.config.schema import Recipe
from tunesmith.data.batching import tokenize_texts
from tunesmith.evaluation.inference import Collate, Encoded
from tunesmith.evaluation.metrics import classification_metrics
from tunesmith.findings import Finding
from tunesmith.forgetting.penalties import Penalty, anchored, diagonal_fisher
from tunesmith.forgetting.replay import Replay
from tunesmith.forgetting.retain import (
    RetainData,
    RetainHead,
    build_retain_head,
    checkpoint_head,
    fit_probe,
    predict_retain,
    read_retain,
)
from tunesmith.strategies.blocks import find_blocks, unwrap_hf
from tunesmith.training.callbacks.base import Callback

log = logging.getLogger(__name__)
# What to try when forgetting is too high and no method is set: on the demo data (benchmarks/forgetting.py)
# ewc removed 75% of the forgetting at a 0.013 cost in new-task macro-F1; l2sp 37%; replay made it worse.
SUGGESTION = {"forgetting.method": "ewc", "forgetting.ewc_weight": 1.0}


@dataclass
class Plan:
    data: RetainData
    start_head: tuple[list[str], dict[str, Any]] | None


@dataclass
class ForgettingControl:
    recipe: Recipe
    head: RetainHead
    data: Encoded
    collate: Collate
    before: dict[str, Any]
    pseudo: bool
    path: str
    callbacks: list[Callback] = field(default_factory=list)


def plan(recipe: Recipe, model_dir: Path) -> Plan | None:
    if recipe.forgetting.retain is None:
        return None
    data = read_retain(recipe)
    start = checkpoint_head(model_dir)
    if data.label_names is None and start is None:
        from tunesmith.errors import UserError

        raise UserError("forgetting.label: the starting model has no trained classification head whose predictions "
                        "could serve as labels; set forgetting.label to the retain file's label column.")  # fmt: skip
    return Plan(data, start)


def start(p: Plan, recipe: Recipe, model: nn.Module, tokenizer: Any, collate: Collate) -> ForgettingControl:
    cfg = recipe.forgetting
    head = build_retain_head(model, p.data.label_names, p.start_head)
    ids = tokenize_texts(p.data.texts, tokenizer, recipe.model.max_length)
    names = head.label_names
    index = {n: i for i, n in enumerate(names)}
    if p.data.raw_labels is not None:
        data = Encoded(ids, [index[v] for v in p.data.raw_labels])
    else:
        data = Encoded(ids, [0] * len(ids))
    if head.probe is not None:
        fit_probe(model, head, data, collate)
    preds = predict_retain(model, head, data, collate)
    pseudo = p.data.raw_labels is None
    if pseudo:  # the starting model's predictions are what must be kept
        data = Encoded(ids, preds.tolist())
    before = _metrics(data, preds, names)
    control = ForgettingControl(recipe, head, data, collate, before, pseudo, p.data.path)
    head_ids = {
        id(q)
        for h in find_blocks(unwrap_hf(model)).head_names
        for q in getattr(unwrap_hf(model), h).parameters()
    }
    params = anchored(model, head_ids)
    if cfg.method == "l2sp":
        control.callbacks.append(Penalty("l2sp", params, cfg.l2sp_weight))
    elif cfg.method == "ewc":
        fisher = diagonal_fisher(model, head, data, collate, params, cfg.ewc_samples)
        control.callbacks.append(Penalty("ewc", params, cfg.ewc_weight, fisher))
    elif cfg.method == "replay":
        control.callbacks.append(Replay(head, data, collate, cfg.replay_fraction, recipe.train.seed))
    log.info(
        "retain set: %d examples, macro-F1 %.4f before fine-tuning (%s)",
        len(ids),
        before["macro_f1"],
        head.kind,
    )
    return control


def _metrics(data: Encoded, preds: np.ndarray, names: list[str]) -> dict[str, Any]:
    m = classification_metrics(data.labels, preds.tolist(), names)
    return {"macro_f1": float(m["macro_f1"]), "accuracy": float(m["accuracy"])}


def finish(control: ForgettingControl, model: nn.Module) -> tuple[dict[str, Any], list[Finding]]:
    cfg = control.recipe.forgetting
    after = _metrics(
        control.data,
        predict_retain(model, control.head, control.data, control.collate),
        control.head.label_names,
    )
    drop = control.before["macro_f1"] - after["macro_f1"]
    result = {
        "retain": control.path, "examples": len(control.data), "method": cfg.method, "metric": "macro_f1",
        "labels": "starting model's predictions" if control.pseudo else "retain label column",
        "head": control.head.kind, "before": control.before, "after": after, "drop": drop,
        "drop_accuracy": control.before["accuracy"] - after["accuracy"], "warn_threshold": cfg.warn_threshold,
    }  # fmt: skip
    log.info(
        "forgetting: retained macro-F1 %.4f -> %.4f (drop %.4f)",
        control.before["macro_f1"],
        after["macro_f1"],
        drop,
    )
    findings: list[Finding] = []
    if drop > cfg.warn_threshold:
        findings.append(_finding(cfg, control, after, drop))
        log.warning("%s -> %s", findings[-1].title, findings[-1].recommendation)
    return result, findings


def _finding(cfg: Any, control: ForgettingControl, after: dict[str, Any], drop: float) -> Finding:
    evidence = {"before": control.before["macro_f1"], "after": after["macro_f1"], "drop": drop,
                "warn_threshold": cfg.warn_threshold, "retain": control.path, "method": cfg.method}  # fmt: skip
    title = (f"catastrophic forgetting: retained macro-F1 fell by {drop:.3f} "
             f"({control.before['macro_f1']:.3f} -> {after['macro_f1']:.3f}) on {control.path}")  # fmt: skip
    if cfg.method == "none":
        recommendation = ("set forgetting.method: ewc with forgetting.ewc_weight: 1.0 (pulls the weights that "
                          "matter for the retain set towards the start); or l2sp, or replay to mix retain examples "
                          "into each batch.")  # fmt: skip
        patch: dict[str, Any] = dict(SUGGESTION)
    else:
        key = {"ewc": "ewc_weight", "l2sp": "l2sp_weight", "replay": "replay_fraction"}[cfg.method]
        value = getattr(cfg, key)
        stronger = min(1.0, value * 2) if key == "replay_fraction" else value * 4
        recommendation = f"forgetting.method {cfg.method} was not enough: raise forgetting.{key} from {value:g} to {stronger:g}."
        patch = {f"forgetting.{key}": stronger}
    return Finding(id="forgetting.drop", stage="evaluation", severity="warning", title=title, evidence=evidence,
                   recommendation=recommendation, config_patch=patch)  # fmt: skip
