"""`lora` on image classifiers: PEFT LoRA on a vision backbone's attention projections or convolutions.

PEFT's SEQ_CLS wrapper feeds `input_ids` to the model, so an image classifier is wrapped without a task
type and its head is named in `modules_to_save` (it trains in full beside the low-rank updates). Targets,
when strategy.target_modules is absent: a vision transformer's attention projections (PEFT's table, as for
text), else every dense layer inside the backbone's blocks: nn.Linear, and nn.Conv2d with groups == 1
(ResNet's convolutions, EfficientNet's 1x1 expand / project convolutions; ConvNeXt's pointwise Linear).
Depthwise convolutions stay frozen: a rank-r update of a per-channel filter saves nothing. Subclasses of
nn.Conv2d are skipped: PEFT builds LoRA's A and B as `type(layer)(...)` with the layer's kernel, stride and
`padding` attribute, which a convolution that pads in its own forward (TensorFlow "same") breaks; the
EfficientNet backbone turns its unpadded 1x1 convolutions into plain nn.Conv2d for this (models.vision).
"""

from __future__ import annotations

import copy
from typing import Any

from peft import LoraConfig, PeftModel
from torch import nn

from tunesmith.errors import UserError
from tunesmith.strategies.blocks import find_blocks
from tunesmith.strategies.peft_methods import detect_lora_targets


def is_image_model(model: nn.Module) -> bool:
    return getattr(model, "main_input_name", None) == "pixel_values"


def _dense(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return type(module) is nn.Conv2d and module.groups == 1  # PEFT builds LoRA's convs as type(layer)


def image_lora_targets(model: nn.Module) -> list[str]:
    """Attention projections of a vision transformer, else the dense layers of the backbone's blocks."""
    try:
        return detect_lora_targets(model)
    except UserError:
        pass  # no attention projections: a CNN
    prefix = find_blocks(model).layers_prefix
    names = [n for n, m in model.named_modules() if n.startswith(prefix) and _dense(m)]
    if not names:
        raise UserError("strategy.target_modules: no Linear or Conv2d layer in this model's blocks; set "
                        "strategy.target_modules to the names of the layers LoRA should adapt.")  # fmt: skip
    return names


def check_image_targets(model: nn.Module, targets: list[str]) -> None:
    names = {n for n, m in model.named_modules() if _dense(m)}
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        examples = sorted({n.rsplit(".", 1)[-1] for n in names})[:12]
        raise UserError(f"strategy.target_modules: no Linear / Conv2d layer (groups 1) named {', '.join(missing)} "
                        f"in this image model; names that exist: {', '.join(examples)}.")  # fmt: skip


def image_lora_config(model: nn.Module, options: Any) -> LoraConfig:
    """LoRA for an image classifier: no task type (pixel_values pass through), the head in modules_to_save."""
    targets = list(options.target_modules or image_lora_targets(model))
    check_image_targets(model, targets)
    return LoraConfig(
        r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout, target_modules=targets,
        modules_to_save=find_blocks(model).head_names,
    )  # fmt: skip


def merged_copy(model: nn.Module) -> nn.Module:
    """A plain model with the LoRA updates folded in (the trained one is left as it is, still wrapped)."""
    if not isinstance(model, PeftModel):
        return model
    merged: nn.Module = copy.deepcopy(model).merge_and_unload()  # type: ignore[operator]
    return merged
