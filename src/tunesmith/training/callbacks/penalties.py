"""Loss terms from the recipe that any task can use, added where the loop adds callbacks' extra terms.

`train.l1`: l1 x the sum of |w| over the trainable weight matrices (and embeddings). Biases and norm
scales are 1-D and stay unpenalised: shrinking them to zero does not simplify the model, it only shifts
activations (the usual convention for weight decay too). The set is read per micro-batch, so the blocks a
progressive strategy thaws later are penalised from the moment they train.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from tunesmith.training.callbacks.base import Callback, TrainContext

if TYPE_CHECKING:
    from tunesmith.config.schema import Recipe


def penalised(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]


class L1Penalty(Callback):
    name = "l1"

    def __init__(self, weight: float) -> None:
        self.weight = float(weight)

    def extra_loss(self, ctx: TrainContext, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        params = penalised(ctx.model)
        if not params:
            return None
        # one fused kernel per dtype/device instead of a Python loop of abs().sum()
        norms = torch._foreach_norm(params, 1)
        return self.weight * torch.stack([n.float() for n in norms]).sum()


def penalty_callbacks(recipe: Recipe) -> list[Callback]:
    """The recipe's penalty terms as callbacks (none when every weight is 0)."""
    return [L1Penalty(recipe.train.l1)] if recipe.train.l1 > 0 else []
