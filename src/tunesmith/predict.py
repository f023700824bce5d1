"""Predict with a finished run's model: labels with probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from tunesmith.errors import UserError
from tunesmith.export import is_adapter_dir, load_trained, run_task
from tunesmith.models.loader import load_tokenizer


def find_model_dir(path: Path) -> Path:
    """Accept a run directory (uses its model/) or a model directory itself."""
    for candidate in (path / "model", path):
        if (candidate / "config.json").is_file() and any(candidate.glob("*.safetensors")):
            return candidate
        if is_adapter_dir(candidate):  # lora / ia3 / prompt-tuning / adapter runs save only the adapter
            return candidate
    raise UserError(
        f"{path}: no trained model here (expected {path}/model with config.json and safetensors); "
        "pass the run directory of a finished `tunesmith run`."
    )


def read_texts_file(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"--file {path}: cannot read it ({exc.strerror}); check the path.") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(
            f"--file {path}: line {line} is not UTF-8 (byte {exc.start}); re-save it as UTF-8."
        ) from exc
    texts = [line.strip() for line in text.splitlines() if line.strip()]
    if not texts:
        raise UserError(f"--file {path}: no text in it; put one text per line.")
    return texts


def max_length_of(run_dir: Path, default: int = 512) -> int:
    config = run_dir / "config.yaml"
    if config.is_file():
        return int((yaml.safe_load(config.read_text()) or {}).get("model", {}).get("max_length", default))
    return default


@torch.inference_mode()
def predict(
    path: Path, texts: list[str], batch_size: int = 32, *, calibrated: bool = True
) -> list[dict[str, Any]]:
    """Return, per text, the predicted label and every label's probability (highest first).

    When the evaluation suite fitted a temperature (model/calibration.json), the probabilities are
    softmax(logits / T), which leaves the predicted label as it is; `calibrated=False` gives the raw ones.
    """
    from tunesmith.evaluation.suite.calibration import read_temperature

    if not texts:
        raise UserError("predict: no texts given; pass texts as arguments or --file F (one text per line).")
    model_dir = find_model_dir(path)
    from tunesmith.predict_images import is_image_run, predict_images

    if is_image_run(model_dir, path if path != model_dir else None):  # items: image files, folders, CSVs
        return predict_images(model_dir, texts, calibrated=calibrated)
    if run_task(model_dir, path if path != model_dir else None) == "causal-lm":
        raise UserError(
            f"{path}: predict classifies texts and this is a causal-lm run; use `tunesmith generate`."
        )
    tokenizer = load_tokenizer(model_dir)
    model = load_trained(model_dir, path if path != model_dir else None)
    id2label: dict[int, str] = model.config.id2label  # type: ignore[union-attr,assignment]
    max_length = max_length_of(path)
    temperature = (read_temperature(model_dir) if calibrated else None) or 1.0
    results: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        batch = tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        probs = torch.softmax(model(**batch).logits.float() / temperature, dim=-1)
        for text, row in zip(chunk, probs.tolist(), strict=True):
            ranked = sorted(((id2label[i], p) for i, p in enumerate(row)), key=lambda item: -item[1])
            results.append({"text": text, "label": ranked[0][0], "probs": dict(ranked)})
    return results


def generate(
    path: Path, prompts: list[str], *, chat: bool | None = None, max_new_tokens: int = 64
) -> list[str]:
    """Greedy generations of a causal-lm run's model (adapters loaded on their base model)."""
    from tunesmith.data.lm import has_chat_template
    from tunesmith.evaluation.generate import generate_greedy

    model_dir = find_model_dir(path)
    run_dir = path if path != model_dir else None
    if run_task(model_dir, run_dir) != "causal-lm":
        raise UserError(f"{path}: generate needs a causal-lm run; this one is text classification "
                        "(use `tunesmith predict`).")  # fmt: skip
    tokenizer = load_tokenizer(model_dir)
    if chat and not has_chat_template(tokenizer):
        raise UserError(f"--chat: the tokenizer in {model_dir} has no chat template; drop --chat.")
    model = load_trained(model_dir, run_dir)
    return generate_greedy(model, tokenizer, prompts, max_new_tokens=max_new_tokens, chat=chat)
