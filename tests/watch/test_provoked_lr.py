"""Real tiny runs with a learning rate far too high or far too low: the diagnosis names train.lr."""

from __future__ import annotations

from pathlib import Path

from watch_runs import findings, recipe, records, run_recipe

from conftest import toy_rows


def test_huge_learning_rate_diverges(tmp_path: Path, tiny_model: Path) -> None:
    lr = 0.5
    result = run_recipe(
        recipe(tmp_path, tiny_model, toy_rows(120, 1), name="huge-lr", lr=lr, grad_clip=None, epochs=2)
    )
    losses = [s["loss"] for s in records(result.run_dir, "step")]
    assert max(losses) > 3 * losses[0], losses  # it really blew up
    found = findings(result.run_dir)
    hit = [found[i] for i in ("training.divergence", "training.loss_spikes") if i in found]
    assert hit, list(found)
    patch = hit[0].config_patch or {}
    assert patch["train.lr"] <= lr / 3  # a lower learning rate ...
    assert patch.get("train.grad_clip") == 1.0  # ... and clipping back on
    assert "train.lr" in hit[0].recommendation
    assert hit[0].severity in ("error", "warning")


def test_tiny_learning_rate_underfits(tmp_path: Path, tiny_model: Path) -> None:
    lr = 1e-7
    result = run_recipe(recipe(tmp_path, tiny_model, toy_rows(120, 1), name="tiny-lr", lr=lr, epochs=2))
    found = findings(result.run_dir)
    flat = found["training.flat_loss"]
    assert flat.severity == "warning" and "chance" in flat.title
    assert flat.config_patch is not None and flat.config_patch["train.lr"] >= 3 * lr
    assert "train.lr" in flat.recommendation
    assert flat.evidence["relative_drop"] < 0.05
    # Nothing else blames the learning rate for being too high.
    for other in found.values():
        if other.config_patch and "train.lr" in other.config_patch:
            assert other.config_patch["train.lr"] > lr, other.id
