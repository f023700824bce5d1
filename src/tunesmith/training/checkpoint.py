"""Atomic checkpoints: written to a temporary directory, fsynced, `manifest.json` last, then renamed.

A checkpoint holds everything needed to continue a run bit for bit: model, optimizer and scheduler state,
every RNG state, the position in the data order and the callbacks' state. Tensors go to safetensors and
everything else to JSON, so loading a checkpoint never unpickles anything.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import _remove_duplicate_names, load_file, load_model, save_file

from tunesmith.errors import UserError

CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: the task's epoch sums in task_state.safetensors
# Fault injection for the crash tests: seconds to sleep between writing the files and the manifest.
DELAY_ENV = "TUNESMITH_FAULT_CHECKPOINT_DELAY"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data))


def _optimizer_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (for safetensors) and plain values (for JSON)."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for pid, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value.detach()  # take_snapshot copies it to the host
            else:
                plain["state"].setdefault(str(pid), {})[key] = value
    return tensors, plain


def _optimizer_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(pid): dict(values) for pid, values in plain["state"].items()}
    for name, tensor in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = tensor
    return {"state": state, "param_groups": plain["param_groups"]}


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    plain = {
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }
    return tensors, plain


def restore_rng(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))


@dataclass
class Snapshot:
    """A checkpoint's content, copied to host memory at a step boundary: the live model, optimizer and
    sums may change while it is written (in a background thread, see checkpoint_async)."""

    step: int
    tensors: dict[str, dict[str, torch.Tensor]]  # file stem -> tensors
    model_metadata: dict[str, str] | None  # save_model's record of the tied weights it left out
    json: dict[str, str]  # file stem -> serialised JSON


def _host_copy(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous copies in CPU memory (`.cpu()` alone would alias a CPU tensor)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}


def take_snapshot(
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    callbacks: dict[str, Any],
    best_weights: dict[str, torch.Tensor] | None,
    task_state: dict[str, torch.Tensor] | None = None,
) -> Snapshot:
    """Everything a checkpoint holds, frozen now (RNG states included): JSON serialised, tensors copied."""
    weights = model.state_dict()
    metadata: dict[str, str] | None = None
    for kept, removed in _remove_duplicate_names(weights).items():  # tied weights: as save_model does
        for name in removed:
            metadata = {**(metadata or {}), name: kept}
            del weights[name]
    opt_tensors, opt_plain = _optimizer_tensors(optimizer.state_dict())
    rng_tensors, rng_plain = capture_rng()
    tensors = {
        "model": _host_copy(weights), "optimizer": _host_copy(opt_tensors), "rng": _host_copy(rng_tensors),
        "task_state": _host_copy(task_state or {}),
    }  # fmt: skip
    if best_weights is not None:  # already a host snapshot that the loop replaces, never mutates
        tensors["best_model"] = {k: v.contiguous() for k, v in best_weights.items()}
    plain = {"optimizer": opt_plain, "scheduler": scheduler.state_dict(), "rng": rng_plain, "state": state,
             "callbacks": callbacks}  # fmt: skip
    return Snapshot(step, tensors, metadata, {k: json.dumps(v) for k, v in plain.items()})


def write_snapshot(run_dir: Path, snapshot: Snapshot, keep: int) -> Path:
    """Write to a temporary directory, fsync every file, manifest.json last, rename: all or nothing."""
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    step = snapshot.step
    tmp = root / f".tmp-step-{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for stem, tensors in snapshot.tensors.items():
        meta = snapshot.model_metadata if stem == "model" else None
        save_file(tensors, str(tmp / f"{stem}.safetensors"), metadata=meta)
    for stem, text in snapshot.json.items():
        (tmp / f"{stem}.json").write_text(text)
    if os.environ.get(DELAY_ENV):
        time.sleep(float(os.environ[DELAY_ENV]))
    files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
    for name in files:
        _fsync_file(tmp / name)
    _write_json(tmp / MANIFEST, {"format": FORMAT_VERSION, "step": step, "files": files})
    _fsync_file(tmp / MANIFEST)
    _fsync_dir(tmp)
    final = root / f"step-{step}"
    if final.exists():  # the same step written again after a resume: replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    _prune(root, keep)
    return final


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    callbacks: dict[str, Any],
    best_weights: dict[str, torch.Tensor] | None,
    keep: int,
    task_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Snapshot and write in the caller's thread."""
    snapshot = take_snapshot(
        step, model=model, optimizer=optimizer, scheduler=scheduler, state=state, callbacks=callbacks,
        best_weights=best_weights, task_state=task_state,
    )  # fmt: skip
    return write_snapshot(run_dir, snapshot, keep)


def _complete(path: Path) -> bool:
    manifest = path / MANIFEST
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return False
    return all((path / n).is_file() and (path / n).stat().st_size == size for n, size in files.items())


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. Temporary or damaged directories are ignored."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and p.name[5:].isdigit() and _complete(p)]
    return sorted(found, key=lambda p: int(p.name[5:]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def remove_temporary(run_dir: Path) -> None:
    """Delete checkpoint writes that a crash interrupted."""
    for tmp in (run_dir / CHECKPOINTS).glob(".tmp-step-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def discard_checkpoints(run_dir: Path) -> None:
    """Delete a finished run's checkpoints. For the many runs of a sweep (tune trials, compare and improve
    units), which are reused from metrics.json and keep model/: a checkpoint only resumes an unfinished run,
    and with its optimizer state it is several times the model's size (about 350 MB each for MiniLM)."""
    shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)


def _prune(root: Path, keep: int) -> None:
    for old in list_checkpoints(root.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(
    path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, torch.Tensor] | None, dict[str, torch.Tensor]]:
    """Restore model, optimizer, scheduler and RNG in place; return (state, callbacks, best_weights,
    the task's epoch sums)."""
    version = json.loads((path / MANIFEST).read_text()).get("format")
    if version != FORMAT_VERSION:
        raise UserError(
            f"--resume: {path} was written by another tunesmith version (checkpoint format {version}, this "
            f"one reads {FORMAT_VERSION}); start the run again with --overwrite."
        )
    load_model(model, str(path / "model.safetensors"))
    plain = json.loads((path / "optimizer.json").read_text())
    optimizer.load_state_dict(_optimizer_state(load_file(str(path / "optimizer.safetensors")), plain))
    scheduler.load_state_dict(json.loads((path / "scheduler.json").read_text()))
    restore_rng(load_file(str(path / "rng.safetensors")), json.loads((path / "rng.json").read_text()))
    best_file = path / "best_model.safetensors"
    best = load_file(str(best_file)) if best_file.is_file() else None
    state = json.loads((path / "state.json").read_text())
    callbacks = json.loads((path / "callbacks.json").read_text())
    return state, callbacks, best, load_file(str(path / "task_state.safetensors"))
