"""`ia3`: learned rescaling vectors on keys, values and the feed-forward input (Liu et al. 2022), via PEFT."""

from __future__ import annotations

import torch
from peft import IA3Config, PeftConfig
from pydantic import Field

from tunesmith.errors import UserError
from tunesmith.strategies.options import Options
from tunesmith.strategies.peft_methods import PeftStrategy, check_targets, detect_ia3_targets, task_type


class IA3Options(Options):
    target_modules: list[str] | None = Field(None, description="Linear layer names; detected when absent")
    feedforward_modules: list[str] | None = Field(
        None, description="the subset of target_modules in feed-forward"
    )


class IA3Strategy(PeftStrategy):
    name = "ia3"
    description = "PEFT IA3: learned scaling of keys, values and feed-forward activations; fewest parameters"
    options_model = IA3Options
    recommended_lr = 3e-3

    def peft_config(self, model: torch.nn.Module) -> PeftConfig:
        o: IA3Options = self.options
        if o.target_modules:
            targets, feedforward = o.target_modules, o.feedforward_modules or []
            check_targets(model, targets)
        else:
            targets, feedforward = detect_ia3_targets(model)
            feedforward = o.feedforward_modules if o.feedforward_modules is not None else feedforward
        stray = [f for f in feedforward if f not in targets]
        if stray:
            raise UserError(f"strategy.feedforward_modules: {', '.join(stray)} must also be in strategy.target_modules "
                            f"({', '.join(targets)}).")  # fmt: skip
        fan_in_fan_out = any(t.rsplit(".", 1)[-1] in {"c_attn", "c_proj", "c_fc"} for t in targets)
        return IA3Config(task_type=task_type(model), target_modules=targets, feedforward_modules=feedforward,
                         fan_in_fan_out=fan_in_fan_out)  # fmt: skip
