"""Saving and loading what a strategy trained, and `tunesmith export`: adapters on their own, or merged.

A run's model/ is either a plain Hugging Face model (full, frozen, discriminative, progressive), a PEFT
adapter (lora, ia3, prompt-tuning: adapter_config.json + adapter_model.safetensors) or a tunesmith bottleneck
adapter (same two files, `adapter_type: tunesmith-bottleneck`). Adapters are loaded on top of the base model
named in the run's config.yaml (or in adapter_config.json), with the labels from labels.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from tunesmith.errors import UserError
from tunesmith.strategies import adapter as bottleneck

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
NOT_MERGEABLE = {
    "PROMPT_TUNING": "prompt tuning adds learned input tokens, which no weight of the plain model can hold",
    bottleneck.ADAPTER_TYPE: "bottleneck adapters add layers with a non-linearity, which cannot be folded into weights",
}


def is_peft(model: torch.nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def save_weights(model: torch.nn.Module, out_dir: Path) -> None:
    """save_pretrained for plain and PEFT models (PEFT writes only the adapter and head); our adapters too."""
    if bottleneck.is_adapted(model):
        bottleneck.save_adapter(model, out_dir)
    else:
        model.save_pretrained(out_dir, safe_serialization=True)  # type: ignore[operator]


def is_adapter_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in ADAPTER_FILES)


def _labels(model_dir: Path) -> list[str]:
    try:
        id2label = json.loads((model_dir / "labels.json").read_text())["id2label"]
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(
            f"{model_dir}/labels.json is missing or unreadable; it is written by `tunesmith run`."
        ) from exc
    return [id2label[str(i)] for i in range(len(id2label))]


def _base_name(model_dir: Path, run_dir: Path | None, config: dict[str, object]) -> str:
    """The recipe's model.name (registry names stay valid when site-packages move), else the recorded path."""
    for recipe in ([run_dir / "config.yaml"] if run_dir else []) + [model_dir.parent / "config.yaml"]:
        if recipe.is_file():
            name = (yaml.safe_load(recipe.read_text()) or {}).get("model", {}).get("name")
            if name:
                return str(name)
    base = config.get("base_model_name_or_path")
    if not base:
        raise UserError(
            f"{model_dir}/adapter_config.json names no base model; pass the run directory instead."
        )
    return str(base)


def _recorded_shape(model_dir: Path, run_dir: Path | None) -> Any:
    """The run's model section (model.num_layers etc.): an adapter belongs on the base as it was shaped."""
    from tunesmith.config.schema import ModelConfig

    for recipe in ([run_dir / "config.yaml"] if run_dir else []) + [model_dir.parent / "config.yaml"]:
        if recipe.is_file():
            model = (yaml.safe_load(recipe.read_text()) or {}).get("model", {})
            known = {k: model.get(k) for k in ("name", "dropout", "classifier_dropout", "num_layers")}
            return ModelConfig(**{k: v for k, v in known.items() if v is not None})
    return None


def run_task(model_dir: Path, run_dir: Path | None = None) -> str:
    """The task the run trained (its config.yaml), text-classification for a bare model directory."""
    for recipe in ([run_dir / "config.yaml"] if run_dir else []) + [model_dir.parent / "config.yaml"]:
        if recipe.is_file():
            return str((yaml.safe_load(recipe.read_text()) or {}).get("task", "text-classification"))
    return "text-classification"


def load_trained(model_dir: Path, run_dir: Path | None = None) -> torch.nn.Module:
    """The trained model in eval mode, whatever the task and strategy (adapters on their base model)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    causal = run_task(model_dir, run_dir) == "causal-lm"
    if not is_adapter_dir(model_dir):
        auto = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
        from tunesmith.strategies.sentence import restore_pooling

        loaded = auto.from_pretrained(model_dir, use_safetensors=True, trust_remote_code=False)
        return restore_pooling(loaded).eval()  # setfit / zero-shot models mean-pool (config.json says so)
    config = json.loads((model_dir / "adapter_config.json").read_text())
    name = _base_name(model_dir, run_dir, config)
    base: torch.nn.Module
    if causal:
        from tunesmith.models.gguf_cache import resolve_causal_lm_dir
        from tunesmith.models.shaping import shaped_kwargs

        base_dir = resolve_causal_lm_dir(name)
        shape = _recorded_shape(model_dir, run_dir)
        base = AutoModelForCausalLM.from_pretrained(
            base_dir, use_safetensors=True, trust_remote_code=False,
            **(shaped_kwargs(base_dir, shape) if shape is not None else {}),
        )  # fmt: skip
    else:
        from tunesmith.models.loader import load_classifier

        base, _, _ = load_classifier(
            name, _labels(model_dir), seed=0, shape=_recorded_shape(model_dir, run_dir)
        )
    if config.get("adapter_type") == bottleneck.ADAPTER_TYPE:
        return bottleneck.load_adapter(base, model_dir).eval()
    from peft import PeftModel

    return PeftModel.from_pretrained(base, model_dir, is_trainable=False).eval()


def export_model(run_dir: Path, out_dir: Path, *, merge: bool) -> Path:
    """Write the run's model to `out_dir`: as saved, or (merge) as a plain model that loads without PEFT."""
    from tunesmith.models.loader import load_tokenizer
    from tunesmith.predict import find_model_dir

    model_dir = find_model_dir(run_dir)
    out_dir = out_dir.expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file; choose a new directory.")
    if not out_dir.exists():
        from tunesmith.outputs import check_creatable

        check_creatable(out_dir, "--out")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"--out {out_dir} is not empty; choose a new directory.")
    adapter = is_adapter_dir(model_dir)
    if not merge or not adapter:
        shutil.copytree(model_dir, out_dir, dirs_exist_ok=True)
        return out_dir
    config = json.loads((model_dir / "adapter_config.json").read_text())
    kind = str(config.get("adapter_type") or config.get("peft_type"))
    if kind in NOT_MERGEABLE:
        raise UserError(f"--merge: {NOT_MERGEABLE[kind]}; export without --merge (load it with PEFT / tunesmith), "
                        "or train with strategy lora or ia3 for a mergeable model.")  # fmt: skip
    model = load_trained(model_dir, run_dir if (run_dir / "config.yaml").is_file() else None)
    merged = model.merge_and_unload()  # type: ignore[operator]
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    load_tokenizer(model_dir).save_pretrained(tmp)
    for name in ("labels.json", "README.md"):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, tmp / name)
    if out_dir.exists():
        out_dir.rmdir()
    tmp.rename(out_dir)
    return out_dir
