"""Latency, throughput and export: batch-1 p50/p95/p99 over real evaluation texts, throughput at batch 1/8/32,
size on disk and macro-F1 for PyTorch fp32, PyTorch dynamic int8, ONNX Runtime fp32 and int8 (and bf16 where
the hardware runs it fast), next to the anchor `transformers.pipeline("text-classification")`."""

from __future__ import annotations

import copy
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from tunesmith.evaluation.suite.context import Context, Result
from tunesmith.evaluation.suite.predictor import Predictor, text_predictor
from tunesmith.findings import Finding
from tunesmith.tuning.stats import classification_score

LATENCY_TEXTS = 30  # batch-1 calls timed per variant (after WARMUP)
WARMUP = 3
THROUGHPUT_TEXTS = 32  # texts timed at batch 8 (batch 32 is timed on the whole evaluation set, batch 1 above)
SPEEDUP = 1.5
MAX_F1_LOSS = 0.005


def _time_batch1(predict: Callable[[list[str]], Any], texts: list[str]) -> dict[str, float]:
    for text in texts[:WARMUP]:
        predict([text])
    times = []
    for text in texts:
        start = time.perf_counter()
        predict([text])
        times.append((time.perf_counter() - start) * 1000.0)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "mean_ms": float(np.mean(times)),
            "calls": len(times)}  # fmt: skip


def _timed(predict: Predictor, texts: list[str]) -> tuple[np.ndarray, float]:
    """(probabilities, texts per second), after a warm-up call on the first few texts."""
    predict(texts[:WARMUP])
    start = time.perf_counter()
    probs = predict(texts)
    return probs, len(texts) / max(time.perf_counter() - start, 1e-9)


class PeakRss:
    """The process's resident memory while a block runs, sampled every few milliseconds by a thread.

    ru_maxrss only ever grows, so it cannot tell one variant's peak from the previous one's; sampling the
    current RSS can. On CUDA the allocator's own peak counter is exact and is used instead."""

    def __init__(self, device: torch.device, every_s: float = 0.005) -> None:
        self.device, self.every_s = device, every_s
        self.start_mb = self.peak_mb = 0.0
        self._stop = threading.Event()

    def _rss_mb(self) -> float:
        return float(psutil.Process().memory_info().rss) / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, self._rss_mb())

    def __enter__(self) -> PeakRss:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_mb = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        self.start_mb = self.peak_mb = self._rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())


def _measure(make: Callable[[int], Predictor], data_texts: list[str], latency_texts: list[str],
             pool: list[str], device: torch.device) -> dict[str, Any]:  # fmt: skip
    """One variant: its predictions on the evaluation set (timed: throughput at batch 32), throughput at
    batch 8, batch-1 latency (whose mean gives throughput at batch 1), and its memory while it predicts."""
    with PeakRss(device) as memory:
        probs, at32 = _timed(make(32), data_texts)
        _, at8 = _timed(make(8), pool)
        latency = _time_batch1(make(1), latency_texts)
    return {**latency, "throughput": {"1": 1000.0 / max(latency["mean_ms"], 1e-9), "8": at8, "32": at32},
            "peak_memory_mb": memory.peak_mb, "working_memory_mb": max(0.0, memory.peak_mb - memory.start_mb),
            "_probs": probs}  # fmt: skip


def _size_mb(path: Path) -> float:
    return os.path.getsize(path) / 2**20


def _torch_size(model: torch.nn.Module, folder: Path, name: str) -> float:
    path = folder / f"{name}.pt"
    torch.save(model.state_dict(), path)
    return _size_mb(path)


def check_latency(ctx: Context) -> tuple[Result, list[Finding]]:
    handle = ctx.handle
    if handle.model is None or handle.tokenizer is None:
        return {"skipped": "the model handle has no network to time (this task's predict function only)"}, []
    import onnxruntime  # noqa: F401  (ImportError -> the suite notes the missing extra)

    from tunesmith.onnx_export import export_onnx_file, onnx_predictor, onnx_session, quantize_onnx_file
    from tunesmith.training.precision import resolve_precision

    data, k, tok, max_len = ctx.eval_set, len(ctx.labels), handle.tokenizer, handle.max_length
    texts = [t for t in data.texts if t][:LATENCY_TEXTS] or ["example"]
    pool = (data.texts * (THROUGHPUT_TEXTS // max(len(data.texts), 1) + 1))[:THROUGHPUT_TEXTS]
    device = next(handle.model.parameters()).device
    fp32 = copy.deepcopy(handle.model).float().eval()
    torch_variants: dict[str, torch.nn.Module] = {"pytorch-fp32": fp32}
    if device.type == "cpu":  # dynamic int8 kernels are CPU kernels
        with warnings.catch_warnings():  # torch's notice that quantized tensors move to torchao
            warnings.simplefilter("ignore")
            torch_variants["pytorch-int8"] = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8
            )
    if resolve_precision("auto") == "bf16" or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        torch_variants["pytorch-bf16"] = copy.deepcopy(fp32).to(torch.bfloat16)
    variants: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        makers: dict[str, Callable[[int], Predictor]] = {}
        sizes: dict[str, float] = {}
        for name, model in torch_variants.items():
            makers[name] = lambda b, m=model: text_predictor(m, tok, max_len, b)  # type: ignore[misc]
            sizes[name] = _torch_size(model, tmp, name)
        failed: list[dict[str, Any]] = []
        for name in ("onnx-fp32", "onnx-int8"):
            try:  # one export, quantised for int8; one session per variant, shared by its batch sizes
                path = tmp / f"{name}.onnx"
                if name == "onnx-fp32":
                    export_onnx_file(fp32, tok, path)
                else:
                    quantize_onnx_file(tmp / "onnx-fp32.onnx", path)
                session = onnx_session(path)
            except Exception as exc:  # an export this architecture does not survive: recorded, not fatal
                failed.append({"name": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
                continue
            makers[name] = lambda b, p=path, s=session: onnx_predictor(p, tok, max_len, b, s)  # type: ignore[misc]
            sizes[name] = _size_mb(path)
        for name, make in makers.items():
            try:
                measured = _measure(make, data.texts, texts, pool, device)
            except Exception as exc:
                if name.startswith("pytorch"):
                    raise
                failed.append({"name": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
                continue
            pred = measured.pop("_probs").argmax(axis=1)
            variants.append({"name": name, **measured, "size_mb": sizes[name], "_pred": pred,
                             "macro_f1": float(classification_score(data.labels, pred, k, "macro_f1")[0])})  # fmt: skip
    base_pred = variants[0]["_pred"]
    for v in variants:
        v["agreement"] = float(np.mean(v.pop("_pred") == base_pred))
    anchor = _pipeline_anchor(fp32, tok, max_len, texts)
    result: Result = {"failed": failed, "device": str(device), "split": data.name, "n": len(data), "latency_texts": len(texts),
                      "variants": variants, "anchor": anchor,
                      "peak_memory_mb": _peak_memory_mb(device)}  # fmt: skip
    return result, _findings(variants, ctx)


def _pipeline_anchor(
    model: torch.nn.Module, tokenizer: Any, max_len: int, texts: list[str]
) -> dict[str, Any]:
    from transformers import pipeline

    device = next(model.parameters()).device
    clf = pipeline("text-classification", model=model, tokenizer=tokenizer, device=device)  # type: ignore[call-overload]
    timing = _time_batch1(lambda batch: clf(batch, truncation=True, max_length=max_len), texts)
    return {"name": "transformers.pipeline", **timing}


def _peak_memory_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB; the whole process


def _findings(variants: list[dict[str, Any]], ctx: Context) -> list[Finding]:
    base = variants[0]
    good = [v for v in variants[1:] if v["p50_ms"] > 0 and base["p50_ms"] / v["p50_ms"] >= SPEEDUP
            and base["macro_f1"] - v["macro_f1"] <= MAX_F1_LOSS]  # fmt: skip
    if not good:
        return []
    best = min(good, key=lambda v: v["p50_ms"])
    command = "tunesmith export RUN_DIR --format onnx" + (" --int8" if best["name"] == "onnx-int8" else "")
    if best["name"].startswith("pytorch"):
        command = f"load the model and apply {best['name'].split('-')[1]} (see evaluation/latency.json)"
    return [Finding(
        id="evaluation.latency", stage="evaluation", severity="info",
        title=f"{best['name']} is {base['p50_ms'] / best['p50_ms']:.1f}x faster at batch 1 "
              f"({best['p50_ms']:.1f} vs {base['p50_ms']:.1f} ms p50) with macro-F1 {best['macro_f1']:.3f} vs "
              f"{base['macro_f1']:.3f}",
        evidence={"variant": best["name"], "p50_ms": best["p50_ms"], "fp32_p50_ms": base["p50_ms"],
                  "macro_f1": best["macro_f1"], "fp32_macro_f1": base["macro_f1"], "split": ctx.eval_set.name},
        recommendation=f"Serve {best['name']}: {command}.",
    )]  # fmt: skip
