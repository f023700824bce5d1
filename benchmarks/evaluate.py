"""The evaluation suite on the demo run (packaged MiniLM on the drug reviews): what it costs and finds.

Trains the demo recipe (or reuses --run-dir), then prints one JSON line: the suite's wall time against the
training loop's, the latency table against transformers.pipeline (target: best variant's batch-1 p50 <=
0.4x the pipeline's with <= 1 point of macro-F1 lost), ECE before/after temperature scaling, the worst
condition slices, flip rates, the top tokens per class, and whether fine-tuning beats TF-IDF + LR.

    python benchmarks/evaluate.py                      # trains the demo (minutes), then reads its suite
    python benchmarks/evaluate.py --run-dir runs/demo  # an existing demo run: re-runs `tunesmith evaluate`
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from tunesmith.config.loader import apply_overrides, recipe_from_dict
from tunesmith.demo import DEMO_RECIPE
from tunesmith.evaluation.suite.command import evaluate_run
from tunesmith.run import run


def summarise(run_dir: Path, suite_s: float) -> dict[str, Any]:
    ev = run_dir / "evaluation"
    metrics = json.loads((run_dir / "metrics.json").read_text())

    def read(name: str) -> dict[str, Any]:
        return json.loads((ev / f"{name}.json").read_text()) if (ev / f"{name}.json").is_file() else {}

    latency, cal, base, rob, expl, sl = (read(n) for n in ("latency", "calibration", "baseline", "robustness",
                                                              "explanations", "slices"))  # fmt: skip
    variants = latency.get("variants", [])
    fp32 = next((v for v in variants if v["name"] == "pytorch-fp32"), None)
    anchor = latency.get("anchor", {}).get("p50_ms")
    ok = [v for v in variants if fp32 and fp32["macro_f1"] - v["macro_f1"] <= 0.01]
    best = min(ok, key=lambda v: v["p50_ms"]) if ok else None
    worst = sorted((s for col in sl.get("columns", {}).values() for s in col.get("slices", []) if "gap" in s),
                   key=lambda s: s["gap"])[:3]  # fmt: skip
    return {
        "benchmark": "evaluate", "machine": platform.processor() or platform.machine(),
        "train_loop_s": metrics.get("train_loop_s"), "suite_s": suite_s,
        "suite_share_of_training": suite_s / metrics["train_loop_s"] if metrics.get("train_loop_s") else None,
        "check_s": {k: v.get("seconds") for k, v in metrics.get("evaluation", {}).get("checks", {}).items()},
        "test_macro_f1": metrics["test"]["macro_f1"],
        "latency": {v["name"]: {"p50_ms": round(v["p50_ms"], 2), "macro_f1": round(v["macro_f1"], 4),
                                "texts_per_s_32": round(v["throughput"]["32"], 1)} for v in variants},  # fmt: skip
        "pipeline_p50_ms": anchor,
        "best_variant": best and best["name"], "best_p50_vs_pipeline": best and anchor and best["p50_ms"] / anchor,
        "target_met": bool(best and anchor and best["p50_ms"] / anchor <= 0.4),
        "ece_before": cal.get("before", {}).get("ece"), "ece_after": cal.get("after", {}).get("ece"),
        "temperature": cal.get("temperature"),
        "worst_slices": [{"value": s["value"], "n": s["n"], "gap": round(s["gap"], 3), "p_holm": s.get("p_holm")} for s in worst],
        "flip_rates": {k: v.get("flip_rate") for k, v in rob.get("perturbations", {}).items()},
        "top_tokens": {k: [t["token"] for t in v[:5]] for k, v in expl.get("top_tokens", {}).items()},
        "faithfulness": expl.get("faithfulness"),
        "baseline_macro_f1": base.get("scores", {}).get("tfidf-logreg", {}).get("macro_f1"),
        "fine_tuned_significantly_better": base.get("significantly_better"), "baseline_p": base.get("p_value"),
        "findings": metrics.get("evaluation", {}).get("findings"),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, help="an existing demo run (skips training)")
    args = parser.parse_args()
    if args.run_dir:
        start = time.perf_counter()
        evaluate_run(args.run_dir)
        print(json.dumps(summarise(args.run_dir, time.perf_counter() - start)))
        return
    out = Path(tempfile.mkdtemp(prefix="tunesmith-eval-bench-"))
    recipe = recipe_from_dict(apply_overrides(DEMO_RECIPE, [f"output.dir={out}"]), "demo recipe")
    result = run(recipe, overwrite=True, quiet=True)
    print(json.dumps(summarise(result.run_dir, result.metrics["evaluation"]["seconds"])))


if __name__ == "__main__":
    main()
