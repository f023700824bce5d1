"""Per-layer gradient norms and update/weight ratios, added to the logged step records of history.jsonl.

Keys added on logged steps: ``grad_norm/<layer>`` (measured after backward, before clipping), the global
``grad_norm`` when the loop did not measure one (``train.grad_clip: null``) and, on the
first logged step of every ``train.monitor_every`` interval, ``update_ratio/<layer>`` = ||w_after - w_before||
/ ||w_before|| across that optimizer step. Layers are ``embeddings``, ``block.N`` (each transformer block) and
``head`` (everything else that trains: pooler, final norm, classifier, adapters outside blocks). When the
trainable set changes during training (progressive unfreezing), the layers are indexed again.

Keys added to epoch records: ``val_loss_ref_epoch``, the epoch with the lowest validation loss so far, and
``val_loss_paired_se``, the standard error of the per-example differences between this epoch's validation
losses and that epoch's. Both evaluations use the same examples, so this paired error, not the error of either
mean alone, is the noise a rise in validation loss must be judged against (diagnosis: overfitting).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import torch

from tunesmith.training.callbacks.base import Callback

if TYPE_CHECKING:
    from tunesmith.training.callbacks.base import TrainContext

# BERT `encoder.layer.N.`, GPT-2 `h.N.`, Llama `layers.N.`, others `blocks.N.` / T5 `block.N.`.
BLOCK_PATTERN = re.compile(r"(?:^|\.)(?:layer|layers|h|blocks|block)\.(\d+)\.")
EMBEDDING_PATTERN = re.compile(r"(?:^|\.)(?:embeddings?|embed_tokens|embed_positions|wte|wpe)(?:\.|$)")


def layer_of(name: str) -> str:
    """Layer group of a parameter name: ``embeddings``, ``block.N`` (``decoder.block.N``) or ``head``."""
    match = BLOCK_PATTERN.search(name)
    if match:
        prefix = "decoder." if "decoder" in name[: match.start()] else ""
        return f"{prefix}block.{int(match.group(1))}"
    if EMBEDDING_PATTERN.search(name):
        return "embeddings"
    return "head"


def _layer_sort_key(layer: str) -> tuple[int, int, int]:
    if layer == "embeddings":
        return (0, 0, 0)
    if layer == "head":
        return (2, 0, 0)
    return (1, int(layer.startswith("decoder.")), int(layer.rsplit(".", 1)[1]))


def _group_norms(norms: list[torch.Tensor], index: torch.Tensor, groups: int) -> torch.Tensor:
    """sqrt(sum of squared per-parameter norms) per layer group, still on the device."""
    squares = torch.stack(norms).float().square()
    return torch.zeros(groups, device=squares.device).index_add_(0, index.to(squares.device), squares).sqrt()


class GradientMonitor(Callback):
    """Measures per-layer gradient norms on logged steps and update/weight ratios every `monitor_every` steps.

    Cost: one vector norm per trainable parameter and a single device-to-host transfer, only on logged
    steps; a copy of the trainable weights only on update-ratio steps.
    """

    name = "gradient_monitor"

    def __init__(self, log_every: int | None = None, monitor_every: int | None = None) -> None:
        self.log_every = log_every
        self.monitor_every = monitor_every
        self.last_ratio_step = 0  # step of the last update-ratio measurement (checkpointed)
        self._params: list[torch.nn.Parameter] = []
        self._layers: list[str] = []
        self._positions: list[int] = []
        self._index = torch.zeros(0, dtype=torch.long)
        self._grad_norms: torch.Tensor | None = None  # pending measurement of the step in progress
        self._grad_present: list[bool] = []
        self._snapshot: list[torch.Tensor] | None = None
        self._snapshot_step = 0
        self._model: torch.nn.Module | None = None
        self.ref_epoch: int | None = (
            None  # epoch (1-based) of the lowest validation loss so far (checkpointed)
        )
        self.ref_losses: list[float] = []  # its per-example validation losses (checkpointed)

    def on_train_start(self, ctx: TrainContext) -> None:
        if self.log_every is None:
            self.log_every = ctx.recipe.train.log_every
        if self.monitor_every is None:
            self.monitor_every = ctx.recipe.train.monitor_every
        self.bind(ctx.model)

    def bind(self, model: torch.nn.Module) -> None:
        """Index the trainable parameters by layer group; call again when the trainable set changes."""
        self._model = model
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._layers = sorted({layer_of(n) for n, _ in named}, key=_layer_sort_key)
        position = {layer: i for i, layer in enumerate(self._layers)}
        self._params = [p for _, p in named]
        self._positions = [position[layer_of(n)] for n, _ in named]
        self._index = torch.tensor(self._positions, dtype=torch.long)

    # The loop passes ctx.step = optimizer steps done; the step being taken is ctx.step + 1.
    def _is_logged(self, step: int) -> bool:
        return self.log_every is not None and step % self.log_every == 0

    def _ratio_due(self, step: int) -> bool:
        every = self.monitor_every or 0
        return every > 0 and self._is_logged(step) and step // every > self.last_ratio_step // every

    def on_after_backward(self, ctx: TrainContext) -> None:
        step = ctx.step + 1
        if not self._is_logged(step):
            return
        if self._model is not None and self._trainable_changed(self._model):
            self.bind(self._model)
        if not self._params:
            return
        # Parameters trainable but unused in this step (e.g. a frozen branch) have no gradient: report 0.
        grads = [p.grad if p.grad is not None else torch.zeros((), device=p.device) for p in self._params]
        norms = _group_norms([torch.linalg.vector_norm(g) for g in grads], self._index, len(self._layers))
        # Under fp16 the gradients still carry the loss scale here (clipping unscales them later).
        scaler = getattr(getattr(ctx, "accelerator", None), "scaler", None)
        if scaler is not None and scaler.is_enabled():
            norms = norms / scaler.get_scale()
        self._grad_norms = norms
        with_grad = {i for i, p in zip(self._positions, self._params, strict=True) if p.grad is not None}
        self._grad_present = [i in with_grad for i in range(len(self._layers))]
        if self._ratio_due(step):
            with torch.no_grad():
                self._snapshot = [p.detach().clone() for p in self._params]
            self._snapshot_step = step

    def on_step_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        grad_norms, present, snapshot = self._grad_norms, self._grad_present, self._snapshot
        self._grad_norms, self._snapshot = None, None
        if not record or grad_norms is None:
            return
        values = [grad_norms]
        if snapshot is not None:
            with torch.no_grad():
                deltas = [
                    torch.linalg.vector_norm(p.detach() - s)
                    for p, s in zip(self._params, snapshot, strict=True)
                ]
                weights = [torch.linalg.vector_norm(s) for s in snapshot]
            groups = len(self._layers)
            delta = _group_norms(deltas, self._index, groups)
            weight = _group_norms(weights, self._index, groups)
            values.append(delta / weight.clamp_min(torch.finfo(torch.float32).tiny))
            self.last_ratio_step = self._snapshot_step
        host = torch.stack([v.to(grad_norms.device) for v in values]).tolist()  # the one transfer
        if record.get("grad_norm") is None:  # no clipping: the loop measured no global norm
            record["grad_norm"] = float(sum(v * v for v in host[0]) ** 0.5)
        for layer, norm, has_grad in zip(self._layers, host[0], present, strict=True):
            if has_grad:
                record[f"grad_norm/{layer}"] = float(norm)
        if len(host) > 1:
            for layer, ratio in zip(self._layers, host[1], strict=True):
                record[f"update_ratio/{layer}"] = float(ratio)

    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None:
        losses = ctx.extra.get("val_losses")
        if losses is None or len(losses) == 0:
            return
        current = [float(v) for v in losses]
        mean = sum(current) / len(current)
        if self.ref_epoch is not None and len(self.ref_losses) == len(current) and len(current) > 1:
            diffs = [a - b for a, b in zip(current, self.ref_losses, strict=True)]
            centre = sum(diffs) / len(diffs)
            variance = sum((d - centre) ** 2 for d in diffs) / (len(diffs) - 1)
            record["val_loss_ref_epoch"] = self.ref_epoch
            record["val_loss_paired_se"] = math.sqrt(variance / len(diffs))
        reference = sum(self.ref_losses) / len(self.ref_losses) if self.ref_losses else math.inf
        if math.isfinite(mean) and mean < reference:
            self.ref_epoch, self.ref_losses = int(record.get("epoch", ctx.epoch + 1)), current

    def _trainable_changed(self, model: torch.nn.Module) -> bool:
        return sum(1 for p in model.parameters() if p.requires_grad) != len(self._params)

    @property
    def layers(self) -> list[str]:
        return list(self._layers)

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_ratio_step": self.last_ratio_step,
            "ref_epoch": self.ref_epoch,
            "ref_losses": self.ref_losses,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_ratio_step = int(state.get("last_ratio_step", 0))
        self.ref_epoch = state.get("ref_epoch")
        self.ref_losses = [float(v) for v in state.get("ref_losses", [])]
