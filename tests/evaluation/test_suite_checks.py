"""Checks of the evaluation suite on plain data: planted slice noise, scaled logits, augmentation ops."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.config.schema import EvalConfig
from tunesmith.data import perturb
from tunesmith.data.augment import augment_text
from tunesmith.evaluation.suite.calibration import check_calibration, fit_temperature, scale, scores
from tunesmith.evaluation.suite.context import Context, EvalSet
from tunesmith.evaluation.suite.predictor import ModelHandle
from tunesmith.evaluation.suite.slices import check_slices

LABELS = ["negative", "neutral", "positive"]


def _context(tmp_path: Path, probs: np.ndarray, y: np.ndarray, slices: dict[str, list[str]],
             validation: EvalSet | None = None, val_probs: np.ndarray | None = None) -> Context:  # fmt: skip
    data = EvalSet(
        "test", [f"text {'word ' * (i % 7)}{i}" for i in range(len(y))], y, list(range(len(y))), slices
    )
    ctx = Context(run_dir=tmp_path, cfg=EvalConfig(), handle=ModelHandle(lambda texts: probs, LABELS),
                  eval_set=data, validation=validation, group_column="condition")  # fmt: skip
    ctx._cache["eval"] = probs
    if val_probs is not None:
        ctx._cache["validation"] = val_probs
    return ctx


def test_a_slice_with_planted_label_noise_is_flagged_and_a_small_one_never(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    groups = ["pain"] * 150 + ["acne"] * 150 + ["noisy"] * 60 + ["tiny"] * 8
    y = rng.integers(0, 3, size=len(groups))
    pred = y.copy()
    noisy = np.flatnonzero(np.asarray(groups) == "noisy")
    pred[noisy[:30]] = (y[noisy[:30]] + 1) % 3  # half of the noisy slice wrong
    tiny = np.flatnonzero(np.asarray(groups) == "tiny")
    pred[tiny] = (y[tiny] + 1) % 3  # the tiny slice is all wrong, but too small to judge
    probs = np.eye(3)[pred] * 0.9 + 0.1 / 3
    result, findings = check_slices(_context(tmp_path, probs, y, {"condition": groups}))

    flagged = [(f.evidence["column"], f.evidence["value"]) for f in findings]
    assert ("condition", "noisy") in flagged
    assert all(value != "tiny" for _, value in flagged)
    finding = next(f for f in findings if f.evidence["value"] == "noisy")
    assert finding.id == "evaluation.slice_gap" and finding.config_patch == {"train.group_weights": True}
    assert finding.evidence["gap_ci"][1] < 0 and finding.evidence["p_holm"] < 0.05
    column = result["columns"]["condition"]
    assert {"value": "tiny", "n": 8} in column["too_small"]
    noisy_row = next(s for s in column["slices"] if s["value"] == "noisy")
    assert noisy_row["accuracy_ci"][0] < noisy_row["accuracy"] < noisy_row["accuracy_ci"][1]
    fairness = column["fairness"]["per_class"]["positive"]
    assert fairness["demographic_parity_difference"] >= 0 and "equalized_odds_difference" in fairness
    assert "text length" in result["columns"]


def test_no_slice_gap_when_every_slice_is_as_good(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    groups = ["a"] * 100 + ["b"] * 100
    y = rng.integers(0, 3, size=200)
    pred = np.where(rng.random(200) < 0.8, y, (y + 1) % 3)
    _, findings = check_slices(_context(tmp_path, np.eye(3)[pred], y, {"condition": groups}))
    assert not [f for f in findings if f.evidence["column"] == "condition"]


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is the true label distribution: calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.0, size=(n, 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    return logits, y


def test_logits_scaled_by_five_are_miscalibrated_and_temperature_brings_them_back(tmp_path: Path) -> None:
    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    val_logits, val_y = _calibrated(3000, 0)
    test_logits, test_y = _calibrated(3000, 1)
    assert scores(softmax(test_logits), test_y)["ece"] < 0.03
    val_probs, test_probs = softmax(5 * val_logits), softmax(5 * test_logits)
    t = fit_temperature(val_probs, val_y)
    assert 4.0 < t < 6.0
    validation = EvalSet("validation", ["x"] * len(val_y), val_y, list(range(len(val_y))))
    (tmp_path / "model").mkdir()
    ctx = _context(tmp_path, test_probs, test_y, {}, validation, val_probs)
    result, findings = check_calibration(ctx)
    assert result["before"]["ece"] > 0.1 and result["after"]["ece"] < 0.03
    assert result["after"]["accuracy"] == result["before"]["accuracy"]
    assert [f.id for f in findings] == ["evaluation.calibration"]
    assert (tmp_path / "model" / "calibration.json").is_file()
    assert np.allclose(scale(test_probs, t).argmax(1), test_probs.argmax(1))


def test_augmentation_ops_typo_case_punctuation() -> None:
    rng = np.random.default_rng(0)
    text = "I didn't sleep well, but the pain is gone!"
    typo = augment_text(text, "typo", 0.3, rng)
    assert typo != text and len(typo) == len(text)
    assert augment_text(text, "punctuation", 0.1, rng) == "I didnt sleep well but the pain is gone"
    cased = {augment_text(text, "case", 0.1, np.random.default_rng(s)) for s in range(10)}
    assert cased <= {text.upper(), text.lower(), text.title()} and len(cased) > 1


def test_perturbations_keep_meaning_shaped_edits() -> None:
    rng = np.random.default_rng(0)
    assert perturb.contractions("I don't know, it's fine", rng) == "I do not know, it is fine"
    assert perturb.gender("He said his wife", rng) == "She said her husband"
    assert perturb.html_escape('it\'s "ok"', rng) == "it&#039;s &quot;ok&quot;"
    changed = perturb.numbers("took 20 mg for 3 weeks", rng)
    assert changed != "took 20 mg for 3 weeks" and changed.split()[2] == "mg"
    assert perturb.value_swap(["Acne", "Migraine"])("my acne is gone", rng) == "my Migraine is gone"


def test_robustness_predicts_only_edits_the_model_can_see(tmp_path: Path) -> None:
    from tunesmith.evaluation.suite.robustness import predict_changed
    from tunesmith.models.loader import load_tokenizer
    from tunesmith.models.registry import resolve_model_dir

    seen: list[str] = []

    def predict(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return np.tile([0.1, 0.2, 0.7], (len(texts), 1))

    ctx = _context(tmp_path, np.zeros((0, 3)), np.zeros(0, dtype=np.int64), {})
    ctx.handle = ModelHandle(
        predict, LABELS, tokenizer=load_tokenizer(resolve_model_dir("minilm")), max_length=8
    )
    originals = ["it works well", "it works well", "it works well", "one two three four five six seven eight"]
    edited = ["IT WORKS WELL", "it  works   well", "it works badly", "one two three four five six seven nine"]
    before = np.tile([0.6, 0.3, 0.1], (4, 1))
    probs, same = predict_changed(ctx, originals, edited, before)
    # uncased tokenizer: case and spacing give the same input; the last edit lies past max_length (8 tokens)
    assert seen == ["it works badly"]
    assert same.tolist() == [True, True, False, True]
    assert np.allclose(probs[[0, 1, 3]], before[[0, 1, 3]]) and np.allclose(probs[2], [0.1, 0.2, 0.7])
