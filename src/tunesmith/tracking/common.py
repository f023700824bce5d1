"""What every tracker logs: the numeric values of history records under stable metric names."""

from __future__ import annotations

from typing import Any

# Bookkeeping fields of a record, not metrics.
_SKIP = {"kind", "step", "epoch"}


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """Numeric values of a history record (bools and bookkeeping fields left out)."""
    return {
        key: float(value)
        for key, value in record.items()
        if key not in _SKIP and isinstance(value, int | float) and not isinstance(value, bool)
    }


def metric_name(kind: str, key: str) -> str:
    """`loss` -> `train/loss` (steps), `val_loss` -> `epoch/val_loss`; `grad_norm/block.0` stays."""
    if kind == "epoch":
        return f"epoch/{key}"
    return key if "/" in key else f"train/{key}"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested recipe dict -> dotted keys with string values (lists and None rendered as text)."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def recipe_dict(recipe: Any) -> dict[str, Any]:
    if hasattr(recipe, "model_dump"):
        return dict(recipe.model_dump(mode="json"))
    return dict(recipe) if isinstance(recipe, dict) else {}
