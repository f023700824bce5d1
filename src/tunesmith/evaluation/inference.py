"""Batched inference: class probabilities and per-example losses for one encoded split."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tunesmith.data.batching import LengthBucketBatcher
from tunesmith.tasks.base import Collate, Encoded

__all__ = ["Collate", "Encoded", "predict_probs"]


@torch.inference_mode()
def predict_probs(
    model: torch.nn.Module, data: Encoded, *, batch_size: int, collate: Collate, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Return (probabilities [n, classes], per-example cross-entropy [n]) in the split's original order.

    Batches are sorted by length so padding is minimal; results are put back in input order.
    """
    was_training = model.training
    model.eval()
    order = LengthBucketBatcher(data.lengths, batch_size, seed=0, shuffle=False).batches(0)
    probs: list[np.ndarray] = []
    losses: list[np.ndarray] = []
    index: list[int] = []
    for batch_ids in order:
        batch = collate([data.input_ids[i] for i in batch_ids], [max(data.labels[i], 0) for i in batch_ids])
        labels = batch.pop("labels").to(device)
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
        probs.append(F.softmax(logits, dim=-1).cpu().numpy())
        losses.append(F.cross_entropy(logits, labels, reduction="none").cpu().numpy())
        index.extend(batch_ids)
    model.train(was_training)
    inverse = np.argsort(np.asarray(index))
    return np.concatenate(probs)[inverse], np.concatenate(losses)[inverse]
