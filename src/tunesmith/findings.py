"""`Finding`: the one shape of result shared by the data doctor, training diagnosis and evaluation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "error"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "error": 2}


@dataclass
class Finding:
    id: str  # stable machine name, e.g. "audit.exact_duplicates"
    stage: str  # "audit" | "training" | "evaluation" | ...
    severity: Severity
    title: str  # one line a person reads first
    evidence: dict[str, Any] = field(default_factory=dict)  # numbers behind the claim
    rows: list[int] | None = None  # affected data rows (0-based positions in the named split), if any
    recommendation: str = ""  # what to do, in words
    config_patch: dict[str, Any] | None = None  # dotted recipe keys -> values that apply the recommendation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**data)


def worst_severity(findings: list[Finding]) -> Severity | None:
    if not findings:
        return None
    return max(findings, key=lambda f: SEVERITY_ORDER[f.severity]).severity
