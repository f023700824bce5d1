"""The CLI on image data: doctor on a folder / CSV, predict and evaluate on a finished image run, and bad input
ending in one line, exit 2 and nothing written; plus the image robustness check on a model built to flip."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from transformers.modeling_outputs import ImageClassifierOutput
from typer.testing import CliRunner

from tunesmith.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from test_image_classification import make_tiny_resnet, write_images  # noqa: E402

runner = CliRunner()
N = 36  # images per class


def _fails_cleanly(args: list[str], *needles: str) -> str:
    result = runner.invoke(app, args)
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    for needle in needles:
        assert needle in output, f"{needle!r} not in {output!r}"
    return output


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("image-cli")
    model = make_tiny_resnet(tmp / "tiny-resnet")
    images = write_images(tmp / "images", n=N)  # 72 images: 11 held out, enough to fit a temperature
    recipe = {
        "task": "image-classification", "model": {"name": str(model), "image_size": 16},
        "data": {"train": str(images)}, "strategy": "lora",
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-2, "precision": "fp32"},
        "audit": {"gate": "off"}, "eval": {"perturb_examples": 8},
        "output": {"dir": str(tmp / "runs"), "name": "img"},
    }  # fmt: skip
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = runner.invoke(app, ["run", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    return {"run": tmp / "runs" / "img", "images": images, "model": model, "tmp": tmp}


def test_run_ends_with_the_image_suite(image_run: dict[str, Path]) -> None:
    metrics = json.loads((image_run["run"] / "metrics.json").read_text())
    checks = metrics["evaluation"]["checks"]
    assert set(checks["robustness"]["flip_rate"]) == {"gaussian_noise", "blur", "brightness", "rotation"}
    assert checks["latency"]["variants"]["pytorch fp32"]["p50_ms"] > 0
    assert "ece" in checks["calibration"] and "skipped" in checks["baseline"]
    assert (image_run["run"] / "model" / "calibration.json").is_file()
    report = (image_run["run"] / "report.html").read_text()
    assert "gaussian_noise" in report and "pytorch fp32" in report


def test_predict_images_from_a_folder_a_file_and_a_csv(image_run: dict[str, Path]) -> None:
    images = image_run["images"]
    listing = image_run["tmp"] / "list.csv"
    listing.write_text("path\nimages/marked/0.png\nimages/plain/1.png\n")
    args = [
        "predict",
        str(image_run["run"]),
        str(images / "plain"),
        str(images / "marked" / "3.png"),
        str(listing),
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == N + 1 + 2
    assert all(r["label"] in ("marked", "plain") and abs(sum(r["probs"].values()) - 1) < 1e-6 for r in rows)
    assert rows[-2]["text"].endswith("marked/0.png")


def test_predict_bad_images_fail_cleanly(image_run: dict[str, Path]) -> None:
    run, tmp = str(image_run["run"]), image_run["tmp"]
    _fails_cleanly(["predict", run, str(tmp / "nowhere.png")], "nowhere.png does not exist")
    broken = tmp / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _fails_cleanly(["predict", run, str(broken)], "broken.png cannot be decoded")
    listing = tmp / "bad-list.csv"
    listing.write_text("path\nimages/marked/0.png\nimages/gone.png\n")
    _fails_cleanly(["predict", run, str(listing)], "row 2", "images/gone.png does not exist")


def test_evaluate_an_image_run_and_another_folder(image_run: dict[str, Path]) -> None:
    run = image_run["run"]
    result = runner.invoke(app, ["evaluate", str(run), "--only", "robustness,latency"])
    assert result.exit_code == 0, result.output
    robustness = json.loads((run / "evaluation" / "robustness.json").read_text())
    assert robustness["perturbed_images"] == 8 and robustness["perturbations"]["blur"]["applicable"] == 8
    other = write_images(image_run["tmp"] / "other", n=3, seed=9)
    out = image_run["tmp"] / "eval-out"
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(other), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 6 and set(summary["checks"]) >= {"calibration", "robustness", "latency"}


def test_evaluate_bad_image_data_fails_cleanly(image_run: dict[str, Path]) -> None:
    run, tmp = str(image_run["run"]), image_run["tmp"]
    unseen = write_images(tmp / "unseen", n=2)
    (unseen / "plain").rename(unseen / "striped")
    out = tmp / "never"
    _fails_cleanly(["evaluate", run, "--data", str(unseen), "--out", str(out)], "striped", "does not know")
    broken = write_images(tmp / "broken", n=2)
    (broken / "plain" / "bad.png").write_bytes(b"junk")
    _fails_cleanly(["evaluate", run, "--data", str(broken), "--out", str(out)], "bad.png cannot be decoded")
    assert not out.exists()


def test_doctor_on_an_image_folder_names_the_defects(tmp_path: Path, image_run: dict[str, Path]) -> None:
    root = write_images(tmp_path / "train", n=8)
    Image.open(root / "plain" / "0.png").save(root / "plain" / "copy.bmp")
    Image.open(root / "plain" / "2.png").convert("L").save(root / "plain" / "grey.tiff")
    (root / "plain" / "cut.png").write_bytes((root / "plain" / "3.png").read_bytes()[:60])
    out = tmp_path / "audit.json"
    args = ["doctor", str(root), "--task", "image-classification", "--model", str(image_run["model"]),
            "--json", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "cut.png" in result.output
    ids = {f["id"].split(".")[-1] for f in json.loads(out.read_text())["findings"]}
    assert {"unreadable_images", "exact_duplicates", "channel_outliers"} <= ids
    csv = tmp_path / "train.csv"
    csv.write_text(
        "file,kind\n" + "".join(f"train/plain/{i}.png,plain\ntrain/marked/{i}.png,marked\n" for i in range(4))
    )
    result = runner.invoke(app, ["doctor", str(csv), "--task", "image-classification", "--text", "file",
                                 "--label", "kind", "--no-label-errors"])  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("case", ["no-class-folders", "missing-path", "not-image-model", "fix"])
def test_doctor_bad_image_input_fails_cleanly(tmp_path: Path, case: str) -> None:
    root = tmp_path / "data"
    args = ["doctor", str(root), "--task", "image-classification", "--no-label-errors", "--json",
            str(tmp_path / "audit.json")]  # fmt: skip
    if case == "no-class-folders":
        root.mkdir()
        Image.new("RGB", (8, 8)).save(root / "a.png")
        says = ["no class subfolders"]
    elif case == "missing-path":
        write_images(tmp_path / "img", n=2)
        csv = tmp_path / "train.csv"
        csv.write_text("path,label\nimg/plain/0.png,plain\nimg/gone.png,plain\n")
        args[1], says = str(csv), ["row 2", "img/gone.png does not exist"]
    elif case == "not-image-model":
        from tunesmith.testing import make_tiny_bert

        write_images(root, n=2)
        args = [a for a in args if a != "--no-label-errors"] + [
            "--model",
            str(make_tiny_bert(tmp_path / "bert")),
        ]
        says = ["not an image classifier"]
    else:
        write_images(root, n=2)
        args += ["--fix", str(tmp_path / "fixed")]
        says = ["--fix: not available for images"]
    _fails_cleanly(args, *says)
    assert not (tmp_path / "audit.json").exists() and not (tmp_path / "fixed").exists()


class BrightModel(torch.nn.Module):
    """'bright' iff the mean pixel (0..1) is above 0.45: brightness x1.3 flips grey images at 100/255."""

    def __init__(self) -> None:
        super().__init__()
        self.threshold = torch.nn.Parameter(torch.tensor(0.45))

    def forward(self, pixel_values: torch.Tensor) -> ImageClassifierOutput:
        score = (pixel_values.mean((1, 2, 3)) - self.threshold) * 100
        return ImageClassifierOutput(logits=torch.stack([-score, score], dim=1))


def test_image_robustness_counts_flips_per_perturbation(tmp_path: Path) -> None:
    from tunesmith.config.schema import EvalConfig
    from tunesmith.evaluation.image_suite import check_image_robustness
    from tunesmith.evaluation.suite.context import Context, EvalSet
    from tunesmith.evaluation.suite.predictor import ModelHandle
    from tunesmith.models.vision import ImageModelInfo
    from tunesmith.predict_images import ImageModel, image_predictor

    paths = []
    for i in range(6):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((16, 16, 3), 100, dtype=np.uint8)).save(paths[-1])
    loaded = ImageModel(
        BrightModel(), ImageModelInfo(16, (0.0,) * 3, (1.0,) * 3), ["dark", "bright"], tmp_path
    )
    data = EvalSet("test", paths, np.zeros(6, dtype=np.int64), list(range(6)))
    handle = ModelHandle(image_predictor(loaded), loaded.labels, loaded.model)
    ctx = Context(run_dir=tmp_path, cfg=EvalConfig(), handle=handle, eval_set=data)
    result, findings = check_image_robustness(ctx, loaded)
    rates = {k: v["flip_rate"] for k, v in result["perturbations"].items()}
    assert rates == {"gaussian_noise": 0.0, "blur": 0.0, "brightness": 1.0, "rotation": 0.0}
    assert findings and findings[0].config_patch == {"data.augment.ops": ["flip", "crop", "color"]}


def test_predict_on_the_merged_lora_model_matches_the_run(image_run: dict[str, Path]) -> None:
    """model/ holds the LoRA updates folded into a plain ResNet: it predicts what the wrapped model did."""
    run = image_run["run"]
    rows = [json.loads(line) for line in (run / "predictions" / "validation.jsonl").read_text().splitlines()]
    result = runner.invoke(app, ["predict", str(run), *[r["text"] for r in rows], "--json", "--uncalibrated"])
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.output.splitlines()]
    labels = json.loads((run / "model" / "labels.json").read_text())["id2label"]
    for want, have in zip(rows, got, strict=True):
        assert have["label"] == want["pred"]
        assert np.allclose(
            [have["probs"][labels[str(i)]] for i in range(len(labels))], want["probs"], atol=1e-4
        )
