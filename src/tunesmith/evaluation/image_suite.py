"""The evaluation suite for images: calibration, robustness and latency through one predict function.

The checks are the suite's (same result shapes, same report sections): calibration is the text check
unchanged (it only needs probabilities); robustness perturbs the decoded pixels (gaussian noise, blur,
brightness, a small rotation, with Pillow and torch, seeded) and counts flipped predictions with a Wilson
interval; latency times the predict function itself (decode + resize + normalise + forward, as a service
would) at batch 1, 8 and 32. slices and baseline read texts; the image twin of explanations is the
Integrated Gradients heatmap over the most confidently wrong images (evaluation/images.json).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from tunesmith.errors import UserError
from tunesmith.evaluation.suite.calibration import check_calibration
from tunesmith.evaluation.suite.context import Context, EvalSet, Result, proportion_ci, sample_index
from tunesmith.evaluation.suite.predictor import ModelHandle
from tunesmith.evaluation.suite.suite import headline
from tunesmith.findings import Finding
from tunesmith.outputs import write_json
from tunesmith.predict_images import ImageModel, image_predictor, pixel_probs, read_pixels
from tunesmith.tuning.stats import classification_score

IMAGE_CHECKS = ("calibration", "robustness", "latency")
NOT_FOR_IMAGES = {
    "slices": "reads a group column of text data",
    "baseline": "a TF-IDF baseline reads texts",
    "explanations": "for images: the Integrated Gradients heatmaps of evaluation/images.json",
}
NOISE_STD = 0.08  # of the 0..1 range
BLUR_RADIUS = 1.0  # pixels, at the model's input size
BRIGHTNESS = 1.3
ROTATION_DEG = 10.0
# perturbation -> the data.augment.ops op that trains against it
AUGMENT_OP = {"gaussian_noise": None, "blur": None, "brightness": "color", "rotation": "rotate"}
EXAMPLES = 5
LATENCY_IMAGES = 30  # batch-1 calls timed (after the suite's warm-up calls)


def _pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(x.permute(1, 2, 0).numpy())


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def gaussian_noise(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    noise = torch.from_numpy(rng.normal(0.0, NOISE_STD * 255.0, tuple(x.shape)))
    return (x.double() + noise).round().clamp(0, 255).to(torch.uint8)


def blur(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return _tensor(_pil(x).filter(ImageFilter.GaussianBlur(BLUR_RADIUS)))


def brightness(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return _tensor(ImageEnhance.Brightness(_pil(x)).enhance(BRIGHTNESS))


def rotation(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    angle = ROTATION_DEG if rng.random() < 0.5 else -ROTATION_DEG
    return _tensor(_pil(x).rotate(angle, resample=Image.Resampling.BILINEAR))


PERTURBATIONS = {
    "gaussian_noise": gaussian_noise,
    "blur": blur,
    "brightness": brightness,
    "rotation": rotation,
}


def check_image_robustness(ctx: Context, loaded: ImageModel) -> tuple[Result, list[Finding]]:
    data, labels, y = ctx.eval_set, ctx.labels, ctx.eval_set.labels
    base_pred = ctx.probs().argmax(axis=1)
    pool = sample_index(y, ctx.cfg.perturb_examples, ctx.seed)
    size = loaded.info.image_size
    originals = [read_pixels(data.texts[int(i)], size, "robustness") for i in pool]
    results: dict[str, Any] = {}
    for index, (name, fn) in enumerate(PERTURBATIONS.items()):
        rng = np.random.default_rng(ctx.seed + index)
        pred = pixel_probs(loaded, torch.stack([fn(x, rng) for x in originals])).argmax(axis=1)
        flipped = pred != base_pred[pool]
        examples = [{"row": data.rows[int(r)], "original": Path(data.texts[int(r)]).name, "perturbed": name,
                     "label": labels[int(y[r])], "before": labels[int(base_pred[r])], "after": labels[int(p)]}
                    for r, p, f in zip(pool, pred, flipped, strict=True) if f][:EXAMPLES]  # fmt: skip
        before, after = float(np.mean(base_pred[pool] == y[pool])), float(np.mean(pred == y[pool]))
        results[name] = {
            "applicable": len(pool), "flips": int(flipped.sum()), "flip_rate": float(flipped.mean()),
            "flip_rate_ci": proportion_ci(int(flipped.sum()), len(pool)), "accuracy_before": before,
            "accuracy_after": after, "accuracy_change": after - before, "augment_op": AUGMENT_OP[name],
            "examples": examples,
        }  # fmt: skip
    settings = {"noise_std": NOISE_STD, "blur_radius_px": BLUR_RADIUS, "brightness": BRIGHTNESS,
                "rotation_deg": ROTATION_DEG, "image_size": size}  # fmt: skip
    result: Result = {"split": data.name, "n": len(data), "perturbed_images": len(pool), "seed": ctx.seed,
                      "settings": settings, "perturbations": results}  # fmt: skip
    return result, _robustness_findings(results, ctx)


def _robustness_findings(results: dict[str, Any], ctx: Context) -> list[Finding]:
    fragile = {k: v for k, v in results.items() if v["flip_rate"] > ctx.cfg.flip_rate_warn}
    if not fragile:
        return []
    ops = sorted({v["augment_op"] for v in fragile.values() if v["augment_op"]})
    listed = ", ".join(
        f"{k} {v['flip_rate']:.0%}" for k, v in sorted(fragile.items(), key=lambda kv: -kv[1]["flip_rate"])
    )
    fix = (f"Train with data.augment.ops including {', '.join(ops)} so the model sees these changes; "
           if ops else "")  # fmt: skip
    return [Finding(
        id="evaluation.robustness", stage="evaluation", severity="warning",
        title=f"Predictions flip under small image changes: {listed} (warn above {ctx.cfg.flip_rate_warn:.0%})",
        evidence={k: {"flip_rate": v["flip_rate"], "flip_rate_ci": v["flip_rate_ci"], "applicable": v["applicable"],
                      "accuracy_change": v["accuracy_change"]} for k, v in fragile.items()},
        recommendation=fix + "collect training images with the noise, blur and lighting seen in production.",
        config_patch={"data.augment.ops": ["flip", "crop", *ops]} if ops else None,
    )]  # fmt: skip


def check_image_latency(ctx: Context, loaded: ImageModel) -> tuple[Result, list[Finding]]:
    """Batch-1 p50/p95/p99 and images/s at batch 1, 8, 32 of the suite's predict function (from the file)."""
    from tunesmith.evaluation.suite.latency import PeakRss, _time_batch1

    predict, paths = ctx.handle.predict, ctx.eval_set.texts
    timed = (paths * (LATENCY_IMAGES // max(len(paths), 1) + 1))[:LATENCY_IMAGES]
    device = next(loaded.model.parameters()).device
    with PeakRss(device) as memory:
        latency = _time_batch1(predict, timed)  # warm-up calls first
        throughput = {"1": 1000.0 / max(latency["mean_ms"], 1e-9)}
        for batch in (8, 32):
            chunk = (paths * (batch // max(len(paths), 1) + 1))[:batch]
            start = time.perf_counter()
            predict(chunk)
            throughput[str(batch)] = batch / max(time.perf_counter() - start, 1e-9)
    pred = ctx.probs().argmax(axis=1)
    files = list(loaded.model_dir.glob("*.safetensors"))
    variant = {
        "name": "pytorch fp32", **latency, "throughput": throughput,
        "size_mb": sum(f.stat().st_size for f in files) / 2**20, "macro_f1": float(classification_score(ctx.eval_set.labels, pred, len(ctx.labels), "macro_f1")[0]),
        "agreement": 1.0, "peak_memory_mb": memory.peak_mb,
        "working_memory_mb": max(0.0, memory.peak_mb - memory.start_mb),
    }  # fmt: skip
    result: Result = {"split": ctx.eval_set.name, "device": str(device), "variants": [variant], "images_timed": len(timed),
                      "note": "each call decodes, resizes and normalises the image files, then runs the model"}  # fmt: skip
    return result, []


def run_image_suite(
    out_dir: Path, run_dir: Path, cfg: Any, names: list[str], loaded: ImageModel, eval_set: EvalSet,
    validation: EvalSet | None, seed: int,
) -> tuple[dict[str, Any], list[Finding]]:  # fmt: skip
    """The image checks of `names` (the others noted as not for images); writes out_dir/<check>.json.
    Calibration writes run_dir/model/calibration.json, which `tunesmith predict` applies."""
    handle = ModelHandle(image_predictor(loaded), loaded.labels, loaded.model, None, 0, loaded.model_dir)
    ctx = Context(
        run_dir=run_dir, cfg=cfg, handle=handle, eval_set=eval_set, validation=validation, seed=seed
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"split": eval_set.name, "n": len(eval_set), "checks": {}}
    findings: list[Finding] = []
    start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        if name not in IMAGE_CHECKS:
            summary["checks"][name] = {
                "skipped": f"not for images: {NOT_FOR_IMAGES.get(name, 'a text check')}"
            }
            continue
        if name == "calibration":
            result, found = check_calibration(ctx)
        elif name == "robustness":
            result, found = check_image_robustness(ctx, loaded)
        else:
            result, found = check_image_latency(ctx, loaded)
        result["seconds"] = time.perf_counter() - t0
        write_json(out_dir / f"{name}.json", result)
        summary["checks"][name] = headline(name, result)
        findings += found
    summary["seconds"] = time.perf_counter() - start
    summary["findings"] = [f.id for f in findings]
    return summary, findings


def _image_file_set(data: Path, path_column: str | None, label: str, label2id: dict[str, int]) -> EvalSet:
    """--data for an image run: a folder of class subfolders or a CSV of paths; every image decoded first."""
    from tunesmith.config.schema import DataConfig
    from tunesmith.data.images import read_image_tables
    from tunesmith.data.messages import describe_rows, list_names
    from tunesmith.data.types import LABEL, TEXT

    if not data.exists():
        raise UserError(f"--data {data}: no such file or folder; check the path.")
    table = read_image_tables(DataConfig(train=str(data), image=path_column, label=label))["train"]
    values = [str(v) for v in table.frame[LABEL]]
    unknown = sorted({v for v in values if v not in label2id})
    if unknown:
        rows = [i for i, v in enumerate(values) if v not in label2id]
        raise UserError(f"--data {data}: labels the model does not know: {list_names(unknown)} "
                        f"({describe_rows(rows)}); the model knows {list_names(list(label2id))}: fix or drop "
                        "those images.")  # fmt: skip
    return EvalSet(data.name, list(table.frame[TEXT]), np.asarray([label2id[v] for v in values], dtype=np.int64),
                   list(range(len(values))))  # fmt: skip


def evaluate_image_run(
    run_dir: Path, recipe: Any, *, data: Path | None, text: str | None, label: str | None,
    only: list[str] | None, out: Path | None,
) -> tuple[dict[str, Any], list[Finding], Path]:  # fmt: skip
    """`tunesmith evaluate RUN_DIR` on an image run: its test (else validation) images, or --data."""
    import shutil

    from tunesmith.evaluation.suite.command import _check_out, _labels, _own_split, _update_run, publish
    from tunesmith.evaluation.suite.context import sample
    from tunesmith.evaluation.suite.suite import resolve_checks
    from tunesmith.predict import find_model_dir
    from tunesmith.predict_images import load_image_run

    names = resolve_checks(only, "--only") if only else resolve_checks(recipe.eval.suite)
    target = (out or run_dir / "evaluation").expanduser()
    if out is not None:  # the run's own evaluation/ also holds images.json (the heatmaps)
        _check_out(target, run_dir)
    labels = _labels(run_dir)
    label2id = {name: i for i, name in enumerate(labels)}
    seed = recipe.train.seed
    if data is not None:
        eval_set = _image_file_set(data, text or recipe.data.image, label or recipe.data.label, label2id)
    else:
        own = _own_split(run_dir, "test", label2id) or _own_split(run_dir, "validation", label2id)
        if own is None:
            raise UserError(f"RUN_DIR {run_dir} has no predictions/test.jsonl or validation.jsonl; pass --data "
                            "FOLDER (class subfolders) or --data FILE.csv to evaluate labelled images.")  # fmt: skip
        eval_set = own
    missing = [p for p in eval_set.texts if not Path(p).is_file()]
    if missing:
        raise UserError(f"RUN_DIR {run_dir}: {len(missing)} evaluation image(s) moved or deleted since the run "
                        f"(first: {missing[0]}); pass --data with the images as they are now.")  # fmt: skip
    eval_set = sample(eval_set, recipe.eval.max_examples, seed)
    validation = _own_split(run_dir, "validation", label2id)
    if validation is not None and not all(Path(p).is_file() for p in validation.texts):
        validation = None  # calibration then reports the scores without fitting a temperature
    loaded = load_image_run(find_model_dir(run_dir))
    in_run = out is None
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if not in_run:
        (tmp / "model").mkdir(parents=True)  # calibration writes here; the run's model/ stays as it is
    summary, findings = run_image_suite(tmp, run_dir if in_run else tmp, recipe.eval, names, loaded, eval_set,
                                        validation, seed)  # fmt: skip
    publish(tmp, target, summary, findings)
    if in_run:
        _update_run(run_dir, summary, findings)
    return summary, findings, target
