"""Strategies by name. Each is a small module registering one `Strategy` subclass."""

from __future__ import annotations

from tunesmith.config.schema import StrategyConfig
from tunesmith.errors import UserError
from tunesmith.strategies.base import Strategy

STRATEGIES: dict[str, type[Strategy]] = {"full": Strategy}


def get_strategy(cfg: StrategyConfig) -> Strategy:
    if cfg.name not in STRATEGIES:
        known = ", ".join(sorted(STRATEGIES))
        raise UserError(f"strategy.name: unknown strategy '{cfg.name}'; choose one of: {known}.")
    extra = sorted(cfg.model_extra or {})
    cls = STRATEGIES[cfg.name]
    if extra and cls is Strategy:
        raise UserError(f"strategy: '{cfg.name}' takes no options; remove {', '.join(extra)}.")
    return cls(cfg)
