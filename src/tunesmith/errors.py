"""The one exception type for bad input: the CLI prints its message and exits with code 2, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (recipe, data file, model path, output directory).

    The message names the file/row/key, what was wrong and how to fix it, on one line. A recipe with
    several problems reports them all at once: one line per problem.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        lines = [" ".join(line.split()) for line in message.strip().splitlines()]
        super().__init__("\n".join(line for line in lines if line))
