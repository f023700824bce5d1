"""Tasks by name, as strategies are: `task:` in the recipe picks one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunesmith.errors import UserError
from tunesmith.tasks.base import Task
from tunesmith.tasks.causal_lm import CausalLM
from tunesmith.tasks.image_classification import ImageClassification
from tunesmith.tasks.text_classification import TextClassification

if TYPE_CHECKING:
    from tunesmith.config.schema import Recipe

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (TextClassification, CausalLM, ImageClassification)}


def make_task(recipe: Recipe) -> Task:
    """The recipe's task, its task-specific settings checked (UserError names the key and the fix)."""
    try:
        cls = TASKS[recipe.task]
    except KeyError:
        raise UserError(f"task: '{recipe.task}' is not a task; use one of {', '.join(TASKS)}.") from None
    task = cls(recipe)
    task.check_recipe()
    return task
