"""Each strategy validates its own options with a small pydantic model; errors name `strategy.<key>`."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tunesmith.config.schema import StrategyConfig
from tunesmith.data.messages import did_you_mean
from tunesmith.errors import UserError

OptionsT = TypeVar("OptionsT", bound="Options")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_options(cls: type[OptionsT], cfg: StrategyConfig) -> OptionsT:
    """Validate `cfg`'s extra keys against `cls`; every problem becomes one `strategy.<key>: ...` line."""
    given: dict[str, Any] = dict(cfg.model_extra or {})
    try:
        return cls(**given)
    except ValidationError as exc:
        valid = ", ".join(cls.model_fields) or "none"
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "?"
            if err["type"] == "extra_forbidden":
                guess = did_you_mean(key, list(cls.model_fields))
                hint = f"did you mean 'strategy.{guess}'? " if guess else ""
                lines.append(
                    f"strategy.{key}: not an option of strategy '{cfg.name}'; {hint}its options are: {valid}."
                )
            else:
                lines.append(f"strategy.{key}: {err['msg']}; got {err.get('input')!r}.")
        raise UserError("\n".join(lines)) from None


def describe_options(cls: type[Options]) -> str:
    """`r=8, alpha=16, ...`: the options and their defaults, for `tunesmith strategies`."""
    parts = []
    for name, field in cls.model_fields.items():
        parts.append(f"{name}={field.default!r}" if not field.is_required() else name)
    return ", ".join(parts)
