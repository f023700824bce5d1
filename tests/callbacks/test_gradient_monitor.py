"""GradientMonitor on a tiny random BERT, driven by hand the way the training loop drives it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from tunesmith.training.callbacks.monitor import GradientMonitor, layer_of


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=1000,
        num_labels=3,
    )
    return BertForSequenceClassification(config)


def fake_ctx(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, log_every: int, monitor_every: int
) -> Any:
    train = SimpleNamespace(log_every=log_every, monitor_every=monitor_every)
    return SimpleNamespace(
        recipe=SimpleNamespace(train=train), model=model, optimizer=optimizer, step=0, extra={}
    )


def take_step(monitor: GradientMonitor, ctx: Any, lr_scale: float = 1.0) -> dict[str, Any]:
    """One optimizer step in the loop's order; returns the record (empty on unlogged steps)."""
    model, optimizer = ctx.model, ctx.optimizer
    batch = torch.randint(0, 1000, (4, 12))
    loss = model(input_ids=batch, labels=torch.tensor([0, 1, 2, 1])).loss * lr_scale
    loss.backward()
    monitor.on_after_backward(ctx)
    grads_before_clip = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)  # clipping must not change what was measured
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    ctx.step += 1
    record: dict[str, Any] = (
        {"kind": "step", "step": ctx.step} if ctx.step % ctx.recipe.train.log_every == 0 else {}
    )
    monitor.on_step_end(ctx, record)
    record["_grads"] = grads_before_clip
    return record


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("bert.embeddings.word_embeddings.weight", "embeddings"),
        ("bert.embeddings.LayerNorm.bias", "embeddings"),
        ("bert.encoder.layer.11.attention.self.query.weight", "block.11"),
        ("transformer.h.3.mlp.c_fc.weight", "block.3"),
        ("transformer.wte.weight", "embeddings"),
        ("model.layers.7.self_attn.q_proj.weight", "block.7"),
        ("model.embed_tokens.weight", "embeddings"),
        ("blocks.2.attn.qkv.weight", "block.2"),
        ("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.default.weight", "block.0"),
        ("decoder.block.1.layer.0.SelfAttention.q.weight", "decoder.block.1"),
        ("bert.pooler.dense.weight", "head"),
        ("classifier.weight", "head"),
        ("transformer.ln_f.weight", "head"),
    ],
)
def test_layer_of_names(name: str, layer: str) -> None:
    assert layer_of(name) == layer


def test_grad_norms_per_layer_match_manual_norms_before_clipping() -> None:
    model = tiny_bert()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ctx = fake_ctx(model, optimizer, log_every=2, monitor_every=4)
    monitor = GradientMonitor()
    monitor.on_train_start(ctx)
    assert monitor.layers == ["embeddings", "block.0", "block.1", "head"]

    unlogged = take_step(monitor, ctx)
    assert not any(k.startswith("grad_norm/") for k in unlogged)

    record = take_step(monitor, ctx)  # step 2: logged
    grads = record.pop("_grads")
    for layer in monitor.layers:
        expected = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g) for n, g in grads.items() if layer_of(n) == layer])
        ).item()
        assert record[f"grad_norm/{layer}"] == pytest.approx(expected, rel=1e-5)
        assert record[f"grad_norm/{layer}"] > 1e-3  # measured before the 1e-3 clip
    assert not any(k.startswith("update_ratio/") for k in record)  # first ratio at step 4


def test_update_ratio_matches_the_optimizer_step() -> None:
    model = tiny_bert()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx = fake_ctx(model, optimizer, log_every=2, monitor_every=4)
    monitor = GradientMonitor()
    monitor.on_train_start(ctx)
    take_step(monitor, ctx)
    take_step(monitor, ctx)
    take_step(monitor, ctx)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    record = take_step(monitor, ctx)  # step 4: logged and due
    for layer in monitor.layers:
        names = [n for n in before if layer_of(n) == layer]
        params = dict(model.named_parameters())
        delta = sum(float((params[n].detach() - before[n]).square().sum()) for n in names) ** 0.5
        weight = sum(float(before[n].square().sum()) for n in names) ** 0.5
        assert record[f"update_ratio/{layer}"] == pytest.approx(delta / weight, rel=1e-4)
        assert 0 < record[f"update_ratio/{layer}"] < 1
    assert monitor.state_dict()["last_ratio_step"] == 4
    later = [take_step(monitor, ctx) for _ in range(4)]  # steps 5..8: ratio again at 8 only
    assert [any(k.startswith("update_ratio/") for k in r) for r in later] == [False, False, False, True]


def test_ratio_interval_not_multiple_of_log_interval_uses_next_logged_step() -> None:
    monitor = GradientMonitor(log_every=10, monitor_every=25)
    due = []
    for step in range(1, 101):
        if monitor._ratio_due(step):
            due.append(step)
            monitor.last_ratio_step = step
    assert due == [30, 50, 80, 100]


def test_frozen_layers_are_not_reported_and_state_round_trips() -> None:
    model = tiny_bert()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("classifier"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ctx = fake_ctx(model, optimizer, log_every=1, monitor_every=1)
    monitor = GradientMonitor()
    monitor.on_train_start(ctx)
    record = take_step(monitor, ctx)
    record.pop("_grads")
    assert sorted(k for k in record if "/" in k) == ["grad_norm/head", "update_ratio/head"]

    restored = GradientMonitor()
    restored.load_state_dict(monitor.state_dict())
    assert restored.last_ratio_step == 1


def test_global_grad_norm_filled_when_the_loop_did_not_clip() -> None:
    model = tiny_bert()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ctx = fake_ctx(model, optimizer, log_every=1, monitor_every=100)
    monitor = GradientMonitor()
    monitor.on_train_start(ctx)
    record = take_step(monitor, ctx)
    grads = record.pop("_grads")
    manual = sum(float(g.square().sum()) for g in grads.values()) ** 0.5
    assert record["grad_norm"] == pytest.approx(manual, rel=1e-4)
    # A norm the loop measured (clipping on) is kept as it is.
    ctx.step = 1
    loss = model(input_ids=torch.randint(0, 1000, (2, 8)), labels=torch.tensor([0, 1])).loss
    loss.backward()
    monitor.on_after_backward(ctx)
    kept = {"kind": "step", "step": 2, "grad_norm": 123.0}
    monitor.on_step_end(ctx, kept)
    assert kept["grad_norm"] == 123.0


def test_layers_are_indexed_again_when_blocks_thaw() -> None:
    model = tiny_bert()
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith("bert.encoder.layer.0."))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ctx = fake_ctx(model, optimizer, log_every=1, monitor_every=100)
    monitor = GradientMonitor()
    monitor.on_train_start(ctx)
    assert "block.0" not in monitor.layers
    for p in model.parameters():  # progressive unfreezing thaws block 0
        p.requires_grad_(True)
    record = take_step(monitor, ctx)
    assert "block.0" in monitor.layers and record["grad_norm/block.0"] > 0


def test_paired_validation_noise_against_the_best_epoch() -> None:
    monitor = GradientMonitor()
    ctx = SimpleNamespace(epoch=0, extra={})
    epochs = [[1.0, 0.8, 1.2, 0.9], [0.5, 0.4, 0.9, 0.6], [0.9, 0.4, 1.6, 0.7], [1.3, 0.6, 2.0, 0.7]]
    records = []
    for i, losses in enumerate(epochs):
        ctx.epoch, ctx.extra["val_losses"] = i, torch.tensor(losses).numpy()
        record: dict[str, Any] = {"kind": "epoch", "epoch": i + 1}
        monitor.on_epoch_end(ctx, record)  # type: ignore[arg-type]
        records.append(record)
    assert "val_loss_paired_se" not in records[0]
    assert [r.get("val_loss_ref_epoch") for r in records] == [None, 1, 2, 2]
    diffs = torch.tensor(epochs[3]) - torch.tensor(epochs[1])
    expected = float(diffs.std(unbiased=True) / len(diffs) ** 0.5)
    assert records[3]["val_loss_paired_se"] == pytest.approx(expected, rel=1e-5)
    restored = GradientMonitor()
    restored.load_state_dict(monitor.state_dict())
    assert restored.ref_epoch == 2 and restored.ref_losses == pytest.approx(epochs[1])
