"""Everything a run leaves on disk besides checkpoints: run directory, model, predictions, JSON files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from tunesmith.config.schema import OutputConfig, Recipe
from tunesmith.data.types import Split
from tunesmith.errors import UserError
from tunesmith.evaluation.metrics import headline
from tunesmith.export import save_weights
from tunesmith.fileio import write_text_atomic

RUN_MARKERS = ("config.yaml", "history.jsonl", "checkpoints", "metrics.json", "model")


def resolve_run_dir(output: OutputConfig) -> Path:
    """runs/<name>, resolved; the name is a plain directory name, so the path stays under output.dir."""
    base = Path(output.dir).expanduser().resolve()
    run_dir = (base / output.name).resolve()
    if run_dir.parent != base:
        raise UserError(f"output.name: '{output.name}' must be a plain directory name inside {base}.")
    if base.exists() and not base.is_dir():
        raise UserError(f"output.dir: {base} exists and is not a directory; choose another output.dir.")
    return run_dir


def holds_run(run_dir: Path) -> bool:
    return run_dir.is_dir() and any((run_dir / m).exists() for m in RUN_MARKERS)


def check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other; pass only one.")
    if not resume and not overwrite and holds_run(run_dir):
        raise UserError(
            f"output: {run_dir} already holds a run; pass --resume to continue it, --overwrite to replace it, "
            "or set output.name to a new name."
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"output: {run_dir} exists and is not a directory; set output.name to a new name.")
    if not run_dir.exists():
        check_creatable(run_dir, "output.dir")


def finished_run_files(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(metrics, findings) of a run whose outputs are all written, else None. report.html is written
    after metrics.json and findings.json, so its presence means the run got to the end."""
    paths = [run_dir / name for name in ("metrics.json", "findings.json", "report.html")]
    if not all(p.is_file() for p in paths):
        return None
    try:
        return json.loads(paths[0].read_text()), json.loads(paths[1].read_text())
    except ValueError:  # written atomically, so only a hand-edited file gets here
        return None


def check_creatable(path: Path, key: str) -> None:
    """`path` can be made later: its nearest existing ancestor is a directory we can create entries in.

    Tried with a temporary directory that is removed at once, since permission bits do not tell (root,
    read-only mounts, /proc): so a bad output.dir fails up front, not after the audit and training."""
    import tempfile

    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    try:
        if not parent.is_dir():
            raise NotADirectoryError(f"{parent} is not a directory")
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".tunesmith-probe-"))
    except OSError as exc:
        raise UserError(
            f"{key}: cannot create {path} ({exc.strerror or exc} in {parent}); choose a writable directory."
        ) from None


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename) so a crash never leaves half a file."""
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_predictions(path: Path, split: Split, probs: np.ndarray, labels: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    preds = probs.argmax(-1)
    lines = []
    for i, text in enumerate(split.texts):
        lines.append(json.dumps({
            "row": split.rows[i], "text": text, "label": labels[split.labels[i]], "pred": labels[int(preds[i])],
            "probs": [round(float(p), 6) for p in probs[i]], "group": split.groups[i] if split.groups else None,
        }))  # fmt: skip
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)


def save_model(
    run_dir: Path,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    recipe: Recipe,
    metrics: dict[str, Any],
) -> Path:
    """model/ via save_pretrained (safetensors) + tokenizer + labels.json + a model card, written atomically."""
    final = run_dir / "model"
    tmp = run_dir / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_weights(model, tmp)  # plain models: save_pretrained; PEFT / adapters: the adapter and head only
    tokenizer.save_pretrained(tmp)
    labels = metrics["labels"]
    (tmp / "labels.json").write_text(
        json.dumps(
            {"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}}, indent=2
        )
    )
    (tmp / "README.md").write_text(model_card(recipe, metrics))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


ADAPTER_STRATEGIES = {"lora", "ia3", "prompt-tuning", "adapter"}


def usage(strategy: str) -> str:
    """How to load the saved model: plain weights, or an adapter on top of its base model."""
    if strategy in {"setfit", "zero-shot"}:  # the head reads the mean-pooled embedding (config.json)
        return (
            f"`{strategy}` feeds the classifier the mean of the token vectors (`tunesmith_pooling` in config.json), "
            "not BERT's [CLS] pooler: load it with `tunesmith predict RUN_DIR` or "
            "`tunesmith.export.load_trained(model_dir)`; a plain AutoModelForSequenceClassification would "
            "predict from the [CLS] pooler instead."
        )
    if strategy not in ADAPTER_STRATEGIES:
        return """```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained("path/to/model")
tokenizer = AutoTokenizer.from_pretrained("path/to/model")
```"""
    merge = (
        "; `tunesmith export RUN_DIR --merge --out DIR` writes a plain model that loads without PEFT"
        if strategy in {"lora", "ia3"}
        else ""
    )
    return (
        f"This directory holds only the `{strategy}` adapter (adapter_config.json + adapter_model.safetensors, "
        f"with the classification head). `tunesmith predict RUN_DIR` loads it on its base model{merge}."
    )


def model_card(recipe: Recipe, metrics: dict[str, Any]) -> str:
    def row(split: str) -> str:
        m = metrics.get(split)
        return (
            f"| {split} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} |" if m else ""
        )

    labels = ", ".join(metrics["labels"])
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [tunesmith, text-classification]
---
# {recipe.output.name}

Fine-tuned by [tunesmith](https://github.com/) from `{recipe.model.name}` with strategy `{recipe.strategy.name}`
for {metrics["epochs_run"]} epochs (best epoch {metrics["best_epoch"]}, chosen on validation {recipe.eval.metric}).

Labels: {labels}. Training data: `{recipe.data.train}` (text column `{recipe.data.text}`, label `{recipe.data.label}`).

| split | accuracy | macro-F1 | weighted-F1 |
|---|---|---|---|
{row("validation")}
{row("test")}

{usage(recipe.strategy.name)}

Validation: {headline(metrics["validation"])}. The full recipe is in the run directory's `config.yaml`.
"""
