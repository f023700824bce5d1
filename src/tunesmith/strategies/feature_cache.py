"""Features of a frozen backbone, computed once per example and reused: in memory and on disk.

An entry is keyed by the example's own token ids (what the model sees after tokenisation, truncation and
special tokens), so a changed text or a changed preprocessing setting can never hit a stale entry. The file
that holds the entries is named after a hash of the backbone's weights, its class and config, and the
precision, so a different or further-trained model never reads another model's features.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from transformers.utils import ModelOutput

log = logging.getLogger(__name__)
FORMAT = "1"
PER_TOKEN, PER_EXAMPLE = ("last_hidden_state",), ("pooler_output",)


@dataclass
class CachedOutput(ModelOutput):
    """What heads read from a backbone's output (BERT: [1] / pooler_output; GPT-2: last_hidden_state, cache)."""

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    cache: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None


def row_keys(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
) -> list[bytes]:
    """One key per row from its unpadded token ids (and segment ids), wherever the padding is."""
    ids, mask = input_ids.detach().cpu(), attention_mask.detach().cpu().bool()
    types = token_type_ids.detach().cpu() if token_type_ids is not None else None
    keys = []
    for i in range(ids.shape[0]):
        h = hashlib.blake2b(ids[i][mask[i]].numpy().tobytes(), digest_size=16)
        if types is not None and bool(types[i].any()):
            h.update(b"|" + types[i][mask[i]].numpy().tobytes())
        keys.append(h.digest())
    return keys


def weights_hash(module: nn.Module, extra: str = "") -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{FORMAT}|{type(module).__name__}|{extra}|".encode())
    config = getattr(module, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        h.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def place_rows(rows: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """[B, T, ...] with each row's cached token vectors at its real (unmasked) positions, zeros elsewhere."""
    flat = torch.cat(rows)
    out = flat.new_zeros((*mask.shape, *flat.shape[1:]))
    out[mask.bool()] = flat
    return out


class FeatureCache:
    """Replaces `backbone.forward` (an instance attribute, so parameter names and saving are unchanged)."""

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone
        self.original = backbone.forward
        self.entries: dict[bytes, dict[str, torch.Tensor]] = {}
        self.dirty = False
        self.hits = self.misses = 0
        backbone.forward = self.forward  # type: ignore[method-assign]

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if input_ids is not None and input_ids.is_floating_point():  # pixel_values of a vision backbone
            return self._images(input_ids, kwargs)
        if input_ids is None or any(kwargs.get(k) is not None for k in ("inputs_embeds", "position_ids")):
            return self.original(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs
            )
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        keys = row_keys(input_ids, mask, token_type_ids)
        missing = [i for i, k in enumerate(keys) if k not in self.entries]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            self._compute(missing, keys, input_ids, mask, token_type_ids, kwargs)
        device = input_ids.device
        found = [self.entries[k] for k in keys]
        fields = {n: place_rows([e[n].to(device) for e in found], mask) for n in PER_TOKEN if n in found[0]}
        fields |= {n: torch.stack([e[n].to(device) for e in found]) for n in PER_EXAMPLE if n in found[0]}
        return CachedOutput(**fields)

    def _compute(
        self, rows: list[int], keys: list[bytes], input_ids: torch.Tensor, mask: torch.Tensor,
        token_type_ids: torch.Tensor | None, kwargs: dict[str, Any],
    ) -> None:  # fmt: skip
        index = torch.tensor(rows, device=input_ids.device)
        sub = {"input_ids": input_ids[index], "attention_mask": mask[index]}
        if token_type_ids is not None:
            sub["token_type_ids"] = token_type_ids[index]
        # Features are the backbone's eval-mode output: dropout would make them a different sample each time.
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            out = self.original(**sub, **{k: v for k, v in kwargs.items() if k not in ("return_dict",)})
        self.backbone.train(was_training)
        sub_mask = sub["attention_mask"].bool()
        for j, i in enumerate(rows):
            entry = {n: out[n][j][sub_mask[j]].clone() for n in PER_TOKEN if out.get(n) is not None}
            entry |= {n: out[n][j].clone() for n in PER_EXAMPLE if out.get(n) is not None}
            self.entries[keys[i]] = entry
        self.dirty = True

    def _images(self, pixels: torch.Tensor, kwargs: dict[str, Any]) -> CachedOutput:
        """Images are keyed by their exact pixels: with data.augment on, only unaugmented batches (validation,
        test) hit the cache, and training batches are computed anew."""
        keys = [
            hashlib.blake2b(row.detach().cpu().numpy().tobytes(), digest_size=16).digest() for row in pixels
        ]
        missing = [i for i, k in enumerate(keys) if k not in self.entries]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            was_training = self.backbone.training
            self.backbone.eval()
            with torch.no_grad():
                out = self.original(pixels[torch.tensor(missing, device=pixels.device)])
            self.backbone.train(was_training)
            for j, i in enumerate(missing):
                self.entries[keys[i]] = {
                    n: out[n][j].clone() for n in PER_TOKEN + PER_EXAMPLE if out.get(n) is not None
                }
            self.dirty = True
        found = [self.entries[k] for k in keys]
        return CachedOutput(**{n: torch.stack([e[n].to(pixels.device) for e in found]) for n in found[0]})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"{k.hex()}.{n}": t.detach().cpu().contiguous()
            for k, e in self.entries.items()
            for n, t in e.items()
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "rows": json.dumps(len(self.entries))})
        os.replace(tmp, path)
        self.dirty = False

    def load(self, path: Path) -> int:
        with safe_open(str(path), "pt") as handle:
            if (handle.metadata() or {}).get("format") != FORMAT:
                return 0
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                key, field = name.split(".", 1)
                self.entries.setdefault(bytes.fromhex(key), {})[field] = handle.get_tensor(name)
        return len(self.entries)
