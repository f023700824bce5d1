"""The end of an image-classification run: the most confidently wrong images, with attribution heatmaps.

Written to RUN_DIR/evaluation/images.json (thumbnails as PNG data URIs, so report.html stays one offline
file). The heatmap is Integrated Gradients (Captum) of the predicted class with respect to the input
pixels, from an all-mean baseline (zeros after normalisation), summed over channels: where the model looked
to make the wrong call. Without Captum the thumbnails are shown alone.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from tunesmith.fileio import write_text_atomic
from tunesmith.findings import Finding

if TYPE_CHECKING:
    from tunesmith.tasks.image_classification import ImageClassification

log = logging.getLogger(__name__)
TOP_WRONG = 8
THUMB = 96
IG_STEPS = 16


def png_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def attribution_map(model: torch.nn.Module, pixels: torch.Tensor, target: int) -> np.ndarray | None:
    """|Integrated Gradients| summed over channels, [H, W] scaled to 0..1; None without Captum."""
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        return None
    was_training = model.training
    model.eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model(pixel_values=x).logits

    # The frozen strategy's feature cache replaces a backbone's forward (an instance attribute) with a
    # no-grad lookup; gradients to the pixels need the real forward for the duration.
    patched = {m: m.__dict__.pop("forward") for m in model.modules() if "forward" in m.__dict__}
    try:
        with torch.enable_grad():
            scores = IntegratedGradients(forward).attribute(pixels[None], target=target, n_steps=IG_STEPS)
    finally:
        for module, method in patched.items():
            module.forward = method  # type: ignore[method-assign]
        model.train(was_training)
    heat = scores[0].abs().sum(0).detach().cpu().numpy()
    return heat / heat.max() if heat.max() > 0 else heat


def overlay(pixels: torch.Tensor, heat: np.ndarray) -> Image.Image:
    """The image in grey with the attribution in red on top."""
    grey = pixels.float().mean(0).numpy() / 255.0
    rgb = np.stack([np.clip(0.5 * grey + heat, 0, 1), 0.5 * grey, 0.5 * grey], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8)).resize((THUMB, THUMB), Image.Resampling.NEAREST)


def image_evaluation(
    run_dir: Path, task: ImageClassification, model: torch.nn.Module
) -> tuple[dict[str, Any], list[Finding]]:
    bundle = task.bundle
    assert bundle is not None and task.info is not None
    split = bundle.test if bundle.test is not None else bundle.validation
    data = task.encode(split)
    device = next(model.parameters()).device
    evaluation = task.evaluate(model, data, batch_size=task.recipe.eval.batch_size, device=device)
    probs = np.asarray(evaluation.outputs)
    pred = probs.argmax(1)
    labels = np.asarray(data.labels)
    wrong = np.nonzero(pred != labels)[0]
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:TOP_WRONG]
    items = []
    for i in wrong.tolist():
        path = split.texts[i]
        with Image.open(path) as image:
            thumb = image.convert("RGB")
            thumb.thumbnail((THUMB, THUMB))
        stored = task.store[data.input_ids[i][0]]
        normalised = task.collate_fn([data.input_ids[i]], [0])["pixel_values"][0].to(device)
        heat = attribution_map(model, normalised, int(pred[i]))
        items.append({
            "row": split.rows[i], "path": path, "label": task.labels[labels[i]], "pred": task.labels[pred[i]],
            "confidence": round(float(probs[i, pred[i]]), 4), "p_true": round(float(probs[i, labels[i]]), 4),
            "thumbnail": png_uri(thumb), "attribution": png_uri(overlay(stored, heat)) if heat is not None else None,
        })  # fmt: skip
    result = {"split": split.name, "wrong": int(len(np.nonzero(pred != labels)[0])), "total": len(labels),
              "method": "integrated gradients (captum)" if items and items[0]["attribution"] else None,
              "examples": items}  # fmt: skip
    (run_dir / "evaluation").mkdir(exist_ok=True)
    write_text_atomic(run_dir / "evaluation" / "images.json", json.dumps(result))
    return _suite(run_dir, task, model)


def _suite(
    run_dir: Path, task: ImageClassification, model: torch.nn.Module
) -> tuple[dict[str, Any], list[Finding]]:
    """eval.suite's image checks (calibration, robustness, latency) on the split evaluated above."""
    from tunesmith.evaluation.image_suite import run_image_suite
    from tunesmith.evaluation.suite.context import sample
    from tunesmith.evaluation.suite.suite import eval_set_from_split, resolve_checks
    from tunesmith.predict_images import ImageModel

    recipe, bundle = task.recipe, task.bundle
    assert bundle is not None and task.info is not None
    names = resolve_checks(recipe.eval.suite)
    if not names:
        return {"evaluation": {"checks": {}}}, []
    seed, limit = recipe.train.seed, recipe.eval.max_examples
    split = bundle.test if bundle.test is not None else bundle.validation
    eval_set = sample(eval_set_from_split(split, len(task.labels), None), limit, seed)
    validation = sample(eval_set_from_split(bundle.validation, len(task.labels), None), max(limit, 200), seed)
    loaded = ImageModel(model, task.info, list(task.labels), run_dir / "model")
    summary, findings = run_image_suite(run_dir / "evaluation", run_dir, recipe.eval, names, loaded, eval_set,
                                        validation, seed)  # fmt: skip
    return {"evaluation": summary}, findings
