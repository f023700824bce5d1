"""The causal-LM loss, computing logits only on the tokens that carry loss.

SmolLM2's output layer is 576 x 49,152: on every position it costs about a fifth of the forward pass and a
batch x length x 49,152 float tensor (200 MB for 8 x 128), which the softmax of the loss then reads and
writes several times. Prompt tokens (loss masked), padding and each example's last position need none of
it. transformers >= 5 models take `logits_to_keep` as a boolean (batch, length) mask and return logits for
the kept positions only, flattened to (kept, vocabulary), through the model's own forward (so DDP, autocast
and any final logit scaling still apply). Models that do not (an older architecture, PEFT prompt learning,
whose virtual tokens shift the positions) get the full logits as before; both give the same numbers.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

from tunesmith.data.lm import IGNORE

_SUPPORT: dict[type, bool] = {}


def keeps_masked_logits(model: torch.nn.Module) -> bool:
    """Whether `model(..., logits_to_keep=<bool mask>)` returns the kept positions' logits, flattened."""
    inner: Any = getattr(model, "module", model)  # DDP / FSDP wrappers hold the model as .module
    peft_config = getattr(inner, "active_peft_config", None)
    if peft_config is not None:
        if peft_config.is_prompt_learning:  # virtual tokens prepended: positions shift
            return False
        inner = inner.get_base_model()
    kind = type(inner)
    if kind not in _SUPPORT:
        forward = getattr(inner, "forward", None)
        try:
            takes = forward is not None and "logits_to_keep" in inspect.signature(forward).parameters
        except (TypeError, ValueError):
            takes = False
        try:
            from transformers.modeling_utils import slice_logits_to_keep

            probe = slice_logits_to_keep(torch.zeros(1, 2, 1), torch.tensor([[True, False]]))
            mask_aware = tuple(probe.shape) == (1, 1)  # older releases read the mask as positions
        except (ImportError, IndexError, RuntimeError, TypeError):
            mask_aware = False
        _SUPPORT[kind] = takes and mask_aware
    return _SUPPORT[kind]


def loss_token_nll(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row summed next-token NLL, loss-token count and correct predictions (labels -100: no loss)."""
    targets = labels[:, 1:]
    valid = targets != IGNORE
    if keeps_masked_logits(model):
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = valid  # position t predicts token t + 1
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
        if logits.dim() == 2 and logits.shape[0] == int(valid.sum()):
            picked = targets[valid]
            rows = keep.nonzero()[:, 0]
            nll = F.cross_entropy(logits.float(), picked, reduction="none")
            right = (logits.argmax(-1) == picked).to(nll.dtype)
            sums = torch.zeros(labels.shape[0], dtype=nll.dtype, device=nll.device)
            return sums.index_add(0, rows, nll), valid.sum(1), sums.index_add(0, rows, right).long()
    logits = model(**inputs, use_cache=False).logits
    # PEFT prompt learning returns logits for its virtual tokens first: they predict nothing of the data
    return _full_token_nll(logits[:, logits.shape[1] - labels.shape[1] :], labels)


def _full_token_nll(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shifted, targets = logits[:, :-1, :].float(), labels[:, 1:]
    valid = targets != IGNORE
    nll = F.cross_entropy(shifted.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
    correct = (shifted.argmax(-1) == targets) & valid
    return nll.sum(1), valid.sum(1), correct.sum(1)
