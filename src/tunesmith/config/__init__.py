"""The recipe: pydantic schema (schema.py) and YAML loading with dotted overrides (loader.py)."""

from tunesmith.config.loader import apply_overrides, load_recipe, recipe_from_dict, recipe_to_yaml
from tunesmith.config.schema import Recipe

__all__ = ["Recipe", "apply_overrides", "load_recipe", "recipe_from_dict", "recipe_to_yaml"]
