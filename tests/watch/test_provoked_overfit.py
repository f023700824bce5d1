"""30 epochs on 40 noisy rows: the model memorises them and the diagnosis says overfitting, with the epoch."""

from __future__ import annotations

from pathlib import Path

from watch_runs import findings, noisy_rows, recipe, records, run_recipe

from conftest import toy_rows


def test_thirty_epochs_on_forty_rows_overfit(tmp_path: Path, tiny_model: Path) -> None:
    config = recipe(
        tmp_path, tiny_model, noisy_rows(40, seed=3), validation_rows=toy_rows(120, seed=4), name="overfit",
        epochs=30, batch_size=40, lr=1e-2, schedule="constant", warmup_ratio=0.0, weight_decay=0.0,
        early_stopping={"patience": None},
    )  # fmt: skip
    result = run_recipe(config)
    epochs = records(result.run_dir, "epoch")
    assert len(epochs) == 30
    assert epochs[-1]["train_loss"] < 0.1 < epochs[-1]["val_loss"]  # memorised
    # The monitor measured the noise of each comparison on the same validation examples.
    assert all("val_loss_paired_se" in e and e["val_loss_ref_epoch"] >= 1 for e in epochs[1:])

    overfit = findings(result.run_dir)["training.overfitting"]
    best = min(epochs, key=lambda e: e["val_loss"])
    assert overfit.evidence["best_val_loss_epoch"] == best["epoch"]
    assert overfit.evidence["noise_from"] == "paired per-example differences"
    assert overfit.evidence["rise_in_se"] > 2
    # stop at the best epoch, more weight decay, and dropout up from the model's own (0.1 -> 0.2)
    assert overfit.config_patch == {
        "train.epochs": best["epoch"],
        "train.weight_decay": 0.1,
        "model.dropout": 0.2,
    }
    assert overfit.title.startswith(f"Overfitting from epoch {best['epoch'] + 1}")
