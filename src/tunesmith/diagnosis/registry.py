"""The rule registry: each rule is a function RunData -> list[Finding], registered by name."""

from __future__ import annotations

from collections.abc import Callable

from tunesmith.diagnosis.rundata import RunData
from tunesmith.findings import Finding

Rule = Callable[[RunData], list[Finding]]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        if name in RULES:
            raise ValueError(f"diagnosis rule {name!r} is registered twice")
        RULES[name] = fn
        return fn

    return register
