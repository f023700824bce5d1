"""`adapter`: bottleneck adapters after the attention and feed-forward sublayers (Houlsby et al. 2019).

An adapter is a child module of the output projection it follows, added to that projection's output by a
forward hook: parameter names of the base model do not change, so the base weights load as usual and the
adapter's own weights (with the layer norms and the head that train beside them) are saved on their own.
On a CNN image classifier the adapters are 1x1 convolutions after each block (tunesmith.strategies.vision_adapter).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from safetensors.torch import load_file, save_file
from torch import nn

from tunesmith.config.schema import StrategyConfig
from tunesmith.errors import UserError
from tunesmith.strategies.base import Strategy
from tunesmith.strategies.blocks import find_blocks
from tunesmith.strategies.options import Options, parse_options
from tunesmith.strategies.vision_adapter import cnn_block_names, output_channels
from tunesmith.strategies.vision_peft import is_image_model

ADAPTER_TYPE = "tunesmith-bottleneck"
# Output projections of the attention and feed-forward sublayers: BERT, GPT-2, Llama, DistilBERT, BART/OPT.
ATTENTION_OUT = (
    "attention.output.dense",
    "attn.c_proj",
    "self_attn.o_proj",
    "attention.out_lin",
    "self_attn.out_proj",
)
FEEDFORWARD_OUT = ("output.dense", "mlp.c_proj", "mlp.down_proj", "ffn.lin2", "fc2")


class AdapterOptions(Options):
    size: int = Field(64, gt=0, description="bottleneck width")
    activation: Literal["gelu", "relu", "tanh"] = "gelu"
    layer_norms: bool = Field(True, description="train the layer norms too, as Houlsby et al. do")
    targets: list[str] | None = Field(
        None, description="module-name suffixes the adapters follow; detected when absent"
    )


class Bottleneck(nn.Module):
    """x -> x + up(act(down(x))); `up` starts at zero, so a new adapter is the identity. With `conv`, down and
    up are 1x1 convolutions over the channels of a [B, C, H, W] feature map (a residual adapter)."""

    def __init__(self, width: int, size: int, activation: str, conv: bool = False) -> None:
        super().__init__()
        self.down: nn.Linear | nn.Conv2d
        self.up: nn.Linear | nn.Conv2d
        if conv:
            self.down, self.up = nn.Conv2d(width, size, 1), nn.Conv2d(size, width, 1)
        else:
            self.down, self.up = nn.Linear(width, size), nn.Linear(size, width)
        self.act = {"gelu": nn.GELU(), "relu": nn.ReLU(), "tanh": nn.Tanh()}[activation]
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.up.weight)
        for bias in (self.down.bias, self.up.bias):
            nn.init.zeros_(bias)  # type: ignore[arg-type]  # always present: both layers are built with bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


def _add_adapter(module: nn.Module, inputs: Any, output: Any) -> Any:
    adapter: Any = module.adapter
    return adapter(output) if isinstance(output, torch.Tensor) else (adapter(output[0]), *output[1:])


def find_targets(model: nn.Module, suffixes: list[str] | None) -> list[str]:
    layers_prefix = find_blocks(model).layers_prefix
    names = [n for n, _ in model.named_modules() if n.startswith(layers_prefix)]
    if suffixes:
        found = [n for n in names if any(n.endswith("." + s) for s in suffixes)]
        if not found:
            raise UserError(
                f"strategy.targets: no module in the transformer blocks ends with {', '.join(suffixes)}."
            )
        return found
    attention = [n for n in names if n.endswith(ATTENTION_OUT)]
    feedforward = [n for n in names if n.endswith(FEEDFORWARD_OUT) and n not in attention]
    if not attention or not feedforward:
        raise UserError("strategy.targets: cannot find the attention and feed-forward output projections of this "
                        "model; set strategy.targets to their name suffixes (e.g. [attention.output.dense, output.dense]).")  # fmt: skip
    return sorted(attention + feedforward)


def plan_targets(model: nn.Module, suffixes: list[str] | None) -> tuple[list[str], dict[str, int] | None]:
    """The modules adapters follow, and for a CNN their output channels (None: Linear adapters)."""
    try:
        return find_targets(model, suffixes), None  # text models, vision transformers, named targets
    except UserError:
        if suffixes or not is_image_model(model):
            raise
    names = cnn_block_names(model)  # a CNN: a residual adapter after every block
    return names, output_channels(model, names)


def _width(module: nn.Module) -> int:
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.Linear):
        return module.out_features
    if weight is not None and weight.dim() == 2:  # GPT-2's Conv1D stores (in, out)
        return int(weight.shape[1])
    raise UserError(f"strategy.targets: {type(module).__name__} has no output width; target Linear layers.")


def inject(
    model: nn.Module, targets: list[str], size: int, activation: str, channels: dict[str, int] | None = None
) -> None:
    """Adapters after `targets`: Linear ones, or with `channels` 1x1-conv ones (at most as wide as the map)."""
    modules = dict(model.named_modules())
    for name in targets:
        module = modules[name]
        if channels is None:
            adapter = Bottleneck(_width(module), size, activation)
        else:
            adapter = Bottleneck(channels[name], min(size, channels[name]), activation, conv=True)
        module.add_module("adapter", adapter)
        module.register_forward_hook(_add_adapter)
    config: dict[str, Any] = {"size": size, "activation": activation, "targets": targets}
    if channels is not None:
        config["channels"] = channels
    model._tunesmith_adapter = config  # type: ignore[assignment]


def is_adapted(model: nn.Module) -> bool:
    return hasattr(model, "_tunesmith_adapter")


def base_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights without the injected adapters (each lives in a child module named `adapter`)."""
    return {k: v for k, v in model.state_dict().items() if ".adapter." not in k}


def save_adapter(model: nn.Module, out_dir: Path, base: str | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    trainable = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, str(out_dir / "adapter_model.safetensors"))
    config = {"adapter_type": ADAPTER_TYPE, **model._tunesmith_adapter,  # type: ignore[dict-item]
              "base_model_name_or_path": base or getattr(model.config, "_name_or_path", None)}  # fmt: skip
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))


def load_adapter(model: nn.Module, adapter_dir: Path) -> nn.Module:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    inject(model, config["targets"], config["size"], config["activation"], config.get("channels"))
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    missing_from_model = set(weights) - set(model.state_dict())
    if missing_from_model:
        raise UserError(
            f"{adapter_dir}: adapter weights do not fit the base model ({sorted(missing_from_model)[:3]})."
        )
    model.load_state_dict(weights, strict=False)
    return model


class AdapterStrategy(Strategy):
    name = "adapter"
    description = "bottleneck adapters after attention and feed-forward sublayers (+ layer norms, head) train"
    options_model = AdapterOptions
    recommended_lr = 5e-4

    def __init__(self, cfg: StrategyConfig) -> None:
        super().__init__(cfg)
        self.options = parse_options(AdapterOptions, cfg)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        o = self.options
        blocks = find_blocks(model)
        targets, channels = plan_targets(model, o.targets)
        inject(model, targets, o.size, o.activation, channels)
        # on images batch norm counts as a norm too (its statistics follow the data when its weights train)
        kinds = (nn.LayerNorm, nn.modules.batchnorm._BatchNorm) if is_image_model(model) else nn.LayerNorm
        norms = (
            {f"{n}." for n, m in model.named_modules() if isinstance(m, kinds)} if o.layer_norms else set()
        )
        for name, p in model.named_parameters():
            head = not name.startswith(blocks.backbone_prefix + ".")
            p.requires_grad_(head or ".adapter." in name or any(name.startswith(n) for n in norms))
        return model
