"""An injected NaN loss under each train.nan_policy: the event is logged, diagnosed and shown in the report."""

from __future__ import annotations

from pathlib import Path

import pytest
from watch_runs import PoisonForward, findings, recipe, records, run_recipe

from conftest import toy_rows

EXPECTED = {  # policy -> (event, finding severity, stop reason set)
    "stop": ("nan_stop", "error", True),
    "skip": ("nan_skip", "warning", False),
    "rollback": ("nan_rollback", "warning", False),
}


@pytest.mark.parametrize("policy", list(EXPECTED))
def test_injected_nan_under_each_policy(tmp_path: Path, tiny_model: Path, policy: str) -> None:
    lr = 3e-3
    config = recipe(tmp_path, tiny_model, toy_rows(100, 1), name=f"nan-{policy}", epochs=1, lr=lr,
                    nan_policy=policy, schedule="constant", warmup_ratio=0.0)  # fmt: skip
    result = run_recipe(config, callbacks=[PoisonForward(at=3)])
    event_name, severity, stopped = EXPECTED[policy]

    events = [e for e in records(result.run_dir, "event") if e["event"].startswith("nan_")]
    assert [e["event"] for e in events] == [event_name]
    assert (result.metrics["stop_reason"] is not None) == stopped
    steps = records(result.run_dir, "step")
    if policy == "stop":
        assert result.metrics["steps"] == 2 and result.metrics["epochs_run"] == 0
    if policy == "rollback":  # the learning rate was halved from the rollback on
        assert events[0]["lr"] == pytest.approx(lr / 2)
        assert [s["lr"] for s in steps if s["step"] > events[0]["step"]] == pytest.approx(
            [lr / 2] * len([s for s in steps if s["step"] > events[0]["step"]])
        )

    nonfinite = findings(result.run_dir)["training.nonfinite"]
    assert nonfinite.severity == severity
    assert nonfinite.evidence["events"] == {event_name: 1}
    assert nonfinite.evidence["nan_policy"] == policy
    assert nonfinite.config_patch == {"train.lr": pytest.approx(lr / 3, rel=0.05)}

    report = (result.run_dir / "report.html").read_text()
    assert event_name in report and events[0]["message"].split(";")[0] in report
    assert 'data-finding="training.nonfinite"' in report
