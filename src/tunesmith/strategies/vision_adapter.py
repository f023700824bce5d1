"""`adapter` on convolutional image classifiers: residual adapters (Rebuffi et al. 2017) after each block.

A vision transformer takes the text adapters unchanged (its attention and feed-forward output projections
are found by name). A CNN has no such projections: there a 1x1-convolution bottleneck follows every residual
block (the sub-blocks of each stage: EfficientNet's MBConv blocks, ResNet's bottleneck layers, ConvNeXt's
layers), added to the block's feature map. The channel count of each block's output is read from one probe
forward pass, so no per-architecture table is needed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tunesmith.errors import UserError
from tunesmith.strategies.blocks import find_blocks

PROBE_SIZE = 64  # pixels, when the model's config names no image size


def cnn_block_names(model: nn.Module) -> list[str]:
    """Each stage's sub-blocks (a ModuleList / Sequential of one block type inside it), else the stage."""
    blocks = find_blocks(model)
    names: list[str] = []
    for i, stage in enumerate(blocks.layers):
        stage_name = f"{blocks.layers_prefix}{i}"
        inner = next(
            ((n, c) for n, c in stage.named_children()
             if isinstance(c, nn.ModuleList | nn.Sequential) and len(c) and len({type(m) for m in c}) == 1),
            None,
        )  # fmt: skip
        names += [f"{stage_name}.{inner[0]}.{j}" for j in range(len(inner[1]))] if inner else [stage_name]
    return names


def _probe_size(model: nn.Module) -> int:
    config_size = getattr(getattr(model, "config", None), "image_size", None)
    settings: dict[str, Any] = getattr(model, "settings", {})
    size = config_size or settings.get("image_size") or PROBE_SIZE
    return int(size[0] if isinstance(size, list | tuple) else size)


def output_channels(model: nn.Module, names: list[str]) -> dict[str, int]:
    """The channel count of each named module's [B, C, H, W] output, from one forward pass on zeros."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Any:
        def hook(_: nn.Module, __: Any, output: Any) -> None:
            out = output if isinstance(output, torch.Tensor) else output[0]
            shapes[name] = tuple(out.shape)

        return hook

    handles = [modules[n].register_forward_hook(record(n)) for n in names]
    was_training = model.training
    model.eval()  # batch-norm statistics must not move
    try:
        size = _probe_size(model)
        with torch.no_grad():
            model(pixel_values=torch.zeros(1, 3, size, size))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    flat = [n for n in names if len(shapes.get(n, ())) != 4]
    if flat:
        raise UserError(f"strategy.targets: {flat[0]} does not output a [batch, channels, height, width] feature "
                        "map; on a CNN, leave strategy.targets unset (adapters follow every block).")  # fmt: skip
    return {n: shapes[n][1] for n in names}
