"""Scripted histories map to the expected findings; healthy ones raise no problem."""

from __future__ import annotations

import math
from typing import Any

import pytest
from scripted import LABELS, RECIPE, decaying, healthy_epochs, make_run

from tunesmith.config.schema import Recipe
from tunesmith.diagnosis import RULES, RunData, diagnose_data, rule
from tunesmith.findings import Finding


def ids(findings: list[Finding]) -> list[str]:
    return [f.id for f in findings]


def problems(findings: list[Finding]) -> list[str]:
    return [f.id for f in findings if f.severity != "info"]


def only(findings: list[Finding], rule_id: str) -> Finding:
    matching = [f for f in findings if f.id == rule_id]
    assert len(matching) == 1, ids(findings)
    return matching[0]


def assert_valid_patch(finding: Finding) -> None:
    """A config_patch must apply cleanly to a real recipe: every key exists and every value validates."""
    assert finding.config_patch, finding.id
    recipe: dict[str, Any] = {"data": dict(RECIPE["data"]), "train": {}}
    for dotted, value in finding.config_patch.items():
        node = recipe
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    Recipe.model_validate(recipe)


HEALTHY_MONITOR = {
    "grad_norm/embeddings": [0.3 + 0.05 * math.sin(i) for i in range(30)],
    "grad_norm/block.0": [0.1 + 0.02 * math.sin(i) for i in range(30)],
    "grad_norm/block.1": [0.15 + 0.02 * math.cos(i) for i in range(30)],
    "grad_norm/head": [1.0 + 0.2 * math.sin(i) for i in range(30)],
    "update_ratio/block.0": [1e-3] * 30,
    "update_ratio/head": [5e-3] * 30,
}


def test_healthy_run_raises_no_problem() -> None:
    found = diagnose_data(make_run(epochs=healthy_epochs(3), monitor=HEALTHY_MONITOR))
    assert problems(found) == []


def test_healthy_noisy_run_raises_no_problem() -> None:
    losses = [v + 0.08 * math.sin(i * 2.3) for i, v in enumerate(decaying(40))]
    epochs = healthy_epochs(4)
    epochs[-1]["val_loss"] = epochs[-2]["val_loss"] + 0.03  # within noise: se 0.04
    assert problems(diagnose_data(make_run(losses, epochs, monitor=HEALTHY_MONITOR))) == []


def test_diverging_loss() -> None:
    losses = decaying(12, end=0.7) + [0.9, 1.4, 2.2, 3.5, 5.0, 7.5, 9.0, 9.5]
    found = diagnose_data(make_run(losses, healthy_epochs(2)))
    divergence = only(found, "training.divergence")
    assert divergence.severity == "error"
    assert divergence.evidence["loss_end"] > divergence.evidence["loss_start"]
    assert divergence.config_patch == {"train.lr": 5e-6}  # a 10x cut for a loss that ends far above its start
    assert "training.flat_loss" not in ids(found) and "training.loss_spikes" not in ids(found)
    assert_valid_patch(divergence)


def test_loss_that_blows_up_and_stays_at_chance_is_divergence() -> None:
    losses = [1.1, 4.5, 3.0, 2.6, 2.0, 1.6, 1.3, 1.2, 1.15, 1.12, 1.1, 1.13]
    assert "training.divergence" in ids(diagnose_data(make_run(losses)))


def test_noisy_per_batch_losses_of_imbalanced_data_are_not_divergence() -> None:
    # Logged every step on 85%-majority data: all-majority batches have a low loss, mixed ones a high one.
    # The lowest single batches are luck, not a level the loss reached and left (from a real tiny run).
    losses = [1.1, 1.1, 1.1, 1.09, 1.08, 1.08, 1.07, 1.05, 1.03, 1.0, 1.04, 1.01, 0.98, 0.93, 0.91, 0.89, 0.91,
              0.87, 0.79, 0.94, 0.81, 0.92, 0.91, 0.85, 0.84, 0.73, 0.71, 0.62, 0.68, 0.65, 0.71, 0.86, 0.7, 0.77,
              0.51, 0.85, 0.82, 0.48, 0.48, 0.46, 0.83, 0.33, 0.54, 0.83, 0.54, 0.95, 0.29, 0.51, 0.64, 0.51,
              0.76, 0.64, 0.51, 0.5, 0.52, 0.63, 0.87, 0.86, 0.49, 0.62, 0.75, 0.23, 0.88, 0.24, 0.5, 0.74, 0.76,
              0.88, 0.5, 0.61, 0.36, 0.36, 0.6, 0.36, 0.35, 0.36, 0.88, 0.77]  # fmt: skip
    found = ids(diagnose_data(make_run(losses)))
    assert "training.divergence" not in found and "training.flat_loss" not in found
    assert "training.loss_spikes" not in found
    # The same data at lr 3e-3: mixed batches jump 2-3x above all-majority ones, over and over.
    losses = [1.1, 1.09, 1.08, 1.07, 1.03, 1.03, 1.02, 0.95, 0.88, 0.79, 0.91, 0.82, 0.73, 0.52, 0.47, 0.43, 0.62,
              0.48, 0.2, 0.91, 0.47, 0.97, 0.97, 0.79, 0.81, 0.46, 0.44, 0.29, 0.45, 0.46, 0.62, 0.97, 0.62, 0.8,
              0.31, 0.92, 0.92, 0.33, 0.36, 0.36, 0.86, 0.2, 0.47, 0.86, 0.5, 1.06, 0.19, 0.48, 0.61, 0.47, 0.77,
              0.64, 0.48, 0.48, 0.5, 0.6, 0.91, 0.92, 0.45, 0.62, 0.76, 0.18, 0.88, 0.2, 0.49, 0.76, 0.74, 0.87,
              0.46, 0.6, 0.34, 0.32, 0.56, 0.33, 0.31, 0.34, 0.86, 0.75]  # fmt: skip
    assert problems(diagnose_data(make_run(losses))) == []


def test_loss_spikes_without_divergence() -> None:
    losses = decaying(30)
    losses[12] = losses[11] * 3
    losses[20] = losses[19] * 4
    spikes = only(diagnose_data(make_run(losses)), "training.loss_spikes")
    assert spikes.evidence["steps"] == [130, 210]
    assert spikes.config_patch == {"train.lr": pytest.approx(1.7e-5)}


def test_overfitting_from_epoch_3() -> None:
    epochs = [
        {"train_loss": 1.0, "val_loss": 0.90, "val_loss_se": 0.02},
        {"train_loss": 0.7, "val_loss": 0.70, "val_loss_se": 0.02},
        {"train_loss": 0.4, "val_loss": 0.78, "val_loss_se": 0.03},
        {"train_loss": 0.2, "val_loss": 0.90, "val_loss_se": 0.03},
        {"train_loss": 0.1, "val_loss": 1.05, "val_loss_se": 0.04},
    ]
    found = only(diagnose_data(make_run(epochs=epochs)), "training.overfitting")
    assert found.title.startswith("Overfitting from epoch 3")
    assert found.evidence["best_val_loss_epoch"] == 2
    assert found.evidence["epochs_rising"] == 3
    assert found.evidence["rise_in_se"] > 2
    assert found.config_patch == {"train.epochs": 2, "train.weight_decay": 0.1}
    assert_valid_patch(found)


def test_overfitting_cuts_training_at_the_kept_epoch_when_the_metric_kept_improving() -> None:
    # The demo run's shape: validation loss lowest at epoch 2, but macro-F1 (which picks the weights kept)
    # best at epoch 4 of 6. Cutting at epoch 2 would throw away what epochs 3-4 gained.
    losses = [0.87, 0.84, 0.91, 1.08, 1.33, 1.43]
    f1s = [0.26, 0.38, 0.38, 0.43, 0.40, 0.41]
    epochs = [
        {"train_loss": 0.9 - 0.15 * i, "val_loss": loss, "val_loss_se": 0.03, "val_macro_f1": f1}
        for i, (loss, f1) in enumerate(zip(losses, f1s, strict=True))
    ]
    run = make_run(epochs=epochs)
    found = only(diagnose_data(run), "training.overfitting")
    assert found.evidence["best_val_loss_epoch"] == 2 and found.evidence["kept_epoch_by_val_macro_f1"] == 4
    # regularise, and train 1.5x longer: a regularised model fits more slowly
    assert found.config_patch == {"train.epochs": 9, "train.weight_decay": 0.1}
    assert "still improved until epoch 4" in found.recommendation and "9 epochs" in found.recommendation
    assert_valid_patch(found)
    # early stopping ended a run planned for 20 epochs after 6: longer means longer than planned
    planned = make_run(epochs=epochs, recipe={"train": {"epochs": 20}})
    assert only(diagnose_data(planned), "training.overfitting").config_patch == {
        "train.epochs": 30, "train.weight_decay": 0.1}  # fmt: skip
    # nothing left to regularise with (weight decay and dropout at their highest): cut at the kept epoch
    run.recipe["train"]["weight_decay"] = 0.1
    run.recipe["model"] = {"name": "minilm", "dropout": 0.3}
    found = only(diagnose_data(run), "training.overfitting")
    assert found.config_patch == {"train.epochs": 4}
    # the classic case (the metric best where the loss is): cut at the loss minimum and regularise
    for e, f1 in zip(epochs, [0.26, 0.45, 0.40, 0.38, 0.37, 0.36], strict=True):
        e["val_macro_f1"] = f1
    found = only(diagnose_data(make_run(epochs=epochs)), "training.overfitting")
    assert found.config_patch == {"train.epochs": 2, "train.weight_decay": 0.1}


def test_rising_validation_loss_within_noise_is_not_overfitting() -> None:
    epochs = [
        {"train_loss": 1.0, "val_loss": 0.90, "val_loss_se": 0.2},
        {"train_loss": 0.7, "val_loss": 0.70, "val_loss_se": 0.2},
        {"train_loss": 0.4, "val_loss": 0.78, "val_loss_se": 0.2},
        {"train_loss": 0.2, "val_loss": 0.90, "val_loss_se": 0.2},
    ]
    assert "training.overfitting" not in ids(diagnose_data(make_run(epochs=epochs)))


def _paired(epochs: list[dict[str, Any]], ref_epoch: int, paired_se: float) -> list[dict[str, Any]]:
    epochs[-1].update(val_loss_ref_epoch=ref_epoch, val_loss_paired_se=paired_se)
    return epochs


def test_overfitting_judged_against_the_paired_noise() -> None:
    # Per-example losses spread widely (large se of each mean), but the rise is consistent across the same
    # examples (small paired se): that is overfitting.
    epochs = [
        {"train_loss": 1.0, "val_loss": 0.90, "val_loss_se": 0.3},
        {"train_loss": 0.6, "val_loss": 0.70, "val_loss_se": 0.3},
        {"train_loss": 0.3, "val_loss": 0.85, "val_loss_se": 0.3},
        {"train_loss": 0.1, "val_loss": 1.00, "val_loss_se": 0.3},
    ]
    found = only(diagnose_data(make_run(epochs=_paired(epochs, 2, 0.05))), "training.overfitting")
    assert found.evidence["noise_from"] == "paired per-example differences"
    assert found.evidence["rise_in_se"] == pytest.approx(6.0)
    assert found.config_patch == {"train.epochs": 2, "train.weight_decay": 0.1}


def test_rise_within_the_paired_noise_is_not_overfitting() -> None:
    epochs = [
        {"train_loss": 1.0, "val_loss": 0.90, "val_loss_se": 0.01},
        {"train_loss": 0.6, "val_loss": 0.70, "val_loss_se": 0.01},
        {"train_loss": 0.3, "val_loss": 0.75, "val_loss_se": 0.01},
        {"train_loss": 0.1, "val_loss": 0.80, "val_loss_se": 0.01},
    ]
    assert "training.overfitting" in ids(diagnose_data(make_run(epochs=[dict(e) for e in epochs])))
    found = diagnose_data(make_run(epochs=_paired(epochs, 2, 0.08)))
    assert "training.overfitting" not in ids(found)


def test_one_rising_epoch_is_not_overfitting() -> None:
    epochs = healthy_epochs(3)
    epochs[-1]["val_loss"] = 1.5
    assert "training.overfitting" not in ids(diagnose_data(make_run(epochs=epochs)))


def test_flat_loss_recommends_a_higher_learning_rate() -> None:
    losses = [1.0986 + 0.002 * math.sin(i) for i in range(30)]
    found = diagnose_data(make_run(losses, recipe={"train": {"lr": 1e-7}}))
    flat = only(found, "training.flat_loss")
    assert flat.title == "The training loss is flat at chance level"
    assert flat.config_patch == {"train.lr": 1e-6}
    assert_valid_patch(flat)


def test_flat_loss_with_dead_layers_recommends_a_lower_learning_rate() -> None:
    losses = [1.12 + 0.05 * math.sin(i) for i in range(30)]
    monitor = {
        "grad_norm/embeddings": [0.4, 0.1, 0.07, 24.0] + [1e-5] * 26,
        "grad_norm/head": [0.7, 0.4, 0.8] + [1.5] * 27,
    }
    found = diagnose_data(make_run(losses, monitor=monitor, recipe={"train": {"lr": 0.05}}))
    assert only(found, "training.flat_loss").config_patch == {"train.lr": 0.005}
    assert only(found, "training.vanishing_gradients").config_patch == {"train.lr": 0.005}
    assert "training.exploding_gradients" in ids(found)


def test_still_improving_recommends_more_epochs() -> None:
    epochs = [
        {"train_loss": 1.0, "val_loss": 1.0, "val_loss_se": 0.02, "val_macro_f1": 0.3, "train_accuracy": 0.5},
        {
            "train_loss": 0.8,
            "val_loss": 0.85,
            "val_loss_se": 0.02,
            "val_macro_f1": 0.4,
            "train_accuracy": 0.6,
        },
        {"train_loss": 0.6, "val_loss": 0.7, "val_loss_se": 0.02, "val_macro_f1": 0.5, "train_accuracy": 0.7},
    ]
    found = only(
        diagnose_data(make_run(epochs=epochs, recipe={"train": {"epochs": 3}})), "training.underfitting"
    )
    assert found.severity == "warning" and found.config_patch == {"train.epochs": 6}


def test_collapsed_predictions() -> None:
    confusion = [[0, 0, 20], [0, 0, 15], [0, 1, 64]]
    found = diagnose_data(make_run(losses=decaying(30, end=0.85), confusion=confusion))
    collapsed = only(found, "training.collapsed_predictions")
    assert collapsed.severity == "error"
    assert collapsed.evidence["predicted_class"] == "positive"
    assert collapsed.evidence["predicted_share"] == pytest.approx(0.99)
    assert collapsed.evidence["true_share"] == pytest.approx(0.65)
    assert collapsed.config_patch == {"train.class_weights": True, "train.lr": 1.5e-4}
    assert_valid_patch(collapsed)


def test_collapse_with_class_weights_on_and_a_falling_loss_raises_lr() -> None:
    confusion = [[0, 0, 20], [0, 0, 15], [0, 0, 65]]
    run = make_run(
        losses=decaying(30, end=0.3), confusion=confusion, recipe={"train": {"class_weights": True}}
    )
    assert only(diagnose_data(run), "training.collapsed_predictions").config_patch == {"train.lr": 1.5e-4}


def test_collapse_with_a_flat_loss_raises_lr_instead_of_weighting_classes() -> None:
    confusion = [[0, 0, 20], [0, 0, 15], [0, 0, 65]]
    losses = [1.0986 + 0.002 * math.sin(i) for i in range(30)]
    found = diagnose_data(make_run(losses, confusion=confusion, recipe={"train": {"lr": 1e-7}}))
    collapsed = only(found, "training.collapsed_predictions")
    assert collapsed.config_patch == {"train.lr": 1e-6}  # agrees with the flat-loss finding
    assert only(found, "training.flat_loss").config_patch == {"train.lr": 1e-6}
    assert "train.lr" in collapsed.recommendation


def test_majority_share_matching_the_data_is_not_collapse() -> None:
    confusion = [[3, 0, 2], [0, 2, 1], [1, 0, 91]]
    assert "training.collapsed_predictions" not in ids(diagnose_data(make_run(confusion=confusion)))


def test_zero_recall_class() -> None:
    confusion = [[40, 0, 10], [12, 0, 28], [5, 0, 55]]
    predictions = [
        {
            "row": i,
            "text": "t",
            "label": "neutral",
            "pred": "positive",
            "probs": [0.1, 0.2, 0.7],
            "group": None,
        }
        for i in range(3)
    ] + [
        {
            "row": 9,
            "text": "t",
            "label": "negative",
            "pred": "negative",
            "probs": [0.8, 0.1, 0.1],
            "group": None,
        }
    ]
    found = diagnose_data(make_run(confusion=confusion, predictions=predictions))
    zero = only(found, "training.zero_recall")
    assert zero.evidence["classes"] == ["neutral"]
    assert zero.evidence["support"] == {"neutral": 40}
    assert zero.rows == [0, 1, 2]
    assert zero.config_patch == {"train.class_weights": True}
    assert "training.collapsed_predictions" not in ids(found)


@pytest.mark.parametrize(
    ("event", "severity"), [("nan_rollback", "warning"), ("nan_skip", "warning"), ("nan_stop", "error")]
)
def test_nan_events(event: str, severity: str) -> None:
    events = [{"step": 42, "event": event, "message": "loss is nan at step 42"}]
    found = only(diagnose_data(make_run(events=events)), "training.nonfinite")
    assert found.severity == severity
    assert found.evidence["events"] == {event: 1} and found.evidence["first_step"] == 42
    assert found.config_patch == {"train.lr": pytest.approx(1.7e-5)}


def test_nan_loss_under_fp16_recommends_bf16() -> None:
    losses = decaying(10) + [float("nan")]
    found = only(diagnose_data(make_run(losses, metrics={"precision": "fp16"})), "training.nonfinite")
    assert found.config_patch == {"train.precision": "bf16"}
    assert_valid_patch(found)


def test_exploding_layer() -> None:
    monitor = dict(HEALTHY_MONITOR)
    monitor["grad_norm/block.1"] = [0.15 * 1.3**i for i in range(30)]
    found = only(diagnose_data(make_run(monitor=monitor)), "training.exploding_gradients")
    assert list(found.evidence["layers"]) == ["block.1"]
    assert found.evidence["layers"]["block.1"]["growth"] > 10
    assert_valid_patch(found)


def test_nonfinite_gradient_is_an_error() -> None:
    monitor = dict(HEALTHY_MONITOR)
    monitor["grad_norm/head"] = [1.0] * 10 + [float("inf")] + [1.0] * 19
    found = only(diagnose_data(make_run(monitor=monitor)), "training.exploding_gradients")
    assert found.severity == "error" and found.evidence["layers"] == {"head": {"first_nonfinite_step": 110}}


def test_vanishing_layer_from_the_start() -> None:
    monitor = dict(HEALTHY_MONITOR)
    monitor["grad_norm/embeddings"] = [2e-5] * 30
    found = only(diagnose_data(make_run(monitor=monitor)), "training.vanishing_gradients")
    assert list(found.evidence["layers"]) == ["embeddings"]
    assert found.config_patch == {"train.lr": 1.5e-4}


def test_update_ratio_too_high() -> None:
    monitor = dict(HEALTHY_MONITOR, **{"update_ratio/block.0": [0.08] * 30})
    found = only(diagnose_data(make_run(monitor=monitor)), "training.update_ratio_high")
    assert found.config_patch == {"train.lr": pytest.approx(1.7e-5)}


def test_update_ratio_too_low() -> None:
    monitor = dict(HEALTHY_MONITOR, **{"update_ratio/block.0": [1e-7] * 30})
    found = only(diagnose_data(make_run(monitor=monitor)), "training.update_ratio_low")
    assert found.severity == "info" and found.config_patch == {"train.lr": 5e-4}


def test_generalization_gap_inside_the_validation_noise_is_not_reported() -> None:
    epochs = healthy_epochs(3)
    epochs[-1].update(train_macro_f1=0.98, val_macro_f1=0.6)
    confusion = [[2, 0, 0], [0, 1, 1], [0, 0, 2]]  # 6 validation examples: a 0.38 gap is noise
    assert "training.generalization_gap" not in ids(
        diagnose_data(make_run(epochs=epochs, confusion=confusion))
    )


def test_generalization_gap() -> None:
    epochs = healthy_epochs(3)
    epochs[-1].update(train_macro_f1=0.98, val_macro_f1=0.6)
    found = only(diagnose_data(make_run(epochs=epochs)), "training.generalization_gap")
    assert found.evidence["gap"] == pytest.approx(0.38)


def test_early_stopping_is_info() -> None:
    events = [{"step": 300, "event": "early_stop", "message": "no improvement in macro_f1 for 2 epochs"}]
    run = make_run(
        epochs=healthy_epochs(3),
        events=events,
        metrics={"stop_reason": "early stopping: no improvement in macro_f1 for 2 epochs", "best_epoch": 1},
    )
    found = only(diagnose_data(run), "training.early_stopping")
    assert found.severity == "info" and found.config_patch is None
    assert found.evidence["best_epoch"] == 1 and found.evidence["epochs_planned"] == 5


def test_every_finding_is_well_formed_and_sorted() -> None:
    losses = decaying(12, end=0.7) + [0.9, 1.4, 2.2, 3.5, 5.0, 7.5, 9.0, 9.5]
    events = [{"step": 42, "event": "nan_stop", "message": "nan"}]
    found = diagnose_data(make_run(losses, confusion=[[0, 0, 20], [0, 0, 15], [0, 0, 65]], events=events))
    # not an empty loop: this run is broken four ways, and each rule says so
    assert ids(found) == ["training.nonfinite", "training.divergence", "training.collapsed_predictions",
                          "training.zero_recall"]  # fmt: skip
    order = {"error": 0, "warning": 1, "info": 2}
    assert [order[f.severity] for f in found] == sorted(order[f.severity] for f in found)
    for f in found:
        assert f.stage == "training" and f.id.startswith("training.") and f.recommendation and f.evidence
        if f.config_patch:
            assert_valid_patch(f)
        Finding.from_dict(f.to_dict())


def test_registry_rejects_duplicates_and_runs_a_subset() -> None:
    assert {"overfitting", "divergence", "collapsed_predictions", "nonfinite", "zero_recall"} <= set(RULES)
    with pytest.raises(ValueError, match="registered twice"):
        rule("overfitting")(lambda data: [])
    found = diagnose_data(make_run(confusion=[[0, 0, 20], [0, 0, 15], [0, 0, 65]]), rules=["zero_recall"])
    assert ids(found) == ["training.zero_recall"]
    assert LABELS


def test_overfitting_recommends_more_dropout_for_a_recipe_with_a_model_section() -> None:
    epochs = [
        {"train_loss": 1.0, "val_loss": 0.90, "val_loss_se": 0.02},
        {"train_loss": 0.7, "val_loss": 0.70, "val_loss_se": 0.02},
        {"train_loss": 0.4, "val_loss": 0.78, "val_loss_se": 0.03},
        {"train_loss": 0.2, "val_loss": 0.90, "val_loss_se": 0.03},
        {"train_loss": 0.1, "val_loss": 1.05, "val_loss_se": 0.04},
    ]
    for dropout, expected in ((None, 0.2), (0.2, 0.3), (0.3, None)):
        run = make_run(epochs=epochs)
        run.recipe["model"] = {"name": "minilm", "dropout": dropout}  # as config.yaml records it
        found = only(diagnose_data(run), "training.overfitting")
        assert found.config_patch is not None
        assert found.config_patch.get("model.dropout") == expected
        assert_valid_patch(found)


def _barely_fit_run(probs: list[float], train_losses: list[float], class_weights: bool = False) -> RunData:
    """A run whose training loss ends near a constant guess's (ln 3 weighted; H(prior) = 1.085 unweighted)."""
    epochs = [
        {"train_loss": loss, "val_loss": 1.08 - 0.02 * i, "val_loss_se": 0.01, "val_macro_f1": 0.3}
        for i, loss in enumerate(train_losses)
    ]
    rows = [
        {"row": i, "text": "t", "label": "positive", "pred": "positive", "probs": probs} for i in range(20)
    ]
    recipe = {"train": {"epochs": 3, "class_weights": class_weights}}
    return make_run(decaying(30, end=1.0), epochs, recipe=recipe, predictions=rows)


def test_barely_fit_recommends_a_higher_lr_and_more_epochs() -> None:
    run = _barely_fit_run([0.31, 0.33, 0.36], [1.10, 1.06, 1.02], class_weights=True)
    found = only(diagnose_data(run), "training.barely_fit")
    assert found.evidence["constant_guess_loss"] == pytest.approx(math.log(3), abs=1e-4)
    assert found.evidence["share_of_gap_closed"] == pytest.approx(
        (math.log(3) - 1.02) / math.log(3), abs=1e-3
    )
    assert found.config_patch == {"train.lr": 1.5e-4, "train.epochs": 6}
    assert_valid_patch(found)


def test_barely_fit_uses_the_class_prior_without_class_weights() -> None:
    # healthy confusion support 50/40/60: a loss of 1.02 is under ln 3 but close to H(prior) = 1.085
    run = _barely_fit_run([0.33, 0.27, 0.40], [1.09, 1.05, 1.02])
    assert only(diagnose_data(run), "training.barely_fit").evidence["constant_guess_loss"] == pytest.approx(
        1.0857, abs=1e-3
    )


def test_confident_predictions_or_a_fitted_loss_are_not_barely_fit() -> None:
    noisy_but_fit = _barely_fit_run([0.05, 0.05, 0.90], [1.10, 1.06, 1.02], class_weights=True)
    fitted = _barely_fit_run([0.31, 0.33, 0.36], [0.9, 0.6, 0.4], class_weights=True)
    for run in (noisy_but_fit, fitted):
        assert "training.barely_fit" not in ids(diagnose_data(run))


def test_barely_fit_reference_accounts_for_label_smoothing() -> None:
    from tunesmith.diagnosis.fit import guess_and_floor

    run = make_run(recipe={"train": {"class_weights": True, "label_smoothing": 0.3}})
    prior, guess_loss, floor = guess_and_floor(run) or ([], 0.0, 0.0)
    assert prior == [pytest.approx(1 / 3)] * 3 and guess_loss == pytest.approx(math.log(3))
    # a perfect fit still pays the smoothed target's entropy: targets 0.8 / 0.1 / 0.1
    assert floor == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.1)))
