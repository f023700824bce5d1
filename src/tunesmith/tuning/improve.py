"""`tunesmith improve`: from diagnosis to a better recipe, one significant change at a time.

Each round: run the baseline on S seeds, read the config patches its findings propose (`Finding.
config_patch`), run every distinct patch as a variant on the same splits and seeds, and test each against
the baseline with `compare`'s paired two-level bootstrap on the validation split (Holm-corrected over the
round's variants). The best variant that is significantly better becomes the next baseline; a round
where none is, or a spent budget (trainings), ends it. The test split is never used to decide; its
scores are reported beside.

Run directories are keyed by the recipe's content (a hash, without output/search/tune) and the seed:
runs/<name>/improve/runs/<hash>/seed-<s>/. A finished one is reused, so running the command again after
a crash repeats no training and reaches the same decisions; a variant that equals an earlier recipe is
the same run. Outputs: improve.json, improve.html, best.yaml (the final baseline as a runnable recipe).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from tunesmith.config.loader import apply_overrides, recipe_from_dict, recipe_to_yaml
from tunesmith.config.schema import Recipe
from tunesmith.errors import UserError
from tunesmith.findings import Finding
from tunesmith.outputs import resolve_run_dir, write_json
from tunesmith.report.html import patch_overrides
from tunesmith.tasks.registry import make_task
from tunesmith.tuning.compare import collect, run_unit
from tunesmith.tuning.compare_stats import CLASSIFICATION, UnitRun
from tunesmith.tuning.space import base_data, override
from tunesmith.tuning.stats import holm, paired_bootstrap

log = logging.getLogger(__name__)
SPLIT = "validation"  # decisions on validation; the test split only reports
_NOT_PATCHED = ("output", "search", "tune")


def recipe_key(data: dict[str, Any]) -> str:
    """Content hash of a recipe (what it trains), the name of its run directories."""
    content = {k: v for k, v in data.items() if k not in _NOT_PATCHED}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class Scored:
    key: str
    runs: list[UnitRun]
    per_seed: list[dict[str, Any]] = field(default_factory=list)  # seed, run_dir, score, test_score

    @property
    def mean(self) -> float:
        return float(np.mean([r.score for r in self.runs]))

    @property
    def test(self) -> float | None:
        """Mean test score over seeds (None without a test split)."""
        tests = [r["test_score"] for r in self.per_seed if r["test_score"] is not None]
        return float(np.mean(tests)) if tests else None


@dataclass
class Improver:
    base: Recipe
    seeds: int = 2
    rounds: int = 3
    budget: int = 20
    alpha: float = 0.05
    quiet: bool = True
    root: Path = field(init=False)
    trainings: set[tuple[str, int]] = field(default_factory=set)  # distinct (recipe, seed) units so far
    num_classes: int = 0
    examples: int = 0  # validation examples each run is scored on

    def __post_init__(self) -> None:
        self.root = resolve_run_dir(self.base.output) / "improve"
        self.metric = self.base.eval.metric
        self.seed_list = [self.base.train.seed + i for i in range(self.seeds)]

    def cost(self, key: str) -> int:
        return sum((key, s) not in self.trainings for s in self.seed_list)

    def train(self, data: dict[str, Any]) -> Scored:
        """Run (or reuse) the recipe on every seed; score each run on the validation split."""
        key = recipe_key(data)
        runs: list[UnitRun] = []
        per_seed: list[dict[str, Any]] = []
        for seed in self.seed_list:
            unit = json.loads(json.dumps(data))
            unit["train"]["seed"] = seed
            unit["output"] = {"dir": str(self.root / "runs" / key), "name": f"seed-{seed}"}
            unit["search"] = {}
            recipe = recipe_from_dict(unit, f"improve variant {key}")
            log.info("improve: %s seed %d", key, seed)
            run_dir = run_unit(recipe, quiet=self.quiet, isolate=False)
            self.trainings.add((key, seed))
            scored, metrics = collect(run_dir, seed, self.metric, SPLIT)
            runs += scored
            self.num_classes = len(metrics["labels"])
            self.examples = len(scored[0].y_true)
            test = float(metrics["test"][self.metric]) if metrics.get("test") else None
            per_seed.append({"seed": seed, "run_dir": str(run_dir), "score": float(np.mean([r.score for r in scored])),
                             "test_score": test})  # fmt: skip
        return Scored(key, runs, per_seed)

    def proposals(
        self,
        data: dict[str, Any],
        scored: Scored,
        tried: set[str],
        carried: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Distinct patches that change the recipe to one not yet tried: first the `carried` ones (significantly
        better last round, but not the accepted change), then the baseline runs' findings' patches, the ones
        more (seed, finding) pairs propose first, so a budget cut drops the least supported."""
        found: dict[str, dict[str, Any]] = {}
        for item in carried or []:
            self._add(found, data, item["patch"], item["findings"], scored.key, tried, carried=True)
        for seed in self.seed_list:
            path = self.root / "runs" / scored.key / f"seed-{seed}" / "findings.json"
            for finding in json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []:
                patch = finding.get("config_patch") or {}
                if patch and not any(k.split(".")[0] in _NOT_PATCHED for k in patch):
                    cited = [{"id": finding["id"], "title": finding["title"]}]
                    self._add(found, data, patch, cited, scored.key, tried)
        order = sorted(found.values(), key=lambda c: (not c.get("carried"), -c["support"]))
        for c in order:
            del c["support"]
        return order

    @staticmethod
    def _add(
        found: dict[str, dict[str, Any]], data: dict[str, Any], patch: dict[str, Any],
        findings: list[dict[str, Any]], baseline: str, tried: set[str], carried: bool = False,
    ) -> None:  # fmt: skip
        """Record one proposal of `patch` in `found` (keyed by the recipe it makes), or count it again."""
        item: dict[str, Any] = {"patch": patch, "findings": list(findings), "support": 1}
        if carried:
            item["carried"] = True
        try:
            patched = apply_overrides(data, [override(k, v) for k, v in patch.items()])
            recipe = recipe_from_dict(patched, f"patch of {findings[0]['id']}")
            make_task(recipe).check_model()
            patched = recipe.model_dump(mode="json")
        except UserError as exc:  # a patch this model or task cannot take: said, never run
            key = "invalid:" + json.dumps(patch, sort_keys=True)
            found.setdefault(key, {**item, "status": "invalid", "reason": " ".join(str(exc).split())})
            return
        key = recipe_key(patched)
        if key == baseline or key in tried:
            return
        if key not in found:
            found[key] = {**item, "key": key, "data": patched}
            return
        known = found[key]
        known["support"] += 1
        known["findings"] += [f for f in findings if f["id"] not in {k["id"] for k in known["findings"]}]

    def compare(self, baseline: Scored, variant: Scored) -> dict[str, Any]:
        by_key = {r.key: r for r in baseline.runs}
        pairs = [(r, by_key[r.key]) for r in variant.runs if r.key in by_key]
        test = paired_bootstrap([(a.y_true, a.y_pred) for a, _ in pairs],
                                [(b.y_true, b.y_pred) for _, b in pairs], self.num_classes, self.metric)  # type: ignore[arg-type]  # fmt: skip
        return {"score": variant.mean, "test_score": variant.test, "gain": variant.mean - baseline.mean,
                "ci": test.ci, "p": test.p_value, "detail": test.detail}  # fmt: skip


def check_inputs(recipe: Recipe, *, seeds: int, rounds: int, budget: int, alpha: float) -> None:
    if recipe.task != "text-classification":
        raise UserError(f"improve: task {recipe.task} is not supported yet; it needs per-example predictions "
                        "to test (task: text-classification).")  # fmt: skip
    if recipe.eval.metric not in CLASSIFICATION:
        raise UserError(f"eval.metric: improve tests {', '.join(CLASSIFICATION)} by a paired bootstrap; "
                        f"got {recipe.eval.metric}.")  # fmt: skip
    if recipe.eval.cv:
        raise UserError("eval.cv: improve runs seeds, not folds; remove eval.cv.")
    if seeds < 1:
        raise UserError(f"--seeds: must be at least 1; got {seeds}")
    if rounds < 1:
        raise UserError(f"--rounds: must be at least 1; got {rounds}")
    if budget < 2 * seeds:
        raise UserError(f"--budget: {budget} trainings cannot hold the baseline and one variant at {seeds} "
                        f"seed(s) each; give at least {2 * seeds}.")  # fmt: skip
    if not 0.0 < alpha < 0.5:
        raise UserError(f"--alpha: must be between 0 and 0.5; got {alpha}")


def improve(
    recipe: Recipe, *, seeds: int = 2, rounds: int = 3, budget: int = 20, alpha: float = 0.05,
    quiet: bool = True, source: str = "recipe",
) -> dict[str, Any]:  # fmt: skip
    """The improve loop; returns (and writes) improve.json's content."""
    check_inputs(recipe, seeds=seeds, rounds=rounds, budget=budget, alpha=alpha)
    make_task(recipe).check_model()
    imp = Improver(recipe, seeds=seeds, rounds=rounds, budget=budget, alpha=alpha, quiet=quiet)
    data = base_data(recipe)
    baseline = imp.train(data)  # the audit gate of the first run stops here, before anything is written
    start = {"key": baseline.key, "score": baseline.mean, "test_score": baseline.test}
    tried: set[str] = {baseline.key}
    chain: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    stop = f"the {rounds} round(s) are done"
    carried: list[dict[str, Any]] = []  # last round's significant runners-up, retried on the new baseline
    undecided: dict[str, Any] | None = None
    for number in range(1, rounds + 1):
        candidates = imp.proposals(data, baseline, tried, carried)
        entry: dict[str, Any] = {"round": number, "baseline": {"key": baseline.key, "score": baseline.mean,
                                                                "test_score": baseline.test}, "candidates": []}  # fmt: skip
        history.append(entry)
        runnable = [c for c in candidates if "data" in c]
        entry["candidates"] = [_public(c) for c in candidates if "data" not in c]
        if not runnable:
            stop = "no finding proposed a change that has not been tried"
            break
        results: list[tuple[dict[str, Any], Scored]] = []
        for c in runnable:
            tried.add(c["key"])
            if len(imp.trainings) + imp.cost(c["key"]) > budget:
                entry["candidates"].append({**_public(c), "status": "skipped",
                                            "reason": f"the budget of {budget} trainings is spent"})  # fmt: skip
                continue
            results.append((c, imp.train(c["data"])))
        comparisons = [imp.compare(baseline, v) for _, v in results]
        adjusted = holm([c["p"] for c in comparisons]) if comparisons else []
        winner: tuple[dict[str, Any], Scored, dict[str, Any]] | None = None
        significant: list[dict[str, Any]] = []
        for (c, variant), stats, p_holm in zip(results, comparisons, adjusted, strict=True):
            stats["p_holm"] = p_holm
            better = stats["gain"] > 0 and p_holm < alpha
            row = {**_public(c), **stats, "status": "rejected"}
            row["reason"] = _why(stats, alpha) if not better else "significantly better"
            entry["candidates"].append(row)
            if better:
                significant.append(row)
            if better and (winner is None or stats["gain"] > winner[2]["gain"]):
                winner = (c, variant, row)
        entry["trainings"] = len(imp.trainings)
        if winner is None:
            stop = "no change was significantly better than the baseline" if results else (
                f"the budget of {budget} trainings is spent")  # fmt: skip
            undecided = undecided_finding(entry["candidates"], imp.examples, seeds, alpha, data["data"])
            break
        c, variant, row = winner
        row["status"] = "accepted"
        runners_up = [other for other in significant if other is not row]
        for other in runners_up:
            other["reason"] = (
                f"significantly better, but by less than the accepted change ({row['gain']:+.4f}); "
                "carried over, to be retried on top of it next round"
            )
        # Greedy forward selection: a change that also helped is tried again on top of the accepted one
        carried = [{"patch": o["patch"], "findings": o["findings"]} for o in runners_up]
        chain.append({"round": number, "patch": c["patch"], "findings": c["findings"], "key": c["key"],
                      "gain": row["gain"], "ci": row["ci"], "p_holm": row["p_holm"], "score": row["score"],
                      "test_score": row["test_score"], "carried": bool(c.get("carried"))})  # fmt: skip
        data, baseline = c["data"], variant
        if len(imp.trainings) + seeds > budget:
            stop = f"the budget of {budget} trainings is spent"
            break
    return _write(imp, recipe, source, start, baseline, data, chain, history, stop, undecided)


def undecided_finding(
    candidates: list[dict[str, Any]], examples: int, seeds: int, alpha: float, data_section: dict[str, Any]
) -> dict[str, Any] | None:
    """When the last round's best change gained on validation but not significantly: a Finding (as a dict)
    with how wide a gain this validation split can resolve and how many examples the gain would need."""
    tested = [c for c in candidates if c.get("status") == "rejected" and c.get("ci")]
    gained = [c for c in tested if c["gain"] > 0]
    if not gained or examples < 1:
        return None
    best = max(gained, key=lambda c: c["gain"])
    # The 95% CI's half-width, widened to the level Holm's first step asks of the smallest of m p-values
    # (alpha / m; normal quantiles: an approximation of the bootstrap's, good enough for a sample size).
    level = sps.norm.ppf(1 - alpha / (2 * len(tested))) / sps.norm.ppf(0.975)
    half_width = level * (best["ci"][1] - best["ci"][0]) / 2
    # The examples' share of the CI narrows as 1/sqrt(n); the seeds' share does not, so this is a floor.
    needed = max(examples + 1, math.ceil(examples * (half_width / best["gain"]) ** 2))
    change = patch_overrides(best["patch"])
    patch: dict[str, Any] | None = None
    if data_section.get("validation"):
        where = f"Give a data.validation file of that size (this one has {examples})"
    else:
        share = float(data_section["validation_split"])
        total = round(examples / share)
        if needed <= total // 2:  # holding out more than half would starve the training split
            patch = {"data.validation_split": math.ceil(100 * needed / total) / 100}
            where = (
                f"Set data.validation_split to {patch['data.validation_split']:g} (now {share:g}: {examples} "
                f"of {total} rows; a larger share also trains on fewer)"
            )
        else:
            where = (
                f"Label a data.validation file of that size: it is more than the {total} rows the training "
                "file holds"
            )
    return Finding(
        id="improve.undecided",
        stage="improve",
        severity="info",
        title=(
            f"Too few validation examples to decide {change}: it gained {best['gain']:+.4f}, within the "
            f"±{half_width:.4f} this split resolves"
        ),
        evidence={
            "patch": best["patch"],
            "gain": best["gain"],
            "ci": best["ci"],
            "p_holm": best["p_holm"],
            "half_width": half_width,
            "validation_examples": examples,
            "seeds": seeds,
            "changes_tested": len(tested),
            "examples_needed": needed,
        },
        recommendation=(
            f"A gain this small needs about {needed} validation examples to be told from noise "
            f"(the CI narrows as 1/sqrt(examples)). {where}, then run improve again; more seeds "
            f"(--seeds {seeds + 2}) narrow only the seeds' share. Until then the baseline stays: "
            "the change may help, but this data cannot show it."
        ),
        config_patch=patch,
    ).to_dict()


def best_model(scored: Scored) -> dict[str, Any] | None:
    """The trained model to hand over: the final recipe's run with the best validation score (as `tune`
    hands over its best trial's). Its validation score is picked, so optimistic; its test score is not."""
    if not scored.per_seed:
        return None
    run = max(scored.per_seed, key=lambda r: r["score"])
    return {**run, "model_dir": str(Path(run["run_dir"]) / "model")}


def _public(c: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in c.items() if k != "data"}


def _why(stats: dict[str, Any], alpha: float) -> str:
    ci = stats["ci"]
    interval = f", 95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else ""
    verdict = "not significantly better than" if stats["gain"] > 0 else "no better than"
    return (f"{verdict} the baseline: {stats['gain']:+.4f}{interval}, p = {stats['p_holm']:.3g} "
            f"(paired bootstrap, Holm) vs alpha {alpha:g}")  # fmt: skip


def _write(
    imp: Improver, recipe: Recipe, source: str, start: dict[str, Any], baseline: Scored, data: dict[str, Any],
    chain: list[dict[str, Any]], history: list[dict[str, Any]], stop: str, undecided: dict[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    from tunesmith.tuning.improve_page import render_improve_page

    best = recipe_from_dict({**data, "output": {**data["output"], "name": f"{recipe.output.name}-best"}},
                            f"{source} (improved)")  # fmt: skip
    patch: dict[str, Any] = {}
    for link in chain:
        patch |= link["patch"]
    report = {
        "recipe": source, "recipe_name": recipe.output.name, "metric": imp.metric, "split": SPLIT,
        "seeds": imp.seed_list, "alpha": imp.alpha, "budget": imp.budget, "trainings": len(imp.trainings),
        "start": start, "best": {"key": baseline.key, "score": baseline.mean, "test_score": baseline.test,
                                 "patch": patch, "recipe": str(imp.root / "best.yaml"), "model": best_model(baseline)},
        "chain": chain, "rounds": history, "stop_reason": stop, "undecided": undecided,
        "runs_dir": str(imp.root / "runs"),
    }  # fmt: skip
    imp.root.mkdir(parents=True, exist_ok=True)
    (imp.root / "best.yaml").write_text(recipe_to_yaml(best))
    write_json(imp.root / "improve.json", report)
    render_improve_page(imp.root / "improve.html", report)
    return report
