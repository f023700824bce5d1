"""`tunesmith evaluate RUN_DIR`: the evaluation suite on a finished run, its own splits or another file.

Everything that can be wrong with the input is checked before the model loads or a file is written; the
results are written to a temporary directory and moved into place at the end, so nothing is half-written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml

from tunesmith.config.loader import recipe_from_dict
from tunesmith.config.schema import Recipe
from tunesmith.data.messages import describe_rows, did_you_mean, list_names
from tunesmith.data.prepare import MISSING_GROUP, prepare_data
from tunesmith.errors import UserError
from tunesmith.evaluation.suite.context import Context, EvalSet, sample
from tunesmith.evaluation.suite.suite import CHECKS, extra_slice_columns, resolve_checks, run_checks
from tunesmith.findings import Finding
from tunesmith.outputs import write_json

RUN_FILES = ("config.yaml", "metrics.json")


def _finished_run(run_dir: Path) -> Recipe:
    if not run_dir.is_dir():
        raise UserError(
            f"RUN_DIR {run_dir} is not a directory; pass the runs/<name> directory of a finished run."
        )
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing or not (run_dir / "model").is_dir():
        what = ", ".join(missing + ([] if (run_dir / "model").is_dir() else ["model/"]))
        raise UserError(f"RUN_DIR {run_dir} is not a finished run (no {what}); pass the directory of a run that "
                        "completed, or finish it with `tunesmith run RECIPE --resume`.")  # fmt: skip
    path = run_dir / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid YAML ({exc}); restore it from the run.") from exc
    return recipe_from_dict(raw or {}, str(path))


def _labels(run_dir: Path) -> list[str]:
    from tunesmith.export import _labels as labels_of

    return labels_of(run_dir / "model")


def _own_split(run_dir: Path, name: str, label2id: dict[str, int]) -> EvalSet | None:
    """A split of the run as it was evaluated (predictions/<split>.jsonl holds text, label, group, row)."""
    path = run_dir / "predictions" / f"{name}.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("label") in label2id]
    groups = [r.get("group") for r in rows]
    slices = (
        {"group": [g if g is not None else MISSING_GROUP for g in groups]} if any(g for g in groups) else {}
    )
    return EvalSet(name, [str(r["text"]) for r in rows], np.asarray([label2id[r["label"]] for r in rows],
                   dtype=np.int64), [int(r.get("row", i)) for i, r in enumerate(rows)], slices)  # fmt: skip


def _file_set(path: Path, text: str, label: str, group: str | None, label2id: dict[str, int]) -> EvalSet:
    from tunesmith.data.loaders import _label_value, read_raw

    if not path.is_file():
        raise UserError(f"--data {path}: no such file; check the path.")
    raw = read_raw(str(path), "--data")
    present = [str(c) for c in raw.columns]
    for option, column in (("--text", text), ("--label", label), ("--group", group)):
        if column is not None and column not in present:
            guess = did_you_mean(column, present)
            hint = f"did you mean '{guess}'? " if guess else ""
            raise UserError(f"{option}: column '{column}' is not in {path}; {hint}columns present: "
                            f"{list_names(present)}.")  # fmt: skip
    raw = raw.set_axis(present, axis=1)
    labels = [_label_value(v) for v in raw[label]]
    unknown = sorted({v for v in labels if v not in label2id}, key=str)
    if unknown:
        rows = [i for i, v in enumerate(labels) if v not in label2id]
        raise UserError(f"--data {path}: labels the model does not know in column '{label}': "
                        f"{list_names([str(u) for u in unknown])} ({describe_rows(rows)}); the model knows "
                        f"{list_names(list(label2id))}: fix or drop those rows.")  # fmt: skip
    texts = ["" if t is None else str(t) for t in raw[text].tolist()]
    slices = {}
    if group is not None:
        slices[group] = [(_label_value(v) or MISSING_GROUP) for v in raw[group]]
    return EvalSet(path.name, texts, np.asarray([label2id[v] for v in labels], dtype=np.int64),  # type: ignore[index]
                   list(range(len(texts))), slices)  # fmt: skip


def _check_out(out: Path, run_dir: Path) -> None:
    """--out must be new, empty, or hold only this suite's files (<check>.json): never someone else's files."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; choose a new or empty directory.")
    ours = {f"{name}.json" for name in CHECKS} | {"summary.json", "findings.json"}
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if others:
            raise UserError(f"--out {out} holds other files ({list_names(others, 5)}); choose a new or empty "
                            "directory.")  # fmt: skip


def publish(tmp: Path, target: Path, summary: dict[str, Any], findings: list[Finding]) -> None:
    """Move an evaluation written under `tmp` into `target` with its summary and findings: a failure
    before this point leaves `target` as it was."""
    shutil.rmtree(tmp / "model", ignore_errors=True)  # --out: the calibration written there is not kept
    write_json(tmp / "summary.json", summary)
    write_json(tmp / "findings.json", [f.to_dict() for f in findings])
    target.mkdir(parents=True, exist_ok=True)
    for path in tmp.iterdir():
        path.replace(target / path.name)
    tmp.rmdir()


def evaluate_run(
    run_dir: Path, *, data: Path | None = None, text: str | None = None, label: str | None = None,
    group: str | None = None, only: list[str] | None = None, out: Path | None = None,
) -> tuple[dict[str, Any], list[Finding], Path]:  # fmt: skip
    recipe = _finished_run(run_dir)
    if recipe.task == "image-classification":  # image files through the image checks (evaluation.image_suite)
        from tunesmith.evaluation.image_suite import evaluate_image_run

        return evaluate_image_run(run_dir, recipe, data=data, text=text, label=label, only=only, out=out)
    from tunesmith.tracking import make_trackers

    trackers = (
        make_trackers(list(recipe.report_to)) if out is None else []
    )  # a missing package: before any work
    names = resolve_checks(only, "--only") if only else resolve_checks(recipe.eval.suite)
    target = (out or run_dir / "evaluation").expanduser()
    _check_out(target, run_dir)
    labels = _labels(run_dir)
    label2id = {name: i for i, name in enumerate(labels)}
    seed = recipe.train.seed
    if data is not None:
        eval_set = _file_set(data, text or recipe.data.text, label or recipe.data.label, group, label2id)
        group_column = group
    else:
        own = _own_split(run_dir, "test", label2id) or _own_split(run_dir, "validation", label2id)
        if own is None:
            raise UserError(f"RUN_DIR {run_dir} has no predictions/test.jsonl or validation.jsonl; pass --data FILE "
                            "--text COL --label COL to evaluate a labelled file.")  # fmt: skip
        eval_set, group_column = own, group or recipe.data.group
        if "group" in eval_set.slices and recipe.data.group:
            eval_set.slices = {recipe.data.group: eval_set.slices.pop("group")}
        if group is not None and group not in eval_set.slices:
            source = recipe.data.test if own.name == "test" else recipe.data.validation or recipe.data.train
            if extra_slice_columns(eval_set, source, [group], "--group"):
                from tunesmith.data.loaders import read_raw

                present = [str(c) for c in read_raw(str(source), "--group").columns]
                guess = did_you_mean(group, present)
                hint = f"did you mean '{guess}'? " if guess else ""
                raise UserError(f"--group: column '{group}' is not in {source}; {hint}columns present: "
                                f"{list_names(present)}.")  # fmt: skip
            eval_set.slices = {group: eval_set.slices[group]}
    eval_set = sample(eval_set, recipe.eval.max_examples, seed)
    validation = _own_split(run_dir, "validation", label2id)
    try:  # the baseline trains on the run's training split: readable only while its files are there
        _, bundle = prepare_data(recipe.data)
        train = EvalSet("train", list(bundle.train.texts), np.asarray(bundle.train.labels, dtype=np.int64),
                        list(bundle.train.rows))  # fmt: skip
    except UserError:
        train = None

    from tunesmith.evaluation.suite.predictor import handle_for_run

    handle = handle_for_run(run_dir)
    in_run = out is None
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ctx = Context(run_dir=run_dir if in_run else tmp, cfg=recipe.eval, handle=handle, eval_set=eval_set,
                  validation=validation, train=train, group_column=group_column, seed=seed)  # fmt: skip
    if not in_run:
        (tmp / "model").mkdir(parents=True)  # calibration writes here; the run's model/ stays as it is
    summary, findings = run_checks(ctx, names, tmp)
    publish(tmp, target, summary, findings)
    if in_run:
        _update_run(run_dir, summary, findings)
        steps = int(json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("steps") or 0)
        for tracker in trackers:  # the run's own stores get the new numbers at the run's last step
            tracker.log_evaluation(run_dir, summary, findings, steps)
    return summary, findings, target


def _update_run(run_dir: Path, summary: dict[str, Any], findings: list[Finding]) -> None:
    """metrics.json gains `evaluation`; findings.json swaps its evaluation findings; the report is redrawn."""
    from tunesmith.report import render_report

    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    metrics["evaluation"] = summary
    write_json(run_dir / "metrics.json", metrics)
    path = run_dir / "findings.json"
    kept = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    kept = [f for f in kept if f.get("stage") != "evaluation"]
    write_json(path, kept + [f.to_dict() for f in findings])
    render_report(run_dir)


def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory (runs/<name>)")],
    data: Annotated[Path | None, typer.Option("--data", help="another labelled file to evaluate on")] = None,
    text: Annotated[
        str | None, typer.Option("--text", help="--data: its text column (default data.text)")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="--data: its label column (default data.label)")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="a column to slice by (default data.group)")
    ] = None,
    only: Annotated[
        str | None, typer.Option("--only", help=f"comma-separated checks: {', '.join(CHECKS)}")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="write here instead of RUN_DIR/evaluation")
    ] = None,
) -> None:
    """Evaluate like production: slices and fairness, calibration, a baseline, robustness, latency, explanations."""
    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    summary, findings, target = evaluate_run(run_dir, data=data, text=text, label=label, group=group, only=names,
                                             out=out)  # fmt: skip
    for name, head in summary["checks"].items():
        typer.echo(f"{name}: {json.dumps(head, default=str)[:200]}")
    for f in findings:
        typer.echo(f"[{f.severity}] {f.title}")
    typer.echo(f"evaluation: {target}")
