"""task: image-classification on a tiny random ResNet (Hugging Face) and generated images."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tunesmith.config.loader import recipe_from_dict
from tunesmith.errors import UserError
from tunesmith.run import run
from tunesmith.training.callbacks.base import Callback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report_browser import LOCAL_SCHEMES, inspect_report, needs_browser  # noqa: E402


def make_tiny_resnet(folder: Path) -> Path:
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=2
    )
    ResNetForImageClassification(config).save_pretrained(folder)
    return folder


def write_images(root: Path, n: int = 12, seed: int = 0) -> Path:
    """Two classes of noise; 'marked' images carry a white 3x3 corner (a planted, learnable marker)."""
    rng = np.random.default_rng(seed)
    for label in ("marked", "plain"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 200, (16, 18, 3), dtype=np.uint8)
            if label == "marked":
                pixels[:3, :3] = 255
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_resnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_resnet(tmp_path_factory.mktemp("tiny-resnet"))


def _recipe(tmp_path: Path, model: Path, train: Path, name: str, **train_cfg: Any) -> dict[str, Any]:
    return {
        "task": "image-classification",
        "model": {"name": str(model), "image_size": 16},
        "data": {"train": str(train), "augment": {"ops": ["flip", "crop", "rotate", "color"]}},
        "train": {"epochs": 2, "batch_size": 4, "lr": 1e-2, "precision": "fp32", "log_every": 1} | train_cfg,
        "output": {"dir": str(tmp_path / "runs"), "name": name},
    }


class StopAt(Callback):
    name = "stop_at"

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, ctx: Any, record: dict[str, Any]) -> None:
        if ctx.step == self.step:
            raise KeyboardInterrupt  # a run killed after the checkpoint of the step before


def test_interrupted_augmented_run_resumes_bit_for_bit(tmp_path: Path, tiny_resnet: Path) -> None:
    train = write_images(tmp_path / "images", n=8)
    quick = {"audit": {"gate": "off"}}
    ref = run(recipe_from_dict(_recipe(tmp_path, tiny_resnet, train, "ref") | quick), quiet=True)
    cut = recipe_from_dict(_recipe(tmp_path, tiny_resnet, train, "cut", checkpoint_every=2) | quick)
    with pytest.raises(KeyboardInterrupt):
        run(cut, quiet=True, extra_callbacks=[StopAt(7)])  # epoch 2 (4 steps an epoch), checkpoint at 6
    resumed = run(cut, resume=True, quiet=True)
    a = load_file(str(ref.run_dir / "model" / "model.safetensors"))
    b = load_file(str(resumed.run_dir / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert resumed.metrics["validation"] == ref.metrics["validation"]


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory: pytest.TempPathFactory, tiny_resnet: Path) -> Any:
    """One epoch of `frozen` at a tiny lr: the head stays near random, so some predictions are wrong."""
    tmp_path = tmp_path_factory.mktemp("frozen")
    train = write_images(tmp_path / "images")
    recipe = _recipe(tmp_path, tiny_resnet, train, "frozen", epochs=1, lr=1e-6) | {"strategy": "frozen"}
    return run(recipe_from_dict(recipe), quiet=True)


def test_frozen_keeps_backbone_weights_and_batchnorm_statistics(frozen_run: Any, tiny_resnet: Path) -> None:
    result = frozen_run
    before = load_file(str(tiny_resnet / "model.safetensors"))
    after = load_file(str(result.run_dir / "model" / "model.safetensors"))
    backbone = [k for k in before if k.startswith("resnet.")]
    assert any("running_mean" in k for k in backbone)
    assert all(before[k].equal(after[k]) for k in backbone)
    assert not after["classifier.1.weight"].equal(before["classifier.1.weight"])  # the head trained


def _bad(tmp_path: Path, case: str, tiny_resnet: Path) -> dict[str, Any]:
    root = tmp_path / case
    recipe = _recipe(tmp_path, tiny_resnet, root, case)
    if case == "no-class-folders":
        root.mkdir()
        Image.new("RGB", (8, 8)).save(root / "a.png")
    elif case == "no-images":
        (root / "cat").mkdir(parents=True)
        (root / "cat" / "notes.txt").write_text("x")
    elif case == "unreadable":
        write_images(root, n=3)
        (root / "plain" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    elif case in ("missing-path", "unseen-label"):
        write_images(root / "img", n=3)
        rows = [f"img/marked/{i}.png,marked" for i in range(3)] + [
            f"img/plain/{i}.png,plain" for i in range(3)
        ]
        (root / "train.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
        recipe["data"]["train"] = str(root / "train.csv")
        if case == "missing-path":
            (root / "train.csv").write_text((root / "train.csv").read_text() + "img/gone.png,plain\n")
        else:
            (root / "val.csv").write_text("path,label\nimg/plain/0.png,striped\n")
            recipe["data"]["validation"] = str(root / "val.csv")
    elif case == "not-image-model":
        write_images(root, n=3)
        from tunesmith.testing import make_tiny_bert

        recipe["model"]["name"] = str(make_tiny_bert(tmp_path / "bert"))
    return recipe


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("no-class-folders", "no class subfolders"),
        ("no-images", "hold no images"),
        ("unreadable", "broken.png cannot be decoded"),
        ("missing-path", "img/gone.png does not exist"),
        ("unseen-label", "never seen in training"),
        ("not-image-model", "not an image classifier"),
    ],
)
def test_bad_image_input_is_one_line_and_no_run_directory(
    tmp_path: Path, tiny_resnet: Path, case: str, says: str
) -> None:
    recipe = recipe_from_dict(_bad(tmp_path, case, tiny_resnet))
    with pytest.raises(UserError, match=says) as error:
        run(recipe, quiet=True)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "runs").exists()


def test_image_doctor_finds_planted_defects(tmp_path: Path) -> None:
    from tunesmith.audit.images import image_audit
    from tunesmith.config.schema import AuditConfig, DataConfig
    from tunesmith.data.images import read_image_tables

    root = write_images(tmp_path / "train", n=8)
    val = write_images(tmp_path / "val", n=2, seed=5)
    Image.open(root / "plain" / "0.png").save(root / "plain" / "copy.bmp")  # same pixels, other format
    Image.open(root / "plain" / "1.png").resize((32, 36)).save(root / "plain" / "big.jpg", quality=95)
    Image.open(root / "plain" / "2.png").convert("L").save(root / "plain" / "grey.tiff")
    Image.open(root / "marked" / "0.png").save(val / "marked" / "leaked.png")
    (root / "plain" / "cut.png").write_bytes((root / "plain" / "3.png").read_bytes()[:60])  # truncated
    tables = read_image_tables(DataConfig(train=str(root), validation=str(val)), strict=False)
    found = {f.id.split(".")[-1]: f for f in image_audit(tables, AuditConfig(label_errors=False)).findings}
    assert {"unreadable_images", "exact_duplicates", "near_duplicates", "leakage", "channel_outliers",
            "size_outliers"} <= set(found)  # fmt: skip
    train = tables["train"].frame
    named = {Path(train["text"].iat[r]).name for r in found["channel_outliers"].rows or []}
    assert named == {"grey.tiff"}
    assert "cut.png" in found["unreadable_images"].evidence["files"][0]
    assert found["leakage"].evidence["exact"] == 1


@needs_browser
def test_report_shows_confidently_wrong_thumbnails_in_chromium(frozen_run: Any) -> None:
    images = json.loads((frozen_run.run_dir / "evaluation" / "images.json").read_text())
    assert images["examples"] and images["examples"][0]["attribution"]
    seen = inspect_report(frozen_run.run_dir / "report.html", checks={
        "thumbnails": "[...document.querySelectorAll('section#images img.thumbnail')]"
                      ".filter(i => i.complete && i.naturalWidth > 0).length",
        "heatmaps": "document.querySelectorAll('section#images img.attribution').length",
    })  # fmt: skip
    assert seen["checks"]["thumbnails"] == len(images["examples"]) == seen["checks"]["heatmaps"]
    assert not [r for r in seen["requests"] if not r.startswith(LOCAL_SCHEMES)]


def test_attribution_points_at_the_planted_marker() -> None:
    from transformers.modeling_outputs import ImageClassifierOutput

    from tunesmith.evaluation.images import attribution_map

    class MarkerModel(torch.nn.Module):  # "marked" iff the top-left 3x3 corner is bright
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, pixel_values: torch.Tensor) -> ImageClassifierOutput:
            corner = pixel_values[:, :, :3, :3].mean((1, 2, 3)) * self.scale
            return ImageClassifierOutput(logits=torch.stack([corner, -corner], dim=1))

    image = torch.rand(3, 16, 16) * 0.2
    image[:, :3, :3] = 1.0
    heat = attribution_map(MarkerModel(), image, target=0)
    assert heat is not None
    assert heat[:3, :3].sum() > 0.99 * heat.sum()


def test_image_augmentations_are_refused_for_text() -> None:
    with pytest.raises(UserError, match=r"data.augment.ops: flip transform images"):
        recipe_from_dict({"data": {"train": "x.csv", "augment": {"ops": ["delete", "flip"]}}})
