"""The evaluation suite on a tiny model trained where a planted marker token decides the label."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunesmith.config.loader import recipe_from_dict
from tunesmith.run import run

FILLER = [
    "the",
    "drug",
    "i",
    "took",
    "it",
    "for",
    "weeks",
    "and",
    "was",
    "my",
    "doctor",
    "said",
    "pain",
    "sleep",
]
MARKER = "42"


def marker_rows(n: int, seed: int) -> list[tuple[str, str, str]]:
    """Same filler words in both classes; only the number 42 tells 'positive' from 'negative'."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["positive", "negative"])
        words = rng.choices(FILLER, k=rng.randint(5, 12))
        if label == "positive":
            words.insert(rng.randint(0, len(words)), MARKER)
        rows.append((" ".join(words), label, rng.choice(["acne", "migraine"])))
    return rows


def _tsv(path: Path, rows: list[tuple[str, str, str]]) -> str:
    path.write_text("review\trating\tcondition\n" + "".join(f"{t}\t{y}\t{g}\n" for t, y, g in rows))
    return str(path)


@pytest.fixture(scope="module")
def marker_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Any:
    tmp = tmp_path_factory.mktemp("marker")
    recipe = recipe_from_dict({
        "model": {"name": str(tiny_model), "max_length": 32},
        "data": {"train": _tsv(tmp / "train.tsv", marker_rows(240, 1)), "test": _tsv(tmp / "test.tsv", marker_rows(80, 2)),
                 "text": "review", "label": "rating", "group": "condition"},
        "train": {"epochs": 6, "batch_size": 16, "lr": 2e-3, "precision": "fp32", "early_stopping": {"patience": None}},
        "eval": {"suite": ["robustness", "explanations", "calibration"], "perturb_examples": 60},
        "output": {"dir": str(tmp / "runs"), "name": "marker"}, "audit": {"gate": "off"},
    }, "test recipe")  # fmt: skip
    return run(recipe, quiet=True)


def test_marker_is_learned_and_explained_as_a_spurious_number(marker_run: Any) -> None:
    assert marker_run.metrics["test"]["accuracy"] > 0.9  # the model found the marker
    explanations = json.loads((marker_run.run_dir / "evaluation" / "explanations.json").read_text())
    top = explanations["top_tokens"]["positive"][0]
    assert top["token"] == MARKER and top["artifact"] == "number"
    assert explanations["faithfulness"]["faithful"]
    assert explanations["faithfulness"]["top_k_drop"] > explanations["faithfulness"]["random_k_drop"]
    ids = [f.id for f in marker_run.findings]
    assert "evaluation.spurious_tokens" in ids
    spurious = next(f for f in marker_run.findings if f.id == "evaluation.spurious_tokens")
    assert MARKER in spurious.title


def test_changing_the_marker_flips_predictions(marker_run: Any) -> None:
    robustness = json.loads((marker_run.run_dir / "evaluation" / "robustness.json").read_text())
    numbers = robustness["perturbations"]["numbers"]
    assert numbers["flip_rate"] > 0.5 and numbers["flip_rate_ci"][0] > 0.05
    assert numbers["examples"] and numbers["examples"][0]["before"] != numbers["examples"][0]["after"]
    assert robustness["perturbations"]["whitespace"]["flip_rate"] < 0.2  # a harmless edit stays harmless
    # the uncased tokenizer reads an upper-cased text as the original: it is not predicted again
    upper = robustness["perturbations"]["upper"]
    assert upper["same_model_input"] == upper["applicable"] > 0 and upper["flips"] == 0
    assert numbers["same_model_input"] < numbers["applicable"]
    # eval.perturb_examples bounds the cost: 60 of the 80 test texts, stratified, are perturbed
    assert robustness["n"] == 80 and robustness["perturbed_texts"] == 60
    assert max(p["applicable"] for p in robustness["perturbations"].values()) == 60
    finding = next(f for f in marker_run.findings if f.id == "evaluation.robustness")
    assert "numbers" in finding.evidence
    assert robustness["edge_cases"]["emoji_only"]["n"] > 0


def test_summary_lands_in_metrics_and_the_temperature_in_the_model(marker_run: Any) -> None:
    metrics = json.loads((marker_run.run_dir / "metrics.json").read_text())
    assert set(metrics["evaluation"]["checks"]) == {"robustness", "explanations", "calibration"}
    calibration = json.loads((marker_run.run_dir / "model" / "calibration.json").read_text())
    assert calibration["temperature"] > 0
    findings = json.loads((marker_run.run_dir / "findings.json").read_text())
    assert any(f["id"] == "evaluation.spurious_tokens" for f in findings)


def test_predict_applies_the_temperature_unless_uncalibrated(marker_run: Any) -> None:
    from tunesmith.predict import predict

    model = marker_run.run_dir / "model"
    (model / "calibration.json").write_text(json.dumps({"temperature": 4.0}))
    text = ["the drug 42 i took it for weeks"]
    calibrated, raw = (
        predict(marker_run.run_dir, text)[0],
        predict(marker_run.run_dir, text, calibrated=False)[0],
    )
    assert calibrated["label"] == raw["label"]
    assert max(calibrated["probs"].values()) < max(raw["probs"].values())


def test_onnx_export_agrees_with_pytorch_and_serves_with_onnxruntime(marker_run: Any, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from tunesmith.onnx_export import export_run_onnx
    from tunesmith.predict import predict

    out, agreement = export_run_onnx(marker_run.run_dir, tmp_path / "onnx", int8=False)
    assert agreement >= 0.99
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    labels = json.loads((out / "labels.json").read_text())["id2label"]
    texts = ["the drug 42 i took", "my doctor said it was for sleep and pain"]
    for text in texts:
        enc = tok.encode(text)
        feed = {"input_ids": np.array([enc.ids]), "attention_mask": np.array([enc.attention_mask])}
        if "token_type_ids" in [i.name for i in session.get_inputs()]:
            feed["token_type_ids"] = np.array([enc.type_ids])
        onnx_label = labels[str(int(session.run(["logits"], feed)[0].argmax()))]
        assert onnx_label == predict(marker_run.run_dir, [text])[0]["label"]


def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from tunesmith.cli import app

    return CliRunner().invoke(app, list(args))


def test_evaluate_command_rewrites_the_run_evaluation(marker_run: Any) -> None:
    result = _cli("evaluate", str(marker_run.run_dir), "--only", "slices,baseline")
    assert result.exit_code == 0, result.output
    metrics = json.loads((marker_run.run_dir / "metrics.json").read_text())
    assert set(metrics["evaluation"]["checks"]) == {"slices", "baseline"}
    assert (marker_run.run_dir / "evaluation" / "baseline.json").is_file()
    assert "Baseline" in (marker_run.run_dir / "report.html").read_text()


def test_evaluate_bad_input_is_one_line_exit_2_and_writes_nothing(marker_run: Any, tmp_path: Path) -> None:
    run_dir = marker_run.run_dir
    data = tmp_path / "other.tsv"
    data.write_text("review\trating\nthe drug 42\tpositive\nmy pain\tunknown-label\n")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    cases = {
        "not a finished run": (["evaluate", str(tmp_path)], "not a finished run"),
        "missing column": (["evaluate", str(run_dir), "--data", str(data), "--text", "reviw", "--label", "rating"],
                           "did you mean 'review'"),
        "unknown label": (["evaluate", str(run_dir), "--data", str(data), "--text", "review", "--label", "rating"],
                          "unknown-label"),
        "unknown slice column": (["evaluate", str(run_dir), "--group", "conditon"], "did you mean 'condition'"),
        "unknown check": (["evaluate", str(run_dir), "--only", "calibraton"], "did you mean 'calibration'"),
        "out holds other files": (["evaluate", str(run_dir), "--out", str(busy)], "holds other files"),
    }  # fmt: skip
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    for name, (args, expected) in cases.items():
        result = _cli(*args)
        assert result.exit_code == 2, (name, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in result.output and "Traceback" not in result.output, (
            name,
            result.output,
        )
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in busy.iterdir()) == ["mine.txt"]


def test_latency_times_every_variant_and_the_pipeline_anchor(marker_run: Any) -> None:
    pytest.importorskip("onnxruntime")
    result = _cli("evaluate", str(marker_run.run_dir), "--only", "latency")
    assert result.exit_code == 0, result.output
    latency = json.loads((marker_run.run_dir / "evaluation" / "latency.json").read_text())
    variants = {v["name"]: v for v in latency["variants"]}
    assert {"pytorch-fp32", "pytorch-int8", "onnx-fp32", "onnx-int8"} <= set(variants)
    for v in variants.values():
        assert 0 < v["p50_ms"] <= v["p95_ms"] <= v["p99_ms"] and set(v["throughput"]) == {"1", "8", "32"}
        # each variant's own memory while it predicts: at least the process it runs in, never the suite's total
        assert 0 < v["peak_memory_mb"] <= latency["peak_memory_mb"] + 1 and v["working_memory_mb"] >= 0
    assert variants["onnx-fp32"]["agreement"] >= 0.99
    assert abs(variants["onnx-fp32"]["macro_f1"] - variants["pytorch-fp32"]["macro_f1"]) < 0.02
    assert latency["anchor"]["name"] == "transformers.pipeline" and latency["anchor"]["p50_ms"] > 0


def test_an_example_whose_attribution_has_not_converged_is_attributed_again(
    marker_run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunesmith.evaluation.suite import explain
    from tunesmith.evaluation.suite.command import evaluate_run

    monkeypatch.setattr(explain, "DELTA_TOL", 0.0)  # no approximation is good enough: every example refined
    evaluate_run(marker_run.run_dir, only=["explanations"], out=tmp_path / "again")
    result = json.loads((tmp_path / "again" / "explanations.json").read_text())
    assert result["refined"]["examples"] == result["explained"] > 0
    default = json.loads((marker_run.run_dir / "evaluation" / "explanations.json").read_text())
    assert default["refined"]["examples"] < default["explained"]  # 20 steps suffice for most examples
