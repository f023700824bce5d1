"""Each strategy on the tiny BERT (hidden 32, 2 layers, intermediate 64, 3 labels): what trains, how."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification

from tunesmith.config.schema import StrategyConfig
from tunesmith.errors import UserError
from tunesmith.models.loader import count_parameters, load_classifier
from tunesmith.strategies.blocks import find_blocks
from tunesmith.strategies.peft_methods import detect_ia3_targets, detect_lora_targets
from tunesmith.strategies.progressive import thawed_blocks
from tunesmith.strategies.registry import STRATEGIES, describe_strategies, get_strategy


@pytest.fixture()
def tiny_classifier(tiny_model: Path) -> Any:
    model, _tokenizer, _dir = load_classifier(str(tiny_model), ["negative", "neutral", "positive"], seed=0)
    return model


def cfg(name: str, **options: Any) -> StrategyConfig:
    return StrategyConfig(name=name, **options)


H, FF, LAYERS, LABELS, VOCAB = 32, 64, 2, 3, 30522
HEAD = H * LABELS + LABELS  # classifier
POOLER = H * H + H
LAYER = 4 * (H * H + H) + (H * FF + FF) + (FF * H + H) + 2 * 2 * H  # q k v o, up, down, 2 LayerNorms
EMBEDDINGS = (VOCAB + 512 + 2) * H + 2 * H
TOTAL = EMBEDDINGS + LAYERS * LAYER + POOLER + HEAD


def _adapter(size: int) -> int:
    return (H * size + size) + (size * H + H)


EXPECTED_TRAINABLE = {
    "full": TOTAL,
    "discriminative": TOTAL,
    "frozen": HEAD,
    "progressive": HEAD + POOLER,  # at the start: the head and everything above the blocks
    "lora": LAYERS * 2 * (8 * H + H * 8) + HEAD,  # r=8 on query and value
    # IA3 on key, value (a vector of H each) and both output.dense layers, which BERT's table marks as
    # feed-forward (a vector of their input width: H for attention.output.dense, FF for output.dense).
    "ia3": LAYERS * (H + H + H + FF) + HEAD,
    "prompt-tuning": 20 * H + HEAD,
    "adapter": LAYERS * 2 * _adapter(64) + (1 + 2 * LAYERS) * 2 * H + HEAD,  # adapters, LayerNorms, head
    "setfit": TOTAL,  # the contrastive phase tunes the encoder; the loop then trains the head alone
    "zero-shot": 0,
}


def test_every_strategy_is_registered_and_listed_by_the_cli() -> None:
    from typer.testing import CliRunner

    from tunesmith.cli import app

    assert set(STRATEGIES) == set(EXPECTED_TRAINABLE)
    result = CliRunner().invoke(app, ["strategies"])
    assert result.exit_code == 0
    for row in describe_strategies():
        assert f"{row['name']:<15} {row['description']}" in result.output


@pytest.mark.parametrize("name", sorted(EXPECTED_TRAINABLE))
def test_trainable_parameter_counts(name: str, tiny_classifier: Any) -> None:
    assert count_parameters(tiny_classifier) == (TOTAL, TOTAL)
    model = get_strategy(cfg(name)).prepare(tiny_classifier)
    trainable, _total = count_parameters(model)
    assert trainable == EXPECTED_TRAINABLE[name]
    if name in {"lora", "ia3", "prompt-tuning"}:  # the same count PEFT reports
        assert trainable == model.get_nb_trainable_parameters()[0]


def test_options_are_validated_with_the_key_and_valid_values() -> None:
    with pytest.raises(
        UserError, match=r"strategy\.rank: not an option of strategy 'lora'; its options are: r, alpha"
    ):
        get_strategy(cfg("lora", rank=4))
    with pytest.raises(UserError, match=r"strategy\.alpah: not an option .*did you mean 'strategy\.alpha'\?"):
        get_strategy(cfg("lora", alpah=4))
    with pytest.raises(UserError, match=r"strategy\.evry: .*did you mean 'strategy\.every'\?"):
        get_strategy(cfg("progressive", evry=2))
    with pytest.raises(UserError, match=r"strategy\.r: Input should be greater than 0"):
        get_strategy(cfg("lora", r=0))
    with pytest.raises(UserError, match=r"strategy\.init: Input should be 'random' or 'text'"):
        get_strategy(cfg("prompt-tuning", init="vocab"))
    with pytest.raises(UserError, match=r"'full' takes no options; remove strategy\.decay"):
        get_strategy(cfg("full", decay=0.9))
    with pytest.raises(
        UserError,
        match=r"strategy\.name: unknown strategy 'lorra'; did you mean 'lora'\? choose one of: frozen, full",
    ):
        get_strategy(cfg("lorra"))
    with pytest.raises(UserError, match=r"did you mean 'prompt-tuning'\?"):
        get_strategy(cfg("prompt_tuning"))


def test_a_bad_option_exits_2_from_the_cli_before_the_run_starts(
    recipe_dict: dict[str, Any], tmp_path: Path
) -> None:
    import yaml
    from typer.testing import CliRunner

    from tunesmith.cli import app

    recipe_dict["strategy"] = {"name": "lora", "r": 4, "alpah": 8}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "strategy.alpah: not an option of strategy 'lora'; did you mean 'strategy.alpha'?" in result.output
    assert not (Path(recipe_dict["output"]["dir"]) / "toy").exists()


def test_discriminative_learning_rates_decay_from_the_top(tiny_classifier: Any) -> None:
    from tunesmith.config.schema import TrainConfig

    strategy = get_strategy(cfg("discriminative", decay=0.5, head_multiplier=10.0))
    model = strategy.prepare(tiny_classifier)
    groups = strategy.param_groups(model, TrainConfig(lr=1e-3))
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["head"] == pytest.approx(1e-2) and lrs["head.no_decay"] == pytest.approx(1e-2)
    assert lrs["layer1"] == pytest.approx(1e-3) and lrs["layer0"] == pytest.approx(5e-4)
    assert lrs["embeddings"] == pytest.approx(2.5e-4)
    assert all(g["weight_decay"] == 0.0 for g in groups if g["name"].endswith("no_decay"))
    assert sum(p.numel() for g in groups for p in g["params"]) == TOTAL


def test_unfreezing_schedule() -> None:
    # 10 steps per epoch, 3 units (layer1, layer0, embeddings): one more every epoch, or every half epoch.
    assert [thawed_blocks(s, 10, 1.0, 0, 3) for s in (0, 9, 10, 19, 20, 30, 99)] == [0, 0, 1, 1, 2, 3, 3]
    assert [thawed_blocks(s, 10, 0.5, 0, 3) for s in (0, 4, 5, 10, 15)] == [0, 0, 1, 2, 3]
    assert [thawed_blocks(s, 10, 2.0, 1, 3) for s in (0, 19, 20, 40)] == [1, 1, 2, 3]


def test_progressive_thaws_from_the_top_and_adds_parameter_groups(tiny_classifier: Any) -> None:
    from tunesmith.config.schema import TrainConfig
    from tunesmith.training.optim import make_optimizer, make_scheduler

    train = TrainConfig(lr=1e-3, warmup_ratio=0.0, schedule="linear")
    strategy: Any = get_strategy(cfg("progressive", decay=0.5, head_multiplier=2.0))
    model = strategy.prepare(tiny_classifier)
    blocks = find_blocks(model)
    optimizer = make_optimizer(strategy.param_groups(model, train), train)
    scheduler = make_scheduler(optimizer, train, total_steps=10)
    strategy.attach(optimizer, scheduler)

    def training_blocks() -> set[int]:
        return {blocks.block_of(n) for n, p in model.named_parameters() if p.requires_grad}

    def group_names() -> list[str]:
        return [g["name"] for g in optimizer.param_groups]

    # At the start only the head (with the pooler above the blocks) is in the optimizer.
    assert training_blocks() == {2} and group_names() == ["head", "head.no_decay"]
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == HEAD + POOLER
    for _ in range(5):  # half-way down the linear schedule: every lr is half its peak
        optimizer.step()
        scheduler.step()
    expected = [({2, 1}, ["layer1", "layer1.no_decay"]), ({2, 1, 0}, ["layer0", "layer0.no_decay"]),
                ({2, 1, 0, -1}, ["embeddings", "embeddings.no_decay"])]  # fmt: skip
    names = group_names()
    for count, (blocks_on, added) in enumerate(expected, start=1):
        assert strategy.thaw(count)
        assert training_blocks() == blocks_on
        names += added
        assert group_names() == names
    # Each new group is on the schedule at its layer-wise peak: head 2e-3, layer1 1e-3, layer0 5e-4, ...
    peaks = {"head": 2e-3, "layer1": 1e-3, "layer0": 5e-4, "embeddings": 2.5e-4}
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(0.5 * peaks[group["name"].split(".")[0]])
    assert scheduler.base_lrs == pytest.approx([peaks[n.split(".")[0]] for n in names])
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == TOTAL
    scheduler.step()  # the scheduler now drives the added groups too
    assert optimizer.param_groups[-1]["lr"] == pytest.approx(0.4 * peaks["embeddings"])
    with pytest.raises(ValueError, match="cannot freeze blocks again"):
        strategy.thaw(1)


def test_frozen_blocks_stay_in_eval_mode(tiny_classifier: Any) -> None:
    strategy: Any = get_strategy(cfg("progressive"))
    model = strategy.prepare(tiny_classifier)
    blocks = find_blocks(model)
    strategy.thaw(1)
    model.train()  # frozen blocks keep eval mode (no dropout) whatever model.train() says; thawed ones follow
    assert blocks.layers[1].training and not blocks.layers[0].training
    assert not blocks.backbone.embeddings.training
    strategy.thaw(3)
    assert blocks.layers[0].training and blocks.backbone.embeddings.training


def _tiny_gpt2() -> Any:
    config = GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64, num_labels=3, pad_token_id=0
    )
    torch.manual_seed(0)
    return GPT2ForSequenceClassification(config)


def test_targets_are_detected_for_bert_and_gpt_models(tiny_classifier: Any) -> None:
    from tunesmith.strategies.adapter import find_targets

    assert detect_lora_targets(tiny_classifier) == ["query", "value"]
    assert detect_ia3_targets(tiny_classifier) == (["key", "value", "output.dense"], ["output.dense"])
    gpt = _tiny_gpt2()
    assert detect_lora_targets(gpt) == ["c_attn"]
    assert detect_ia3_targets(gpt) == (["c_attn", "mlp.c_proj"], ["mlp.c_proj"])
    assert find_targets(gpt, None) == ["transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj",
                                       "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"]  # fmt: skip
    ids = torch.tensor([[5, 6, 7, 8]])
    for name in ("lora", "ia3", "adapter", "progressive", "frozen"):
        model = get_strategy(cfg(name)).prepare(_tiny_gpt2())
        assert model(input_ids=ids).logits.shape == (1, 3), name


def test_target_modules_can_be_overridden(tiny_classifier: Any) -> None:
    model = get_strategy(cfg("lora", target_modules=["key"], r=2)).prepare(tiny_classifier)
    assert count_parameters(model)[0] == LAYERS * (2 * H + H * 2) + HEAD
    with pytest.raises(UserError, match=r"strategy\.target_modules: no Linear layer named qkv"):
        get_strategy(cfg("lora", target_modules=["qkv"])).prepare(tiny_classifier)


def test_a_new_adapter_is_the_identity(tiny_classifier: Any) -> None:
    ids = torch.tensor([[101, 2000, 3000, 102]])
    tiny_classifier.eval()
    before = tiny_classifier(input_ids=ids).logits
    after = get_strategy(cfg("adapter", size=4)).prepare(tiny_classifier).eval()(input_ids=ids).logits
    torch.testing.assert_close(before, after)
