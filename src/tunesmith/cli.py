"""The command line: `tunesmith run | demo | config show | predict | data export-demo | ...`.

Bad input never ends in a traceback: every command turns `UserError` into one line on stderr, exit 2.
"""

from __future__ import annotations

import errno
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from tunesmith.errors import UserError
from tunesmith.training.preemption import EXIT_CODE as PREEMPTED_EXIT_CODE
from tunesmith.training.preemption import Preempted

F = TypeVar("F", bound=Callable[..., Any])
console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="tunesmith: fine-tune pre-trained models, with a doctor that explains every problem and its fix.",
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect recipes.")
data_app = typer.Typer(no_args_is_help=True, help="Data helpers.")
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")


def user_errors(fn: F) -> F:
    """Print UserError as `error: ...` (one line per problem) and exit 2; Ctrl-C exits 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            for line in str(exc).splitlines():
                err_console.print(f"[bold red]error:[/] {line}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(code=UserError.exit_code) from None
        except Preempted as exc:  # SIGTERM: the checkpoint is written; a requeued --resume continues
            err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(code=PREEMPTED_EXIT_CODE) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; continue with `tunesmith run RECIPE --resume`.")
            raise typer.Exit(code=130) from None
        except Exception as exc:
            if not disk_full(exc):
                raise
            err_console.print(f"error: no space left on device ({exc}); free disk space (a finished run's "
                              "checkpoints/ can go) and run the command again (`tunesmith run` with --resume): "
                              "checkpoints are written atomically, so the last complete one is intact.",
                              markup=False, highlight=False, soft_wrap=True)  # fmt: skip
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


def disk_full(exc: BaseException) -> bool:
    """An OSError ENOSPC, or safetensors' own error for one (it is not an OSError)."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return type(exc).__name__ == "SafetensorError" and "No space left on device" in str(exc)


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("accelerate", "torch", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # transformers warns about the newly initialised head on every load: expected here (see models/loader.py)
    logging.getLogger("transformers").setLevel(logging.ERROR)


RecipeArg = typer.Argument(..., help="recipe YAML file", show_default=False)
OverridesArg = typer.Argument(None, help="dotted overrides, e.g. train.lr=1e-4 train.epochs=5")


@app.command("run")
@user_errors
def run_command(
    recipe: Path = RecipeArg,
    overrides: list[str] = OverridesArg,
    resume: bool = typer.Option(False, "--resume", help="continue the run from its latest checkpoint"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace a run already in the output directory"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    processes: int | None = typer.Option(
        None, "--processes", min=1, help="train in N processes (DDP via accelerate launch): train.processes=N"
    ),
) -> None:
    """Fine-tune a model as the recipe says; write runs/<name>/."""
    from tunesmith.config.loader import load_recipe
    from tunesmith.launch import maybe_launch

    setup_logging(quiet)
    overrides = [*(overrides or []), *([f"train.processes={processes}"] if processes else [])]
    loaded = load_recipe(recipe, overrides)
    flags = [f for f, on in (("--resume", resume), ("--overwrite", overwrite), ("--quiet", quiet)) if on]
    code = maybe_launch(loaded.train.processes, ["run", str(recipe), *overrides, *flags])
    if code is not None:  # ran in train.processes processes under accelerate launch
        raise typer.Exit(code=code)
    _run_and_summarise(loaded, resume=resume, overwrite=overwrite, quiet=quiet)


@app.command("learning-curve")
@user_errors
def learning_curve_command(
    recipe: Path = RecipeArg,
    overrides: list[str] = OverridesArg,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace a run already in the output directory"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Is there enough data? The run plus 1/8, 1/4, 1/2 of train; the gain from doubling the data
    (the same as `tunesmith run RECIPE eval.learning_curve=true`)."""
    from tunesmith.config.loader import load_recipe

    setup_logging(quiet)
    loaded = load_recipe(recipe, [*(overrides or []), "eval.learning_curve=true"])
    _run_and_summarise(loaded, resume=False, overwrite=overwrite, quiet=quiet)
    from tunesmith.tuning.learning_curve import LC_FILE, data_size_finding, read_summary

    console.print(data_size_finding(read_summary(loaded, LC_FILE)).title)


@app.command("demo")
@user_errors
def demo_command(
    overrides: list[str] = OverridesArg,
    task: str = typer.Option(
        "text-classification", "--task", help="text-classification (MiniLM) | causal-lm (SmolLM2 + LoRA)"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Fine-tune the packaged MiniLM on the packaged drug-review data (the embedded default);
    `--task causal-lm` adapts the packaged SmolLM2 to the reviews with LoRA."""
    from tunesmith.config.loader import apply_overrides, recipe_from_dict
    from tunesmith.demo import DEMO_RECIPE, lm_demo_recipe

    setup_logging(quiet)
    if task not in ("text-classification", "causal-lm", "image-classification"):
        raise UserError(
            f"--task: '{task}' has no demo; use text-classification, causal-lm or image-classification."
        )
    if task == "image-classification":  # EfficientNet-Lite0 on 2,000 real digits (tunesmith.data.image_demo)
        from tunesmith.data.image_demo import image_demo_recipe

        base = image_demo_recipe(Path("runs") / ".demo-image-data")
    else:
        base = (
            DEMO_RECIPE if task == "text-classification" else lm_demo_recipe(Path("runs") / ".demo-lm-data")
        )
    recipe = recipe_from_dict(apply_overrides(base, overrides or []), "demo recipe")
    _run_and_summarise(recipe, resume=False, overwrite=True, quiet=quiet)


def _run_and_summarise(recipe: Any, *, resume: bool, overwrite: bool, quiet: bool) -> None:
    from tunesmith.launch import is_main_process
    from tunesmith.run import run
    from tunesmith.tasks.registry import TASKS

    result = run(recipe, resume=resume, overwrite=overwrite, quiet=quiet)
    if not is_main_process():  # several processes: the main one reports
        return
    if result.already_finished:
        console.print(f"{result.run_dir} is finished; nothing to resume, nothing changed.", soft_wrap=True)
    m = result.metrics
    columns = TASKS[recipe.task].summary_columns
    table = Table(title=f"{recipe.output.name}: best epoch {m['best_epoch']} of {m['epochs_run']}")
    for column in ("split", *(title for _, title in columns)):
        table.add_column(column)
    for split in ("validation", "test"):
        if m.get(split):
            table.add_row(split, *(f"{m[split][key]:.4f}" for key, _ in columns))
    console.print(table)
    _print_lm_summary(result.run_dir, m)
    console.print(
        f"trainable parameters: {m['trainable_params']:,} of {m['total_params']:,} ({m['trainable_pct']:.2f}%)"
    )
    if m.get("stop_reason"):
        console.print(f"stopped: {m['stop_reason']}")
    from tunesmith.findings_view import print_findings

    print_findings(console, result.findings)  # title, evidence lines, fix, recipe patch
    console.print(f"outputs: {result.run_dir}")
    report = result.run_dir / "report.html"
    if report.exists():
        console.print(f"report:  {report}")


def _print_lm_summary(run_dir: Path, m: dict[str, Any]) -> None:
    """causal-lm: perplexity before -> after on validation and on the retain set, and the generations."""
    import json

    start, val = m.get("validation_start") or {}, m.get("validation") or {}
    if "perplexity" not in start or "perplexity" not in val:
        return
    console.print(f"held-out perplexity: {start['perplexity']:.2f} before -> {val['perplexity']:.2f} after")
    forgot = m.get("forgetting") or {}
    if forgot.get("metric") == "perplexity":
        console.print(f"retain-set perplexity ({forgot['retain']}): {forgot['before']['perplexity']:.2f} before "
                      f"-> {forgot['after']['perplexity']:.2f} after ({forgot['perplexity_increase']:+.1%})")  # fmt: skip
    generations = run_dir / "evaluation" / "generations.jsonl"
    for line in generations.read_text().splitlines() if generations.is_file() else []:
        g = json.loads(line)
        console.print(f"[bold]prompt:[/] {g['prompt']}", highlight=False)
        console.print(f"  before: {g['start'][:160]}", markup=False, highlight=False)
        console.print(f"  after:  {g['tuned'][:160]}", markup=False, highlight=False)


@config_app.command("show")
@user_errors
def config_show(recipe: Path = RecipeArg, overrides: list[str] = OverridesArg) -> None:
    """Print the resolved recipe with every default filled in."""
    from tunesmith.config.loader import load_recipe, recipe_to_yaml

    sys.stdout.write(recipe_to_yaml(load_recipe(recipe, overrides or [])))


@data_app.command("export-demo")
@user_errors
def export_demo(
    out_dir: Path = typer.Argument(Path("data"), help="where to write train.tsv and test.tsv"),
    task: str = typer.Option(
        "text-classification", "--task", help="text-classification | causal-lm | image-classification"
    ),
) -> None:
    """Write the packaged drug-review data (for examples/minimal.yaml); --task causal-lm writes the
    review corpus, instructions built from the reviews and a general-text retain set as JSON Lines."""
    from tunesmith.data.demo import export_demo_data
    from tunesmith.data.image_demo import export_image_demo
    from tunesmith.data.lm_demo import export_lm_demo_data

    exporters = {"text-classification": export_demo_data, "causal-lm": export_lm_demo_data,
                 "image-classification": export_image_demo}  # fmt: skip
    if task not in exporters:
        raise UserError(f"--task: unknown task '{task}'; use one of {', '.join(exporters)}.")
    for name, path in exporters[task](out_dir).items():
        console.print(f"{name}: {path}")


@app.command("predict")
@user_errors
def predict_command(
    run_dir: Path = typer.Argument(..., help="a finished run directory (or a model directory)"),
    texts: list[str] = typer.Argument(None, help="texts to classify"),
    file: Path | None = typer.Option(None, "--file", "-f", help="a file with one text per line"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    uncalibrated: bool = typer.Option(
        False, "--uncalibrated", help="raw probabilities, without the temperature in model/calibration.json"
    ),
) -> None:
    """Print the predicted label and the probabilities of every label."""
    import json

    from tunesmith.predict import predict, read_texts_file

    items = list(texts or []) + (read_texts_file(file) if file else [])
    results = predict(run_dir, items, calibrated=not uncalibrated)
    if as_json:
        for result in results:
            sys.stdout.write(json.dumps(result) + "\n")
        return
    table = Table()
    for column in ("text", "label", "probabilities"):
        table.add_column(column, overflow="fold")
    for r in results:
        probs = "  ".join(f"{label} {p:.3f}" for label, p in r["probs"].items())
        table.add_row(r["text"][:80], r["label"], probs)
    console.print(table)


@app.command("generate")
@user_errors
def generate_command(
    run_dir: Path = typer.Argument(..., help="a finished causal-lm run directory"),
    prompts: list[str] = typer.Argument(..., help="prompts to continue or answer"),
    chat: bool | None = typer.Option(
        None, "--chat/--no-chat", help="format with the chat template (default: when the tokenizer has one)"
    ),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, max=4096, help="tokens to generate"),
) -> None:
    """Greedy generations of a fine-tuned language model (deterministic)."""
    from tunesmith.predict import generate

    for prompt, text in zip(
        prompts, generate(run_dir, prompts, chat=chat, max_new_tokens=max_new_tokens), strict=True
    ):
        console.print(f"[bold]{prompt}[/]", highlight=False)
        console.print(text, markup=False, highlight=False)


@app.command("strategies")
@user_errors
def strategies_command() -> None:
    """List the fine-tuning strategies (strategy.name), what each trains, its options and a sensible lr."""
    from tunesmith.strategies.registry import describe_strategies

    for row in describe_strategies():
        console.print(
            f"{row['name']:<15} {row['description']}", soft_wrap=True, markup=False, highlight=False
        )
        options = f"options: {row['options']}; " if row["options"] else ""
        console.print(f"{'':<15} {options}suggested train.lr: {row['recommended_lr']}", soft_wrap=True,
                      markup=False, highlight=False, style="dim")  # fmt: skip


@app.command("export")
@user_errors
def export_command(
    run_dir: Path = typer.Argument(..., help="a finished run directory (or its model directory)"),
    out: Path = typer.Option(..., "--out", "-o", help="an empty or new directory to write the model to"),
    merge: bool = typer.Option(
        False, "--merge", help="fold LoRA / IA3 adapters into a plain model (no PEFT needed)"
    ),
    fmt: str = typer.Option("hf", "--format", help="hf (Hugging Face directory) or onnx (onnxruntime)"),
    int8: bool = typer.Option(False, "--int8", help="--format onnx: dynamic int8 quantisation"),
) -> None:
    """Write a run's model to a directory: as trained, merged into a plain Hugging Face model, or as ONNX."""
    if fmt not in ("hf", "onnx"):
        raise UserError(f"--format: must be hf or onnx; got {fmt!r}.")
    if int8 and fmt != "onnx":
        raise UserError("--int8 quantises an ONNX export; add --format onnx.")
    if fmt == "onnx":
        from tunesmith.onnx_export import export_run_onnx

        path, agreement = export_run_onnx(run_dir, out, int8=int8)
        console.print(f"model: {path} (onnxruntime agrees with PyTorch on {agreement:.1%})")
        return
    from tunesmith.export import export_model

    console.print(f"model: {export_model(run_dir, out, merge=merge)}")


def _register_modules() -> None:
    """Commands that live next to their feature (the doctor, the report)."""
    from tunesmith.audit.command import doctor
    from tunesmith.report.command import report

    app.command("doctor")(user_errors(doctor))
    app.command("report")(user_errors(report))
    from tunesmith.diagnosis.command import diagnose_command

    app.command("diagnose")(user_errors(diagnose_command))
    from tunesmith.hardware.command import plan

    app.command("plan")(user_errors(plan))
    from tunesmith.evaluation.suite.command import evaluate

    app.command("evaluate")(user_errors(evaluate))
    from tunesmith.tuning import commands as tuning

    for name, command in (("lr-find", tuning.lr_find), ("tune", tuning.tune), ("compare", tuning.compare)):
        app.command(name)(user_errors(command))
    from tunesmith.tuning.improve_command import improve

    app.command("improve")(user_errors(improve))


_register_modules()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
