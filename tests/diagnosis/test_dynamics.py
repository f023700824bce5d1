"""Training dynamics (dynamics.npz) -> training.label_errors, combined with the audit, the cartography map in
the report, and removal through `tunesmith doctor --run RUN_DIR --fix OUT --fix-only label_errors`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.diagnosis import diagnose
from tunesmith.diagnosis.dynamics import load_dynamics
from tunesmith.report import render_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from fake_run import write_fake_run  # noqa: E402

N, EPOCHS = 120, 4
PLANTED = [7, 19, 33, 58, 90, 111]  # file rows whose given label the model never learns


def write_dynamics(run_dir: Path, rows: np.ndarray | None = None) -> np.ndarray:
    """Learned rows: margins that grow from about 0 to 4; planted rows stay below -1. Row order is shuffled
    (as a stratified split would), one planted row is unseen in the first epoch (NaN)."""
    rng = np.random.default_rng(0)
    rows = rng.permutation(N).astype(np.int64) if rows is None else rows
    margin = np.zeros((EPOCHS, N), dtype=np.float32)
    for e in range(EPOCHS):
        margin[e] = e + rng.normal(0.3, 0.5, N)
    planted = np.isin(rows, PLANTED)
    margin[:, planted] = rng.normal(-2.0, 0.3, (EPOCHS, int(planted.sum())))
    margin[0, np.nonzero(planted)[0][0]] = np.nan
    p_label = (1 / (1 + np.exp(-margin))).astype(np.float32)
    np.savez(run_dir / "dynamics.npz", rows=rows, margin=margin, p_label=p_label)
    return rows


def run_dir(tmp_path: Path) -> Path:
    out = write_fake_run(tmp_path / "run", findings=False)
    return out


def test_dynamics_flag_the_planted_rows(tmp_path: Path) -> None:
    rd = run_dir(tmp_path)
    write_dynamics(rd)
    found = [f for f in diagnose(rd) if f.id == "training.label_errors"]
    assert len(found) == 1
    f = found[0]
    assert f.rows == PLANTED
    assert f.evidence["split"] == "train" and f.evidence["epochs"] == EPOCHS
    assert f.evidence["count"] == len(PLANTED) and f.evidence["median_aum_flagged"] < -1
    assert all(ex["aum"] < 0 and ex["confidence"] < 0.5 for ex in f.evidence["examples"])
    assert "--fix-only label_errors" in f.recommendation


def test_audit_evidence_is_combined_and_shared_rows_come_first(tmp_path: Path) -> None:
    rd = run_dir(tmp_path)
    write_dynamics(rd)
    audit = json.loads((rd / "audit.json").read_text())
    audit["findings"].append({
        "id": "audit.label_errors", "stage": "audit", "severity": "info", "title": "x", "rows": [58, 3],
        "evidence": {"split": "train"}, "recommendation": "", "config_patch": None,
    })  # fmt: skip
    (rd / "audit.json").write_text(json.dumps(audit))
    f = next(f for f in diagnose(rd) if f.id == "training.label_errors")
    assert f.evidence["also_flagged_by_audit"] == 1 and f.evidence["audit_only"] == 1
    assert f.evidence["examples"][0]["row"] == 58 and f.evidence["examples"][0]["audit_also"] is True
    assert "also flagged by the data audit" in f.recommendation


def test_no_file_no_finding_and_the_report_says_not_recorded(tmp_path: Path) -> None:
    rd = run_dir(tmp_path)
    assert not [f for f in diagnose(rd) if f.id == "training.label_errors"]
    html = render_report(rd).read_text()
    section = html[html.index('id="dynamics"') :]
    assert "not recorded" in section[:2000]


def test_malformed_file_is_reported_not_raised(tmp_path: Path) -> None:
    rd = run_dir(tmp_path)
    np.savez(rd / "dynamics.npz", rows=np.arange(3), margin=np.zeros((2, 4)), p_label=np.zeros((2, 4)))
    assert "expected rows [n]" in str(load_dynamics(rd))
    (rd / "dynamics.npz").write_bytes(b"not a zip")
    assert str(load_dynamics(rd)).startswith("not readable")
    assert not [f for f in diagnose(rd) if f.id == "training.label_errors"]
    assert "not readable" in render_report(rd).read_text()


def test_report_draws_the_cartography_map(tmp_path: Path) -> None:
    rd = run_dir(tmp_path)
    write_dynamics(rd)
    html = render_report(rd).read_text()
    specs = json.loads(html.split('id="plot-specs">')[1].split("</script>")[0])
    traces = specs["cartography"]["data"]
    flagged = next(t for t in traces if t["name"].startswith("flagged"))
    assert sorted(int(t.split()[1]) for t in flagged["text"]) == PLANTED
    assert max(flagged["y"]) < 0.5 and sum(len(t["x"]) for t in traces) == N


def test_doctor_run_removes_the_rows_through_the_fixes_file(tmp_path: Path) -> None:
    rd = run_dir(tmp_path)
    write_dynamics(rd)
    train = tmp_path / "train.tsv"
    pd.DataFrame({"review": [f"review number {i} text" for i in range(N)],
                  "rating": ["positive"] * N}).to_csv(train, sep="\t", index=False)  # fmt: skip
    out = tmp_path / "clean"
    args = ["doctor", str(train), "--text", "review", "--label", "rating", "--no-label-errors", "--run", str(rd),
            "--fix", str(out), "--fix-only", "label_errors"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    fixes = [json.loads(line) for line in (out / "fixes.jsonl").read_text().splitlines()]
    assert sorted(r["row"] for r in fixes) == PLANTED and {r["fix"] for r in fixes} == {"label_errors"}
    assert len(pd.read_csv(out / "train.tsv", sep="\t")) == N - len(PLANTED)
    bad = CliRunner().invoke(app, args[:-4])
    assert bad.exit_code == 2 and "add --fix" in bad.output


def test_a_run_that_learned_nothing_is_not_judged_by_its_margins(tmp_path: Path) -> None:
    """Every margin low (a learning rate far off, a one-class model): AUM cannot single out wrong labels."""
    rd = run_dir(tmp_path)
    rng = np.random.default_rng(1)
    margin = rng.normal(-0.5, 0.3, (EPOCHS, N)).astype(np.float32)
    np.savez(rd / "dynamics.npz", rows=np.arange(N), margin=margin, p_label=1 / (1 + np.exp(-margin)))
    assert [f for f in diagnose(rd) if f.id == "training.label_errors"] == []


def test_an_under_trained_run_flags_no_label_errors(tmp_path: Path) -> None:
    """A model whose training loss stayed near a constant guess's has low margins on every row: AUM cannot
    tell a wrong label from a run that learned next to nothing, so the rule stays quiet (barely_fit speaks)."""
    rd = run_dir(tmp_path)
    write_dynamics(rd)
    history = [json.loads(line) for line in (rd / "history.jsonl").read_text().splitlines()]
    for record in history:
        if record.get("kind") == "epoch" and "train_loss" in record:
            record["train_loss"] = 0.99 * float(np.log(3))
    (rd / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    config = (rd / "config.yaml").read_text()
    (rd / "config.yaml").write_text(config.replace("class_weights: false", "class_weights: true"))
    predictions = [
        json.loads(line) for line in (rd / "predictions" / "validation.jsonl").read_text().splitlines()
    ]
    for row in predictions:
        row["probs"] = [1 / 3] * len(row["probs"])
    (rd / "predictions" / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in predictions))
    found = [f.id for f in diagnose(rd)]
    assert "training.label_errors" not in found and "training.barely_fit" in found
