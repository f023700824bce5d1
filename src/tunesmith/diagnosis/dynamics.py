"""Training dynamics of the real run: area under the margin and dataset cartography, read from dynamics.npz.

The training loop writes `RUN_DIR/dynamics.npz` for classification runs: `rows` (int64 [n], the source-file
row of each training example), `margin` (float32 [epochs, n], assigned-label logit minus the largest other
logit, from that epoch's training forward pass; NaN where unseen) and `p_label` (float32 [epochs, n], softmax
probability of the assigned label). From them:

- AUM (Pleiss et al., NeurIPS 2020): the mean margin over the epochs. A correctly labelled example is pulled
  towards its label by its own gradient *and* by its similar neighbours, so its margin grows; a mislabelled
  one is pulled only by its own gradient against all of its neighbours, so its margin stays negative.
- Cartography (Swayamdipta et al., EMNLP 2020): confidence = mean p_label, variability = its standard
  deviation over epochs. Low confidence with low variability ("hard to learn") is where label errors sit.

A row is flagged when its AUM is below AUM_THRESHOLD and its confidence below HARD_CONFIDENCE: the model
ended up preferring another label and never came to believe the given one. Where the data audit also ran its
confident-learning check, rows flagged by both are listed first: two independent methods (a linear model on
frozen features, out of fold; the fine-tuned network's own history) agreeing is the strongest evidence.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.diagnosis.common import finding
from tunesmith.diagnosis.fit import fit_to_guess
from tunesmith.diagnosis.registry import rule
from tunesmith.diagnosis.rundata import RunData
from tunesmith.findings import Finding

DYNAMICS_FILE = "dynamics.npz"
AUM_THRESHOLD = 0.0  # mean margin below 0: on average the model preferred another label
HARD_CONFIDENCE = 0.5  # and it never gave the given label even odds on average
WARN_SHARE = 0.01
EXAMPLES = 10


@dataclass
class Dynamics:
    rows: np.ndarray  # int64 [n] source-file rows of the training examples
    margin: np.ndarray  # float32 [epochs, n]
    p_label: np.ndarray  # float32 [epochs, n]

    @property
    def epochs(self) -> int:
        return int(self.margin.shape[0])

    @property
    def seen(self) -> np.ndarray:
        """Epochs in which each example was seen."""
        return np.isfinite(self.margin).sum(axis=0)

    def _stat(self, values: np.ndarray, fn: Any) -> np.ndarray:
        out = np.full(values.shape[1], np.nan, dtype=np.float64)
        ok = np.isfinite(values).any(axis=0)
        out[ok] = fn(values[:, ok].astype(np.float64), axis=0)
        return out

    @property
    def aum(self) -> np.ndarray:
        return self._stat(self.margin, np.nanmean)

    @property
    def confidence(self) -> np.ndarray:
        return self._stat(self.p_label, np.nanmean)

    @property
    def variability(self) -> np.ndarray:
        return self._stat(self.p_label, np.nanstd)

    def flagged(self) -> np.ndarray:
        """Boolean [n]: likely mislabelled (low AUM and hard to learn); unseen examples are never flagged."""
        aum, conf = self.aum, self.confidence
        return np.isfinite(aum) & (aum < AUM_THRESHOLD) & (conf < HARD_CONFIDENCE)


def load_dynamics(run_dir: Path | None) -> Dynamics | str:
    """The run's dynamics, or a sentence saying why there are none (never raises: the report shows it)."""
    if run_dir is None:
        return "not recorded: no run directory"
    path = Path(run_dir) / DYNAMICS_FILE
    if not path.is_file():
        return (
            f"not recorded: no {DYNAMICS_FILE} in the run directory (a task or strategy without "
            "per-example logits, or a run from before training dynamics were recorded)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            rows, margin, p_label = (np.asarray(npz[k]) for k in ("rows", "margin", "p_label"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        return f"not readable: {path} ({error}); re-run to record it"
    if margin.ndim != 2 or margin.shape != p_label.shape or rows.shape != (margin.shape[1],):
        return (
            f"not readable: {path} has rows {rows.shape}, margin {margin.shape}, p_label {p_label.shape}; "
            "expected rows [n] and margin, p_label [epochs, n]"
        )
    return Dynamics(rows.astype(np.int64), margin.astype(np.float32), p_label.astype(np.float32))


def audit_label_error_rows(data: RunData) -> set[int] | None:
    """Train rows the data audit flagged as label errors; None when that check did not run."""
    if data.audit is None:
        return None
    ran = data.audit.get("stats", {}).get("checks_run")
    rows: set[int] = set()
    found = False
    for f in data.audit_findings:
        if f.id == "audit.label_errors" and f.evidence.get("split") == "train":
            rows.update(int(r) for r in f.rows or [])
            found = True
    if not found and isinstance(ran, list) and "label_errors" not in ran:
        return None
    return rows


@rule("label_errors")
def label_errors(data: RunData) -> list[Finding]:
    dyn = load_dynamics(data.run_dir)
    if isinstance(dyn, str):
        return []
    flagged = dyn.flagged()
    if not flagged.any():
        return []
    aum, conf, var = dyn.aum, dyn.confidence, dyn.variability
    fit = fit_to_guess(data)
    if not np.nanmedian(aum) > AUM_THRESHOLD or (fit is not None and fit.near_guess):
        # The model did not fit most of its training rows (a learning rate far off, a collapse to one class,
        # too little training): then every row has a low margin and AUM cannot tell a wrong label from a run
        # that learned (next to) nothing.
        return []
    audit_rows = audit_label_error_rows(data)
    in_audit = np.array([int(r) in audit_rows for r in dyn.rows]) if audit_rows is not None else None
    both = flagged & in_audit if in_audit is not None else np.zeros_like(flagged)
    # Rows both methods flag first, then by AUM (most negative first).
    order = np.nonzero(flagged)[0]
    order = order[np.lexsort((aum[order], ~both[order]))]
    count, n = int(flagged.sum()), int(np.isfinite(aum).sum())
    share = count / max(n, 1)
    evidence: dict[str, Any] = {
        "split": "train", "count": count, "share_of_seen": round(share, 6), "examples_seen": n,
        "epochs": dyn.epochs, "aum_threshold": AUM_THRESHOLD, "confidence_threshold": HARD_CONFIDENCE,
        "median_aum_all": round(float(np.nanmedian(aum)), 4),
        "median_aum_flagged": round(float(np.median(aum[flagged])), 4),
        "examples": [
            {"row": int(dyn.rows[i]), "aum": round(float(aum[i]), 3), "confidence": round(float(conf[i]), 3),
             "variability": round(float(var[i]), 3),
             **({"audit_also": bool(both[i])} if in_audit is not None else {})}
            for i in order[:EXAMPLES]
        ],
    }  # fmt: skip
    agreement = ""
    if in_audit is not None and audit_rows is not None:
        evidence["also_flagged_by_audit"] = int(both.sum())
        evidence["audit_only"] = len(audit_rows - {int(r) for r in dyn.rows[flagged]})
        agreement = (
            f" {int(both.sum())} of them were also flagged by the data audit's confident learning: "
            "review those first."
        )
    return [
        finding(
            "label_errors",
            "warning" if share >= WARN_SHARE else "info",
            f"{count} training rows the model never learned (AUM < {AUM_THRESHOLD:g}): likely mislabelled",
            evidence,
            f"The fine-tuned model kept preferring another label for these rows over {dyn.epochs} epochs "
            f"(area under the margin below {AUM_THRESHOLD:g}, confidence under {HARD_CONFIDENCE:g}).{agreement} "
            "Correct the labels that are wrong, or drop them all with `tunesmith doctor TRAIN --text T "
            "--label L --run RUN_DIR --fix OUT --fix-only label_errors` and train on OUT.",
            rows=sorted(int(dyn.rows[i]) for i in order),
        )
    ]
