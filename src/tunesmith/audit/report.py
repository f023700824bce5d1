"""`AuditReport`: the data doctor's result, written as audit.json and read back by the run report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunesmith.findings import SEVERITY_ORDER, Finding

FORMAT_VERSION = 1


@dataclass
class AuditReport:
    findings: list[Finding] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def by_severity(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def counts(self) -> dict[str, int]:
        return {
            s: len(self.by_severity(s))
            for s in sorted(SEVERITY_ORDER, key=SEVERITY_ORDER.__getitem__, reverse=True)
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "counts": self.counts(),
            "findings": [plain(f.to_dict()) for f in self.findings],
            "stats": plain(self.stats),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditReport:
        return cls(
            findings=[Finding.from_dict(dict(f)) for f in data.get("findings", [])],
            stats=dict(data.get("stats", {})),
        )


def plain(value: Any) -> Any:
    """numpy scalars and arrays (and tuples, sets) -> JSON-ready Python values, recursively."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
