"""Strategies on image classifiers: lora (PEFT on convolutions / attention), discriminative and progressive
block discovery, on a tiny random ResNet, a tiny random ViT and a random EfficientNet-Lite0."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tunesmith.config.loader import recipe_from_dict
from tunesmith.config.schema import StrategyConfig, TrainConfig
from tunesmith.errors import UserError
from tunesmith.run import run
from tunesmith.strategies.blocks import find_blocks
from tunesmith.strategies.registry import get_strategy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_image_classification import StopAt, _recipe, make_tiny_resnet, write_images  # noqa: E402


@pytest.fixture(scope="module")
def tiny_resnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_resnet(tmp_path_factory.mktemp("tiny-resnet"))


def tiny_vit() -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=16, patch_size=4, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=32, num_labels=2)  # fmt: skip
    return ViTForImageClassification(config)


def efficientnet(num_labels: int = 2) -> nn.Module:
    from tunesmith.models.vision import ARCH_KEY, EfficientNetClassifier

    torch.manual_seed(0)
    return EfficientNetClassifier({ARCH_KEY: "efficientnet-lite", "variant": "efficientnet-lite0", "image_size": 16,
                                   "num_labels": num_labels, "image_mean": [0.5] * 3, "image_std": [0.5] * 3})  # fmt: skip


def _lora_size(
    model: nn.Module, keep: type[nn.Module] | tuple[type[nn.Module], ...], r: int, where: str
) -> int:
    """Parameters LoRA adds: A (r x fan-in x kernel) + B (fan-out x r) per adapted layer (counted by hand)."""
    total = 0
    for name, m in model.named_modules():
        if not name.startswith(where) or not isinstance(m, keep):
            continue
        if isinstance(m, nn.Conv2d):
            if m.groups != 1:
                continue  # depthwise: not adapted
            total += r * m.in_channels * m.kernel_size[0] * m.kernel_size[1] + m.out_channels * r
        elif isinstance(m, nn.Linear):
            total += r * m.in_features + m.out_features * r
    return total


def _head_size(model: nn.Module) -> int:
    return sum(p.numel() for p in model.classifier.parameters())


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _losses_over_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 4) -> list[float]:
    """AdamW (lr 1e-2) steps on the trainable parameters; the loss before each step."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(pixel_values=x).logits, y)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return losses


def test_lora_targets_efficientnet_pointwise_convolutions_and_keeps_the_base(tmp_path: Path) -> None:
    model = efficientnet()
    expected = _lora_size(model, nn.Conv2d, 4, "backbone.layers.")
    depthwise = sum(1 for n, m in model.named_modules() if n.endswith("_depthwise_conv"))
    head = _head_size(model)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    strategy = get_strategy(StrategyConfig(name="lora", r=4))
    wrapped = strategy.prepare(model)
    assert _trainable(wrapped) == expected + head
    adapted = [n for n, m in wrapped.named_modules() if n.endswith(("_expand_conv", "_project_conv"))
               and hasattr(m, "lora_A")]  # fmt: skip
    assert adapted and not any("_depthwise_conv.lora_A" in n for n, _ in wrapped.named_modules())
    assert depthwise > 0
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])
    wrapped.eval()  # no dropout / drop-connect: a loss that must fall step by step
    losses = _losses_over_steps(wrapped, x, y)
    assert losses[-1] < losses[0]
    inner = wrapped.get_base_model()  # type: ignore[operator]
    after = {k.replace(".base_layer", ""): v for k, v in inner.state_dict().items() if "lora_" not in k}
    frozen = [k for k in base if not k.startswith("classifier.")]
    assert all(after[k].equal(base[k]) for k in frozen)  # weights and batch-norm statistics alike


def test_lora_on_a_vision_transformer_adapts_attention_projections() -> None:
    model = tiny_vit()
    r = 2
    qv = sum(r * m.in_features + m.out_features * r for n, m in model.named_modules()
             if n.endswith(("attention.q_proj", "attention.v_proj")))  # fmt: skip
    head = _head_size(model)
    wrapped = get_strategy(StrategyConfig(name="lora", r=r)).prepare(model)
    assert qv and _trainable(wrapped) == qv + head
    assert wrapped(pixel_values=torch.randn(2, 3, 16, 16)).logits.shape == (2, 2)


def test_lora_names_a_missing_image_target() -> None:
    with pytest.raises(UserError, match="no Linear / Conv2d layer .* named nope"):
        get_strategy(StrategyConfig(name="lora", target_modules=["nope"])).prepare(efficientnet())


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory: pytest.TempPathFactory, tiny_resnet: Path) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("lora")
    train = write_images(tmp_path / "images", n=8)
    quick = {"audit": {"gate": "off"}, "strategy": {"name": "lora", "r": 2}, "eval": {"suite": []}}
    ref = run(recipe_from_dict(_recipe(tmp_path, tiny_resnet, train, "ref", lr=2e-2) | quick), quiet=True)
    cut = recipe_from_dict(_recipe(tmp_path, tiny_resnet, train, "cut", lr=2e-2, checkpoint_every=2) | quick)
    with pytest.raises(KeyboardInterrupt):
        run(cut, quiet=True, extra_callbacks=[StopAt(7)])
    return {"ref": ref, "resumed": run(cut, resume=True, quiet=True)}


def test_lora_image_run_trains_the_adapter_and_head_only_and_resumes_exactly(
    lora_runs: dict[str, Any], tiny_resnet: Path
) -> None:
    from transformers import ResNetForImageClassification

    ref, resumed = lora_runs["ref"], lora_runs["resumed"]
    base = ResNetForImageClassification.from_pretrained(tiny_resnet)
    expected = _lora_size(base, nn.Conv2d, 2, "resnet.encoder.stages.") + _head_size(base)
    assert ref.metrics["trainable_params"] == expected
    history = [json.loads(line) for line in (ref.run_dir / "history.jsonl").read_text().splitlines()]
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < losses[0]
    model_dir = ref.run_dir / "model"
    adapter = load_file(str(model_dir / "adapter" / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k or "classifier" in k for k in adapter)
    merged = load_file(str(model_dir / "model.safetensors"))
    start = load_file(str(tiny_resnet / "model.safetensors"))
    assert merged.keys() == start.keys()  # a plain ResNet: loads without PEFT
    convs = [k for k in start if k.startswith("resnet.encoder.stages.") and k.endswith("convolution.weight")]
    assert convs and all(not merged[k].equal(start[k]) for k in convs)  # the low-rank updates, folded in
    norms = [k for k in start if k.startswith("resnet.") and "normalization" in k]
    assert norms and all(merged[k].equal(start[k]) for k in norms)  # batch norm left frozen
    a, b = merged, load_file(str(resumed.run_dir / "model" / "model.safetensors"))
    assert all(a[k].equal(b[k]) for k in a)
    assert resumed.metrics["validation"] == ref.metrics["validation"]


@pytest.mark.parametrize("kind", ["resnet", "vit", "efficientnet"])
def test_block_discovery_on_vision_backbones(kind: str, tiny_resnet: Path) -> None:
    """discriminative: lrs fall block by block from the top; progressive: only the head trains at first."""
    from transformers import ResNetForImageClassification

    model = {"resnet": lambda: ResNetForImageClassification.from_pretrained(tiny_resnet), "vit": tiny_vit,
             "efficientnet": efficientnet}[kind]()  # fmt: skip
    blocks = find_blocks(model)
    assert len(blocks.layers) == {"resnet": 2, "vit": 2, "efficientnet": 7}[kind]
    assert blocks.head_names == ["classifier"]
    train = TrainConfig(lr=1e-3)
    groups = get_strategy(StrategyConfig(name="discriminative", decay=0.5, head_multiplier=1.0)).param_groups(
        model, train
    )
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    block_lr = [lr_of[id(next(blocks.layers[i].parameters()))] for i in range(len(blocks.layers))]
    assert block_lr == sorted(block_lr) and block_lr[0] < block_lr[-1]  # lower layers, lower rates
    embedding = next(p for n, p in named.items() if blocks.block_of(n) == -1)
    assert lr_of[id(embedding)] < block_lr[0]
    progressive = get_strategy(StrategyConfig(name="progressive"))
    prepared = progressive.prepare(model)
    trainable = {n for n, p in prepared.named_parameters() if p.requires_grad}
    head = {n for n, _ in model.classifier.named_parameters(prefix="classifier")}
    assert head <= trainable  # the head (and a final norm above the blocks)
    assert all(blocks.block_of(n) == len(blocks.layers) for n in trainable)


def _adapter_size(channels: list[int], size: int) -> int:
    """A 1x1-conv bottleneck per block: down (c x s + s) and up (s x c + c), s = min(size, c)."""
    return sum(2 * c * min(size, c) + min(size, c) + c for c in channels)


def test_adapter_on_efficientnet_follows_every_block_as_an_identity_and_trains_alone() -> None:
    model = efficientnet()
    blocks = [m for n, m in model.named_modules() if n.count(".") == 4 and n.startswith("backbone.layers.")]
    channels = [int(b._block_args.output_filters) for b in blocks]
    norms = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    base = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])
    model.eval()
    with torch.no_grad():
        before = model(pixel_values=x).logits
    prepared = get_strategy(StrategyConfig(name="adapter", size=8)).prepare(model)
    assert len(blocks) == 16 and all(hasattr(b, "adapter") for b in blocks)  # every MBConv block
    assert _trainable(prepared) == _adapter_size(channels, 8) + norms + _head_size(model)
    with torch.no_grad():
        assert torch.equal(prepared(pixel_values=x).logits, before)  # a new adapter is the identity
    losses = _losses_over_steps(prepared, x, y)  # eval mode: no dropout, batch-norm statistics fixed
    assert losses[-1] < losses[0]
    after = prepared.state_dict()
    convs = [k for k in base if k.endswith("conv.weight") and not k.startswith("classifier.")]
    assert convs and all(after[k].equal(base[k]) for k in convs)  # the convolutions stay frozen


def test_adapter_image_run_saves_a_plain_base_and_reloads_to_the_same_predictions(
    tmp_path: Path, tiny_resnet: Path
) -> None:
    from tunesmith.predict_images import predict_images

    train = write_images(tmp_path / "images", n=8)
    quick = {"audit": {"gate": "off"}, "strategy": {"name": "adapter", "size": 4}, "eval": {"suite": []}}
    result = run(
        recipe_from_dict(_recipe(tmp_path, tiny_resnet, train, "adapter", lr=2e-2) | quick), quiet=True
    )
    model_dir = result.run_dir / "model"
    config = json.loads((model_dir / "adapter" / "adapter_config.json").read_text())
    assert config["channels"] == {
        "resnet.encoder.stages.0.layers.0": 8,
        "resnet.encoder.stages.1.layers.0": 16,
    }
    start = load_file(str(tiny_resnet / "model.safetensors"))
    saved = load_file(str(model_dir / "model.safetensors"))
    assert saved.keys() == start.keys()  # the base without adapters: a plain ResNet
    convs = [k for k in start if k.startswith("resnet.") and k.endswith("convolution.weight")]
    assert convs and all(saved[k].equal(start[k]) for k in convs)
    adapter = load_file(str(model_dir / "adapter" / "adapter_model.safetensors"))
    assert any(".adapter.up." in k and v.abs().sum() > 0 for k, v in adapter.items())  # it trained
    rows = [
        json.loads(line)
        for line in (result.run_dir / "predictions" / "validation.jsonl").read_text().splitlines()
    ]
    predicted = predict_images(model_dir, [r["text"] for r in rows], calibrated=False)
    for row, again in zip(rows, predicted, strict=True):
        reloaded = [again["probs"][label] for label in ("marked", "plain")]
        assert reloaded == pytest.approx(row["probs"], abs=1e-4)


def test_adapter_names_a_missing_image_target() -> None:
    with pytest.raises(UserError, match="no module in the transformer blocks ends with nope"):
        get_strategy(StrategyConfig(name="adapter", targets=["nope"])).prepare(efficientnet())


def test_adapter_refuses_a_target_without_a_feature_map_output() -> None:
    from tunesmith.strategies.vision_adapter import output_channels

    model = efficientnet()
    linear = next(name for name, m in model.named_modules() if isinstance(m, nn.Linear))
    conv = next(name for name, m in model.named_modules() if isinstance(m, nn.Conv2d))
    assert output_channels(model, [conv])[conv] == dict(model.named_modules())[conv].out_channels
    with pytest.raises(UserError, match=f"strategy.targets: {linear} does not output a \\[batch, channels"):
        output_channels(model, [linear])
