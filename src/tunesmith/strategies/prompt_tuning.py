"""`prompt-tuning`: learned virtual tokens prepended to the input (Lester et al. 2021), through PEFT."""

from __future__ import annotations

from typing import Any, Literal

import torch
from peft import PeftConfig, PromptTuningConfig, PromptTuningInit
from pydantic import Field

from tunesmith.strategies.options import Options
from tunesmith.strategies.peft_methods import PeftStrategy, task_type


class PromptTuningOptions(Options):
    num_virtual_tokens: int = Field(20, gt=0, description="learned tokens prepended to every input")
    init: Literal["random", "text"] = Field(
        "random", description="text: start from the embeddings of init_text"
    )
    init_text: str = Field("Classify the text:", description="used when init is text")


class PromptTuningStrategy(PeftStrategy):
    name = "prompt-tuning"
    description = "PEFT prompt tuning: learned virtual tokens before the input; the model itself is unchanged"
    options_model = PromptTuningOptions
    recommended_lr = 3e-3

    def peft_config(self, model: torch.nn.Module) -> PeftConfig:
        o: PromptTuningOptions = self.options
        kwargs: dict[str, Any] = {}
        if o.init == "text":
            name = getattr(model.config, "_name_or_path", None) or getattr(model, "name_or_path", None)
            kwargs = {"prompt_tuning_init": PromptTuningInit.TEXT, "prompt_tuning_init_text": o.init_text,
                      "tokenizer_name_or_path": name}  # fmt: skip
        return PromptTuningConfig(
            task_type=task_type(model), num_virtual_tokens=o.num_virtual_tokens, **kwargs
        )
