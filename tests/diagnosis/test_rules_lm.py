"""Language-model diagnosis rules on planted problems: a real tiny-Llama run, and scripted histories."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from scripted import make_run

from conftest import lm_text
from tunesmith.config.loader import recipe_from_dict
from tunesmith.diagnosis import RULES, diagnose_data, load_run
from tunesmith.run import run


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _ids(findings: list[Any]) -> dict[str, Any]:
    return {f.id: f for f in findings}


def test_planted_lm_problems_fire_their_rules(tmp_path: Path, tiny_llama: Path) -> None:
    """Prompt loss on, responses longer than max_length, a learning rate that wrecks the retain set."""
    rng = random.Random(0)
    rows = [{"prompt": f"Tell me about dose {i}.", "response": lm_text(rng, 4, 60)}
            for i in range(16)]  # fmt: skip
    other = [
        "music",
        "weather",
        "garden",
        "football",
        "holiday",
        "cooking",
        "river",
        "mountain",
    ]  # none of the training words
    retain = [{"text": " ".join(rng.choices(other, k=12))} for _ in range(4)]
    recipe = recipe_from_dict({
        "task": "causal-lm", "model": {"name": str(tiny_llama), "max_length": 80},
        "data": {"train": str(_jsonl(tmp_path / "qa.jsonl", rows)), "train_on_prompt": True},
        "strategy": {"name": "full"}, "forgetting": {"retain": str(_jsonl(tmp_path / "retain.jsonl", retain))},
        "train": {"epochs": 1, "batch_size": 8, "lr": 0.5, "precision": "fp32", "log_every": 1},
        "eval": {"samples": 2, "batch_size": 8}, "audit": {"gate": "off"}, "output": {"dir": str(tmp_path / "runs"), "name": "bad"},
    })  # fmt: skip
    result = run(recipe, quiet=True)
    found = _ids(result.findings)
    assert found["training.prompt_loss"].config_patch == {"data.train_on_prompt": False}
    assert found["training.prompt_loss"].evidence["prompt_loss_share"] > 0.3
    cut = found["training.cut_responses"]
    assert cut.evidence["share"] > 0 and cut.config_patch and cut.config_patch["model.max_length"] > 80
    forgot = found["training.lm_forgetting"]
    assert forgot.evidence["perplexity_after"] > forgot.evidence["perplexity_before"]
    assert forgot.config_patch and forgot.config_patch["strategy.name"] == "lora"

    # the same run's generations rewritten into loops and empties: the tuned model degenerated
    data = load_run(result.run_dir)
    path = result.run_dir / "evaluation" / "generations.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    for line, tuned in zip(lines, ["pain pain pain pain pain pain pain pain", ""], strict=True):
        line |= {"start": "the patient took the tablet daily", "tuned": tuned}
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    degenerate = RULES["degenerate_generations"](data)
    assert [f.severity for f in degenerate] == ["warning"] and degenerate[0].evidence["loops"] == 1
    assert degenerate[0].evidence["empty"] == 1 and degenerate[0].config_patch
    for line in lines:  # the starting model looped as much: info, not the tuning's fault
        line["start"] = "pain pain pain pain pain pain pain pain"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert [f.severity for f in RULES["degenerate_generations"](data)] == ["info"]


def test_healthy_lm_signals_stay_quiet(tmp_path: Path) -> None:
    """Generations that read as text, no cut responses, response-only loss, retain perplexity steady."""
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "generations.jsonl").write_text(
        json.dumps({"prompt": "p", "start": "a b c d e f", "tuned": "the tablet eased the pain after a week"}) + "\n"
    )  # fmt: skip
    data = make_run(recipe={"task": "causal-lm", "data": {"train_on_prompt": False}, "train": {"lr": 1e-4}},
                    metrics={"encoding": {"train": {"kind": "prompt-response", "response_truncated_share": 0.0,
                                                    "prompt_loss_share": 0.0}},
                             "forgetting": {"before": {"perplexity": 20.0}, "after": {"perplexity": 20.5},
                                            "perplexity_increase": 0.025}})  # fmt: skip
    data.run_dir = tmp_path
    for name in ("degenerate_generations", "cut_responses", "prompt_loss", "lm_forgetting"):
        assert RULES[name](data) == [], name


def test_short_lm_run_whose_validation_improved_is_not_flat() -> None:
    """The LM demo's case: 20 noisy steps whose training loss fell 2.8%, validation 3.86 -> 3.68 nats."""
    rng = random.Random(1)
    losses = [3.9 - 0.11 * i / 10 + rng.uniform(-0.05, 0.05) for i in range(10)]
    epochs = [{"val_loss": 3.678, "val_loss_se": 0.05, "val_loss_paired_se": 0.01, "val_loss_ref_epoch": 0}]
    data = make_run(losses=losses, epochs=epochs, recipe={"task": "causal-lm", "train": {"lr": 5e-4}})
    data.history.insert(0, {"kind": "epoch", "epoch": 0, "step": 0, "val_loss": 3.855, "val_loss_se": 0.05})
    assert not any(f.id == "training.flat_loss" for f in diagnose_data(data))
    # without the start's validation, or when validation did not move, the flat-loss rule still speaks
    data.history[0]["val_loss"] = 3.679
    assert any(f.id == "training.flat_loss" for f in diagnose_data(data))
    assert math.isfinite(losses[-1])
