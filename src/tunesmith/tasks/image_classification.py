"""`task: image-classification`: a folder of class subfolders (or a path + label file); a CNN / ViT classifier.

Loss, training metrics (confusion matrix on the device), training dynamics, evaluation (accuracy, per-class
and macro precision / recall / F1) and prediction files are text classification's, inherited unchanged:
only what a batch is differs. An image is one "token": `Encoded.input_ids[i]` is `[k]`, the position of its
preprocessed uint8 pixels in the task's image store (decoded, resized and centre-cropped once per path), so
the length-bucketed batcher, the shared `predict_probs` and every spine component see the usual shape.
Training batches go through `collate` (augmentation: data.augment.ops, drawn from torch's generator, so a
resumed run repeats them exactly); evaluation batches through `collate_fn` (no augmentation).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import torch
from peft import PeftModel

from tunesmith.data.image_ops import IMAGE_OPS, augment, load_image, normalise
from tunesmith.data.types import DataBundle, Split, Table
from tunesmith.errors import UserError
from tunesmith.findings import Finding
from tunesmith.models.vision import (
    ImageModelInfo,
    embed_images,
    freeze_batchnorm_stats,
    load_image_classifier,
    model_info,
    resolve_image_model_dir,
)
from tunesmith.report import images as image_section
from tunesmith.report.extras import register_section
from tunesmith.strategies import adapter as bottleneck
from tunesmith.strategies.vision_peft import merged_copy
from tunesmith.tasks.base import Encoded, LoadedModel
from tunesmith.tasks.text_classification import TextClassification

register_section(image_section.SECTION, image_section.render, title=image_section.TITLE)


# lora: PEFT on the backbone's convolutions / attention (tunesmith.strategies.vision_peft), saved merged;
# adapter: bottleneck adapters (1x1-conv residual adapters on a CNN), saved beside the base weights.
# ia3 / prompt tuning / setfit are built around text transformers' projections or a tokenizer.
IMAGE_STRATEGIES = ("frozen", "full", "discriminative", "progressive", "lora", "adapter")


class ImageClassification(TextClassification):
    name = "image-classification"
    metrics: ClassVar[dict[str, bool]] = TextClassification.metrics
    uses_forgetting_control = False  # the retain set and EWC / L2-SP are built around a tokenizer

    def __init__(self, recipe: Any) -> None:
        super().__init__(recipe)
        self.info: ImageModelInfo | None = None
        self.store: list[torch.Tensor] = []  # uint8 [3, S, S] per distinct image path
        self.position: dict[str, int] = {}
        self.ops: list[str] = list(recipe.data.augment.ops) if recipe.data.augment else []
        self.collate_fn = self._collate_eval
        self.model: torch.nn.Module | None = None

    def check_recipe(self) -> None:
        self.check_metric()
        data = self.recipe.data
        for key in ("prompt", "response", "messages"):
            if getattr(data, key) is not None:
                raise UserError(f"data.{key}: a causal-lm column, not read by task: {self.name}; remove it.")
        text_ops = [op for op in self.ops if op not in IMAGE_OPS]
        if text_ops:
            raise UserError(f"data.augment.ops: {', '.join(text_ops)} edit texts; for images use "
                            f"{', '.join(IMAGE_OPS)} (e.g. data.augment.ops: [flip, crop]).")  # fmt: skip
        if self.recipe.train.group_weights:
            raise UserError("train.group_weights: not available for images (no group column); remove it.")
        if self.recipe.strategy.name not in IMAGE_STRATEGIES:
            raise UserError(f"strategy.name: {self.recipe.strategy.name} is not available for images yet; use "
                            f"one of {', '.join(IMAGE_STRATEGIES)}.")  # fmt: skip

    def check_model(self) -> None:
        resolve_image_model_dir(self.recipe.model.name)  # converts the embedded model once; UserError if none

    def prepare_data(self) -> tuple[dict[str, Table], DataBundle]:
        from tunesmith.data.images import prepare_image_data

        return prepare_image_data(self.recipe.data)

    def load_model(self, bundle: DataBundle) -> LoadedModel:
        self.labels, self.bundle = list(bundle.labels), bundle
        self.train_rows = list(bundle.train.rows)
        model_dir = resolve_image_model_dir(self.recipe.model.name)
        self.info = model_info(model_dir, self.recipe.model.image_size)
        model = load_image_classifier(
            model_dir, self.labels, seed=self.recipe.train.seed, image_size=self.info.image_size
        )
        freeze_batchnorm_stats(model)
        self.model = model
        return LoadedModel(model, None, model_dir)

    def audit(self, tables: dict[str, Table], tokenizer: Any, balance: str | None) -> Any:
        """The image doctor (tunesmith.audit.images), label errors from the pre-trained backbone's features."""
        from tunesmith.audit.images import image_audit

        return image_audit(tables, self.recipe.audit, balance=balance, embed=self.embed)

    def embed(self, paths: list[str], batch_size: int = 64) -> torch.Tensor:
        """Pooled backbone features of images (for the label-error check and the report)."""
        assert self.info is not None and self.model is not None
        return embed_images(self.model, self.info, paths, batch_size)

    def encode(self, split: Split) -> Encoded:
        assert self.info is not None, "load_model() first"
        ids = []
        for path in split.texts:
            if path not in self.position:
                self.position[path] = len(self.store)
                self.store.append(load_image(path, self.info.image_size))
            ids.append([self.position[path]])
        return Encoded(ids, list(split.labels))

    def _pixels(self, ids: list[list[int]]) -> torch.Tensor:
        return torch.stack([self.store[i[0]] for i in ids])

    def _collate_eval(self, ids: list[list[int]], labels: list[Any]) -> dict[str, torch.Tensor]:
        assert self.info is not None
        pixels = normalise(self._pixels(ids), self.info.mean, self.info.std)
        return {"pixel_values": pixels, "labels": torch.tensor(labels, dtype=torch.long)}

    def collate(self, data: Encoded, indices: list[int]) -> dict[str, torch.Tensor]:
        """A training batch: the images augmented (data.augment.ops), then normalised."""
        assert self.info is not None
        ids = [data.input_ids[i] for i in indices]
        x = self._pixels(ids).float().div_(255.0)
        if self.ops:
            x = augment(x, self.ops)
        m = torch.tensor(self.info.mean).view(1, -1, 1, 1)
        s = torch.tensor(self.info.std).view(1, -1, 1, 1)
        labels = torch.tensor([data.labels[i] for i in indices], dtype=torch.long)
        return {"pixel_values": (x - m) / s, "labels": labels}

    def count_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["labels"].numel())  # throughput counts images

    def finish(self, run_dir: Path, model: torch.nn.Module) -> tuple[dict[str, Any], list[Finding]]:
        from tunesmith.evaluation.images import image_evaluation

        assert self.bundle is not None
        return image_evaluation(run_dir, self, model)

    def save(self, run_dir: Path, model: torch.nn.Module, metrics: dict[str, Any]) -> Path:
        """model/: safetensors weights, config.json (+ preprocessor_config.json), labels.json, a model card.
        lora and adapter runs also write model/adapter/; adapters (which cannot be folded into weights) are
        left out of model/'s weights and put back on load (tunesmith.predict_images.load_image_run)."""
        assert self.info is not None
        final, tmp = run_dir / "model", run_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(model, PeftModel):  # lora: the adapter on its own, and a merged plain model beside it
            model.save_pretrained(str(tmp / "adapter"), safe_serialization=True)
            model = merged_copy(model)
        state = None
        if bottleneck.is_adapted(model):
            bottleneck.save_adapter(model, tmp / "adapter", base=self.recipe.model.name)
            state = bottleneck.base_state(model)
        save = getattr(model, "save", None)
        if callable(save):  # EfficientNetClassifier
            save(tmp, state)
        else:
            model.save_pretrained(tmp, state_dict=state, safe_serialization=True)  # type: ignore[operator]
        labels = metrics["labels"]
        (tmp / "preprocessor_config.json").write_text(json.dumps({
            "image_processor_type": "ViTImageProcessor", "do_resize": True, "size": self.info.image_size,
            "crop_size": self.info.image_size, "image_mean": list(self.info.mean),
            "image_std": list(self.info.std),
        }, indent=2))  # fmt: skip
        (tmp / "labels.json").write_text(json.dumps(
            {"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}}, indent=2
        ))  # fmt: skip
        (tmp / "README.md").write_text(_card(self.recipe, metrics))
        shutil.rmtree(final, ignore_errors=True)
        tmp.replace(final)
        return final


def _card(recipe: Any, metrics: dict[str, Any]) -> str:
    val = metrics.get("validation") or {}
    return (
        f"# {recipe.output.name}\n\nFine-tuned by tunesmith from `{recipe.model.name}` (strategy "
        f"`{recipe.strategy.name}`) on the images of `{recipe.data.train}`.\n\nLabels: {', '.join(metrics['labels'])}."
        f"\n\nValidation accuracy {val.get('accuracy', float('nan')):.4f}, macro-F1 "
        f"{val.get('macro_f1', float('nan')):.4f}. Load it with `tunesmith.models.vision.load_image_classifier`"
        " or, for a Hugging Face backbone, `AutoModelForImageClassification.from_pretrained`.\n"
    )
