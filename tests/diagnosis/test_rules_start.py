"""Short runs: the validation before the first step (epoch 0) and step 1 give every rule the start."""

from __future__ import annotations

import math
from typing import Any

from scripted import healthy_epochs, make_run

from tunesmith.diagnosis import diagnose_data
from tunesmith.diagnosis.rundata import RunData

INITIAL = {"kind": "epoch", "epoch": 0, "step": 0, "val_loss": 1.1, "val_loss_se": 0.03, "val_macro_f1": 0.2,
           "val_accuracy": 0.3}  # fmt: skip


def with_initial(run: RunData, record: dict[str, Any] | None = None) -> RunData:
    run.history.insert(0, dict(record or INITIAL))
    return run


def ids(run: RunData) -> set[str]:
    return {f.id for f in diagnose_data(run)}


def test_a_two_epoch_run_far_above_chance_is_caught_with_the_lr_as_suspect() -> None:
    epochs = [{"train_loss": 40.0, "val_loss": 80.0, "val_loss_se": 5.0}, {"train_loss": 50.0, "val_loss": 72.5,
              "val_loss_se": 5.0}]  # fmt: skip
    run = with_initial(
        make_run(losses=[30.0, 45.0], epochs=epochs, monitor={"update_ratio/block.0": [0.5, 0.4]})
    )
    f = next(f for f in diagnose_data(run) if f.id == "training.loss_above_start")
    assert f.severity == "error" and f.evidence["measured_on"] == "validation loss"
    assert math.isclose(f.evidence["end_over_chance"], 72.5 / math.log(3), rel_tol=1e-3)
    assert f.evidence["confidence"] == "high" and f.evidence["update_ratio_vs_typical"] >= 100
    assert f.config_patch is not None and math.isclose(f.config_patch["train.lr"], 5e-6)
    assert "learning rate is the first suspect" in f.recommendation


def test_step_one_is_the_start_when_there_is_no_initial_validation() -> None:
    run = make_run(losses=[3.0, 3.2, 3.1, 3.3])
    run.history.insert(0, {"kind": "step", "step": 1, "epoch": 0.01, "loss": 1.1, "lr": 5e-5})
    f = next(f for f in diagnose_data(run) if f.id == "training.loss_above_start")
    assert f.evidence["measured_on"] == "training loss" and f.evidence["start_loss"] == 1.1
    assert f.evidence["end_over_start"] > 2.5


def test_healthy_runs_do_not_fire_and_epoch_zero_changes_no_other_rule() -> None:
    plain = make_run(epochs=healthy_epochs(3))
    assert "training.loss_above_start" not in ids(plain)
    started = with_initial(make_run(epochs=healthy_epochs(3)))
    assert ids(started) == ids(plain)
    assert len(started.epochs) == 3 and started.initial is not None and len(started.curve_epochs) == 4
    # an overfitting run keeps its finding, and its best epoch is a training epoch, never 0
    over = [{"train_loss": 0.9 - 0.2 * i, "val_loss": v, "val_loss_se": 0.01, "val_loss_paired_se": 0.01}
            for i, v in enumerate([0.7, 0.6, 0.75, 0.9, 1.0])]  # fmt: skip
    a, b = make_run(epochs=over), with_initial(make_run(epochs=over), {**INITIAL, "val_loss": 1.2})
    assert ids(a) == ids(b)
    fa = [f.config_patch for f in diagnose_data(a) if f.id == "training.overfitting"]
    fb = [f.config_patch for f in diagnose_data(b) if f.id == "training.overfitting"]
    assert fa == fb
