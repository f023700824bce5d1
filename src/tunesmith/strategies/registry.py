"""Strategies by name. Each is a small module defining one `Strategy` subclass, which validates its options."""

from __future__ import annotations

from tunesmith.config.schema import StrategyConfig
from tunesmith.data.messages import did_you_mean
from tunesmith.errors import UserError
from tunesmith.strategies.adapter import AdapterStrategy
from tunesmith.strategies.base import Strategy
from tunesmith.strategies.discriminative import DiscriminativeStrategy
from tunesmith.strategies.frozen import FrozenStrategy
from tunesmith.strategies.ia3 import IA3Strategy
from tunesmith.strategies.lora import LoraStrategy
from tunesmith.strategies.options import describe_options
from tunesmith.strategies.progressive import ProgressiveStrategy
from tunesmith.strategies.prompt_tuning import PromptTuningStrategy
from tunesmith.strategies.setfit import SetFitStrategy
from tunesmith.strategies.zero_shot import ZeroShotStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        FrozenStrategy, Strategy, DiscriminativeStrategy, ProgressiveStrategy, LoraStrategy, IA3Strategy,
        PromptTuningStrategy, AdapterStrategy, SetFitStrategy, ZeroShotStrategy,
    )
}  # fmt: skip


def get_strategy(cfg: StrategyConfig) -> Strategy:
    if cfg.name not in STRATEGIES:
        known = ", ".join(STRATEGIES)
        guess = did_you_mean(cfg.name.replace("_", "-"), list(STRATEGIES))
        hint = f"did you mean '{guess}'? " if guess else ""
        raise UserError(f"strategy.name: unknown strategy '{cfg.name}'; {hint}choose one of: {known}.")
    extra = sorted(cfg.model_extra or {})
    cls = STRATEGIES[cfg.name]
    if extra and cls.options_model is None:
        raise UserError(
            f"strategy: '{cfg.name}' takes no options; remove {', '.join(f'strategy.{k}' for k in extra)}."
        )
    return cls(cfg)


def describe_strategies() -> list[dict[str, str]]:
    """One row per strategy for `tunesmith strategies`: name, description, options with defaults, suggested lr."""
    return [
        {"name": name, "description": cls.description, "recommended_lr": f"{cls.recommended_lr:g}",
         "options": describe_options(cls.options_model) if cls.options_model else ""}
        for name, cls in STRATEGIES.items()
    ]  # fmt: skip
