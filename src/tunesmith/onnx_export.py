"""`tunesmith export RUN_DIR --format onnx [--int8]`: a model plain onnxruntime serves, checked at export.

The directory holds model.onnx (inputs input_ids, attention_mask [, token_type_ids]; output logits), the
tokenizer (tokenizer.json loads with the `tokenizers` package alone), labels.json, calibration.json when
the run fitted a temperature, and a README with the serving code. Export fails (and writes nothing) unless
onnxruntime's predictions agree with PyTorch's on at least 99% of the run's evaluation texts.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesmith.errors import UserError

MIN_AGREEMENT = 0.99
OPSET = 17
SERVE = """import json, numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
tok = Tokenizer.from_file("tokenizer.json"); tok.enable_truncation({max_length})
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
labels = json.load(open("labels.json"))["id2label"]
enc = tok.encode("the text to classify")
feed = {{"input_ids": np.array([enc.ids]), "attention_mask": np.array([enc.attention_mask])}}
if "token_type_ids" in [i.name for i in session.get_inputs()]:
    feed["token_type_ids"] = np.array([enc.type_ids])
print(labels[str(int(session.run(["logits"], feed)[0].argmax()))])
"""


class _Logits(torch.nn.Module):
    """The classifier with positional inputs and a plain logits output (what the exporter traces)."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        kwargs = dict(zip(self.names, inputs, strict=True))
        if "token_type_ids" not in kwargs and _takes_token_types(self.model):
            # else BERT slices a [1, max_len] buffer, which the tracer freezes to the sample's shape
            kwargs["token_type_ids"] = torch.zeros_like(kwargs["input_ids"])
        return self.model(**kwargs).logits  # type: ignore[no-any-return]


def _takes_token_types(model: torch.nn.Module) -> bool:
    import inspect

    return "token_type_ids" in inspect.signature(model.forward).parameters


def input_names(tokenizer: Any) -> list[str]:
    names = ["input_ids", "attention_mask"]
    return names + (["token_type_ids"] if "token_type_ids" in tokenizer.model_input_names else [])


def export_onnx_file(model: torch.nn.Module, tokenizer: Any, path: Path, *, int8: bool = False) -> Path:
    """Write `model` (a sequence classifier, any device) as ONNX with dynamic batch and length axes."""
    names = input_names(tokenizer)
    cpu = copy.deepcopy(model).float().cpu().eval()
    sample = tokenizer(["a short example", "a second, slightly longer example text"], padding=True,
                       return_tensors="pt")  # fmt: skip
    args = tuple(sample[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    fp32 = path.with_name(path.stem + ".fp32.onnx") if int8 else path
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shapes: the agreement check is the real test
        torch.onnx.export(_Logits(cpu, names), args, str(fp32), input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)  # fmt: skip
    if int8:
        quantize_onnx_file(fp32, path)
        fp32.unlink()
    return path


def quantize_onnx_file(fp32: Path, path: Path) -> Path:
    """Write `path`: the fp32 ONNX file `fp32` with int8 weights (ONNX Runtime dynamic quantisation)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "consider pre-processing" advice on every call
    try:
        quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
    finally:
        quiet.setLevel(level)
    return path


def onnx_session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_predictor(path: Path, tokenizer: Any, max_length: int, batch_size: int = 32, session: Any = None):  # type: ignore[no-untyped-def]
    """texts -> probabilities through onnxruntime (CPU), the same shape as the suite's Predictor: batched
    by length like the PyTorch predictor, so both pad alike; input order kept. `session` reuses a loaded one."""
    session = session if session is not None else onnx_session(path)
    names = [i.name for i in session.get_inputs()]

    from tunesmith.evaluation.suite.predictor import length_batches

    def predict(texts: list[str]) -> np.ndarray:
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        for ids in length_batches(texts, batch_size):
            batch = tokenizer([texts[i] for i in ids], truncation=True, max_length=max_length, padding=True,
                              return_tensors="np")  # fmt: skip
            logits = session.run(["logits"], {n: batch[n].astype(np.int64) for n in names})[0]
            logits = logits - logits.max(axis=1, keepdims=True)
            e = np.exp(logits)
            for i, row in zip(ids, e / e.sum(axis=1, keepdims=True), strict=True):
                out[i] = row
        return np.stack(out) if texts else np.zeros((0, 0))

    return predict


def _check_texts(run_dir: Path, limit: int = 200) -> list[str]:
    texts: list[str] = []
    for split in ("test", "validation"):
        path = run_dir / "predictions" / f"{split}.jsonl"
        if path.is_file():
            texts += [
                json.loads(line)["text"]
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
    return texts[:limit]


def export_run_onnx(run_dir: Path, out_dir: Path, *, int8: bool) -> tuple[Path, float]:
    """Export a finished run's model to `out_dir`; returns (directory, agreement with PyTorch)."""
    from tunesmith.evaluation.suite.predictor import handle_for_run

    out_dir = out_dir.expanduser().resolve()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"--out {out_dir} is not empty; choose a new directory.")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UserError(
            "--format onnx needs onnx and onnxruntime: pip install onnx onnxruntime (or make setup)."
        ) from None
    handle = handle_for_run(run_dir)
    texts = _check_texts(run_dir) or ["a short example", "another example"]
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        path = export_onnx_file(handle.model, handle.tokenizer, tmp / "model.onnx", int8=int8)  # type: ignore[arg-type]
        try:
            ours = onnx_predictor(path, handle.tokenizer, handle.max_length, batch_size=1)(texts).argmax(
                axis=1
            )
        except Exception as exc:  # onnxruntime rejects the graph: this architecture does not export
            raise UserError(
                f"export --format onnx: onnxruntime cannot run the exported model ({type(exc).__name__}: "
                f"{str(exc)[:200]}); nothing written. Export with --format hf instead."
            ) from exc
        agreement = float(np.mean(ours == handle.predict(texts).argmax(axis=1)))
        if agreement < MIN_AGREEMENT:
            raise UserError(f"export --format onnx{' --int8' if int8 else ''}: onnxruntime agrees with PyTorch on "
                            f"{agreement:.1%} of {len(texts)} texts (< {MIN_AGREEMENT:.0%}); nothing written. "
                            f"{'Export without --int8.' if int8 else 'Report this model.'}")  # fmt: skip
        handle.tokenizer.save_pretrained(tmp)
        assert handle.model_dir is not None
        for name in ("labels.json", "calibration.json"):
            if (handle.model_dir / name).is_file():
                shutil.copy2(handle.model_dir / name, tmp / name)
        (tmp / "README.md").write_text(
            f"# ONNX export of {run_dir.name}\n\n{'Dynamic int8' if int8 else 'fp32'}, opset {OPSET}; onnxruntime "
            f"agreed with PyTorch on {agreement:.1%} of {len(texts)} texts.\n\n```python\n"
            + SERVE.format(max_length=handle.max_length)
            + "```\n"
        )
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir, agreement
