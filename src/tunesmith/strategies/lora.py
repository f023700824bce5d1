"""`lora`: low-rank updates of the attention projections (Hu et al. 2021), through PEFT."""

from __future__ import annotations

import torch
from peft import LoraConfig, PeftConfig
from pydantic import Field

from tunesmith.strategies.options import Options
from tunesmith.strategies.peft_methods import PeftStrategy, check_targets, detect_lora_targets, task_type
from tunesmith.strategies.vision_peft import image_lora_config, is_image_model


class LoraOptions(Options):
    r: int = Field(8, gt=0, description="rank of the update")
    alpha: float = Field(16.0, gt=0.0, description="scaling: the update is multiplied by alpha / r")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: list[str] | None = Field(None, description="Linear layer names; detected when absent")


class LoraStrategy(PeftStrategy):
    name = "lora"
    description = "PEFT LoRA: low-rank updates of the attention projections; the head trains; mergeable"
    options_model = LoraOptions

    def peft_config(self, model: torch.nn.Module) -> PeftConfig:
        o: LoraOptions = self.options
        if is_image_model(model):  # a vision backbone: convolutions or attention, head in modules_to_save
            return image_lora_config(model, o)
        targets = o.target_modules or detect_lora_targets(model)
        check_targets(model, targets)
        fan_in_fan_out = any(t in {"c_attn", "c_proj", "c_fc"} for t in targets)  # GPT-2's Conv1D layers
        return LoraConfig(
            task_type=task_type(model), r=o.r, lora_alpha=o.alpha,  # type: ignore[arg-type]  # PEFT accepts a float alpha
            lora_dropout=o.dropout, target_modules=targets,
            fan_in_fan_out=fan_in_fan_out,
        )  # fmt: skip
