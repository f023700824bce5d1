"""The retain set and the head that scores it on the model being fine-tuned.

The retained metric is measured through a head that does not train: the starting model's own
classification head when its checkpoint has one whose labels cover the retain labels (sequential
fine-tuning: one encoder, two heads), else a linear probe fitted once on the starting model's mean-pooled
features. Without a retain label column, the starting model's own predictions are the labels.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from tunesmith.config.schema import Recipe
from tunesmith.data.loaders import read_table
from tunesmith.errors import UserError
from tunesmith.evaluation.inference import Collate, Encoded
from tunesmith.strategies.blocks import find_blocks, unwrap_hf


@dataclass
class RetainData:
    path: str
    texts: list[str]
    label_names: list[str] | None  # None: labels come from the starting model's predictions
    raw_labels: list[str] | None


def read_retain(recipe: Recipe) -> RetainData:
    """Read and check forgetting.retain up front, so a bad file fails before the run directory exists."""
    cfg = recipe.forgetting
    assert cfg.retain is not None
    text = cfg.text or recipe.data.text
    try:
        table = read_table(cfg.retain, "retain", text, cfg.label or text)
    except UserError as exc:
        message = str(exc).replace("data.retain", "forgetting.retain").replace("data.text", "forgetting.text")
        raise UserError(message.replace("data.label", "forgetting.label")) from None
    frame = table.frame
    empty = frame.index[frame["text"].isna() | (frame["text"].astype(str).str.strip() == "")].tolist()
    if empty:
        raise UserError(f"forgetting.retain: {cfg.retain} has {len(empty)} rows without text (first: row {empty[0]}); "
                        "remove them.")  # fmt: skip
    if len(frame) < 2:
        raise UserError(f"forgetting.retain: {cfg.retain} needs at least 2 rows; got {len(frame)}.")
    texts = [str(t) for t in frame["text"]]
    if cfg.label is None:
        return RetainData(cfg.retain, texts, None, None)
    raw = [str(v) for v in frame["label"]]
    return RetainData(cfg.retain, texts, sorted(set(raw)), raw)


def checkpoint_head(model_dir: Path) -> tuple[list[str], dict[str, torch.Tensor]] | None:
    """(label names, head weights) when the starting checkpoint holds a trained classification head."""
    config = json.loads((model_dir / "config.json").read_text())
    id2label = config.get("id2label") or {}
    names = [id2label[k] for k in sorted(id2label, key=int)] if id2label else []
    heads = ("classifier.", "score.", "pre_classifier.")
    weights: dict[str, torch.Tensor] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                if key.startswith(heads):
                    weights[key] = handle.get_tensor(key)
    if not weights or not names or all(n.startswith("LABEL_") for n in names):
        return None
    return names, weights


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class RetainHead(nn.Module):
    """Retain-task logits for a batch, computed on the backbone of the model being fine-tuned."""

    def __init__(
        self, label_names: list[str], head: dict[str, nn.Module] | None, probe: nn.Linear | None
    ) -> None:
        super().__init__()
        self.label_names = label_names
        self.heads = nn.ModuleDict(head or {})
        self.probe = probe
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def kind(self) -> str:
        return "starting model's head" if len(self.heads) else "linear probe on the starting features"

    @contextmanager
    def _swapped(self, hf: nn.Module) -> Iterator[None]:
        saved = {name: getattr(hf, name) for name in self.heads}
        for name, module in self.heads.items():
            setattr(hf, name, module)
        try:
            yield
        finally:
            for name, module in saved.items():
                setattr(hf, name, module)

    def logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hf = unwrap_hf(model)
        if len(self.heads):
            with self._swapped(hf):
                return hf(**batch).logits.float()
        assert self.probe is not None
        out = find_blocks(hf).backbone(**batch)
        return self.probe(mean_pool(out[0].float(), batch["attention_mask"]))


def build_retain_head(
    model: nn.Module, label_names: list[str] | None, start: tuple[list[str], dict[str, torch.Tensor]] | None
) -> RetainHead:
    """The starting model's head (a copy of the current head architecture loaded with its weights), or a probe."""
    hf = unwrap_hf(model)
    if start is not None and (label_names is None or set(label_names) <= set(start[0])):
        names, weights = start
        heads: dict[str, nn.Module] = {}
        for name in find_blocks(hf).head_names:
            module = _original(getattr(hf, name))
            own = {k[len(name) + 1 :]: v for k, v in weights.items() if k.startswith(name + ".")}
            if own:
                heads[name] = _head_like(module, own)
        if heads:
            return RetainHead(names, heads, None)
    if label_names is None:
        raise UserError("forgetting.label: the starting model has no trained classification head whose predictions "
                        "could serve as labels; set forgetting.label to the retain file's label column.")  # fmt: skip
    width = int(hf.config.hidden_size)  # type: ignore[union-attr,arg-type]
    with torch.random.fork_rng(devices=[]):  # leave the run's random stream as it was
        probe = nn.Linear(width, len(label_names))
    return RetainHead(label_names, None, probe)


def _original(module: nn.Module) -> nn.Module:
    return getattr(module, "original_module", module)  # PEFT's ModulesToSaveWrapper keeps the original


def _head_like(module: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of `module` resized to the saved head's shapes, holding the saved weights."""
    head = copy.deepcopy(module)
    for name, tensor in weights.items():
        owner_name, _, leaf = name.rpartition(".")
        owner = head.get_submodule(owner_name) if owner_name else head
        setattr(
            owner, leaf, nn.Parameter(tensor.clone().to(getattr(owner, leaf).device), requires_grad=False)
        )
        if isinstance(owner, nn.Linear):
            owner.out_features, owner.in_features = owner.weight.shape
    return head


def batches(
    data: Encoded, size: int, collate: Collate, device: torch.device
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    for start in range(0, len(data), size):
        idx = list(range(start, min(start + size, len(data))))
        batch = collate([data.input_ids[i] for i in idx], [max(data.labels[i], 0) for i in idx])
        yield idx, {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict_retain(
    model: nn.Module, head: RetainHead, data: Encoded, collate: Collate, batch_size: int = 64
) -> np.ndarray:
    device = next(model.parameters()).device
    head.to(device)
    was_training = model.training
    model.eval()
    preds = np.zeros(len(data), dtype=np.int64)
    for idx, batch in batches(data, batch_size, collate, device):
        batch.pop("labels")
        preds[idx] = head.logits(model, batch).argmax(-1).cpu().numpy()
    model.train(was_training)
    return preds


def fit_probe(model: nn.Module, head: RetainHead, data: Encoded, collate: Collate, steps: int = 300) -> None:
    """Fit the probe once, on the starting model's (eval-mode) features: full-batch Adam, a little L2."""
    assert head.probe is not None
    device = next(model.parameters()).device
    hf = unwrap_hf(model)
    was_training = model.training
    model.eval()
    feats, labels = [], []
    with torch.no_grad():
        for _idx, batch in batches(data, 64, collate, device):
            y = batch.pop("labels")
            feats.append(mean_pool(find_blocks(hf).backbone(**batch)[0].float(), batch["attention_mask"]))
            labels.append(y)
    model.train(was_training)
    x, y = torch.cat(feats), torch.cat(labels)
    x = (x - x.mean(0)) / x.std(0).clamp(
        min=1e-6
    )  # standardise for the fit, folded back into the weights below
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = nn.Linear(x.shape[1], head.probe.out_features).to(device)
    opt = torch.optim.Adam(probe.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(probe(x), y).backward()
        opt.step()
    raw = torch.cat(feats)
    mu, sd = raw.mean(0), raw.std(0).clamp(min=1e-6)
    with torch.no_grad():
        head.probe.to(device)
        head.probe.weight.copy_(probe.weight / sd)
        head.probe.bias.copy_(probe.bias - (probe.weight * mu / sd).sum(1))
