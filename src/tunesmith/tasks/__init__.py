"""Tasks: the only code that knows what a batch, a loss and a metric are.

The interface is `tunesmith.tasks.base.Task`; `tunesmith.tasks.registry.make_task(recipe)` picks one. (Nothing
is imported here, so modules the tasks use may import `tunesmith.tasks.base` without a cycle.)
"""
