"""`setfit`: few-shot classification (Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts").

Two phases, both before the training loop:
1. contrastive fine-tuning of the sentence encoder on pairs of training examples (same label: target cosine 1,
   different labels: 0), with sentence-transformers' `CosineSimilarityLoss` and `Pooling` (the loss SetFit
   itself uses). The `setfit` package is not used: its trainer wants `datasets` and writes its own model
   format (a body plus a scikit-learn head), where tunesmith saves one `*ForSequenceClassification`;
2. a logistic-regression head on the tuned embeddings (SetFit's default head), written into the model's
   linear classifier.
The loop then trains only that head for `train.epochs` (the backbone frozen, its features cached, as in
`frozen`), starting from the fitted weights, so validation, early stopping, metrics, predictions and the
report are those of any other run. Meant for about 8 to 64 examples per class.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesmith.config.schema import StrategyConfig
from tunesmith.models.registry import resolve_model_dir
from tunesmith.strategies.base import Strategy
from tunesmith.strategies.frozen import FrozenOptions, FrozenStrategy
from tunesmith.strategies.options import parse_options
from tunesmith.strategies.sentence import check_linear_head, check_task, embed, sentence_pooling, use_pooling

log = logging.getLogger(__name__)


class SetFitOptions(FrozenOptions):
    iterations: int = 20  # pairs per training example and kind (SetFit's num_iterations)
    body_lr: float = 2e-5  # the encoder's learning rate in the contrastive phase
    body_epochs: int = 1
    pair_batch_size: int = 16
    head_c: float = 1.0  # inverse L2 strength of the logistic-regression head
    max_pairs: int = 20000  # a cap, so a large training split does not make the contrastive phase endless


class SetFitStrategy(FrozenStrategy):
    name = "setfit"
    description = "few-shot: contrastive fine-tuning of a sentence encoder on pairs, then a logistic head"
    options_model = SetFitOptions
    recommended_lr = 1e-3

    def __init__(self, cfg: StrategyConfig) -> None:
        Strategy.__init__(self, cfg)  # not frozen's: it would parse the options as FrozenOptions
        self.options: SetFitOptions = parse_options(SetFitOptions, cfg)
        self.cache = None
        self.pooling: dict[str, Any] = {}

    def validate(self, recipe: Any, labels: list[str]) -> None:
        from tunesmith.errors import UserError

        check_task(recipe, self.name)
        import importlib.util

        if importlib.util.find_spec("sentence_transformers") is None:
            raise UserError("strategy.name: setfit needs sentence-transformers; install it with "
                            "`pip install 'tunesmith[fewshot]'`.")  # fmt: skip
        self.pooling = sentence_pooling(resolve_model_dir(recipe.model.name), self.name)
        o = self.options
        if (
            min(o.iterations, o.body_epochs, o.pair_batch_size, o.max_pairs) < 1
            or o.body_lr <= 0
            or o.head_c <= 0
        ):
            raise UserError("strategy: setfit's iterations, body_epochs, pair_batch_size and max_pairs must be "
                            "at least 1 and body_lr, head_c positive.")  # fmt: skip

    def prepare(self, model: nn.Module) -> nn.Module:
        check_linear_head(model, self.name)
        use_pooling(model, self.pooling)
        return model  # frozen's freezing and feature cache come after the contrastive phase

    def before_training(self, model: Any, task: Any, train_data: Any, device: Any) -> None:
        labels = list(train_data.labels)
        seed = task.recipe.train.seed
        model.to(device)
        contrastive_phase(model, train_data.input_ids, labels, task.collate_fn, device, self.options, seed)
        fit_head(model, train_data.input_ids, labels, len(task.labels), task.collate_fn, device,
                 self.options.head_c, seed)  # fmt: skip
        super().prepare(model)  # freeze the tuned backbone; its features are cached from here on


def make_pairs(labels: list[int], iterations: int, seed: int, cap: int) -> list[tuple[int, int, float]]:
    """SetFit's sampling: per iteration and example, one positive and one negative partner (when any)."""
    rng = random.Random(seed)
    by_label: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_label.setdefault(y, []).append(i)
    pairs: list[tuple[int, int, float]] = []
    for _ in range(iterations):
        for i, y in enumerate(labels):
            same = [j for j in by_label[y] if j != i]
            other = [j for j in range(len(labels)) if labels[j] != y]
            if same:
                pairs.append((i, rng.choice(same), 1.0))
            if other:
                pairs.append((i, rng.choice(other), 0.0))
    rng.shuffle(pairs)
    return pairs[:cap]


class _Encoder(nn.Module):
    """What sentence-transformers' losses call: features -> {"sentence_embedding": ...}, on our backbone."""

    def __init__(self, backbone: nn.Module, dim: int, normalize: bool) -> None:
        super().__init__()
        from sentence_transformers.base.modules.normalize import Normalize
        from sentence_transformers.sentence_transformer.modules.pooling import Pooling

        self.backbone, self.pooling = backbone, Pooling(dim, "mean")
        self.normalize = Normalize() if normalize else None

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = {k: v for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        features = {**features, "token_embeddings": self.backbone(**inputs)[0]}
        features = self.pooling(features)
        return self.normalize(features) if self.normalize is not None else features


def contrastive_phase(
    model: Any, ids: list[list[int]], labels: list[int], collate: Any, device: Any,
    options: SetFitOptions, seed: int,
) -> float | None:  # fmt: skip
    """Fine-tune the backbone on pairs with CosineSimilarityLoss; returns the last batch's loss."""
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    backbone = getattr(model, model.base_model_prefix)
    encoder = _Encoder(backbone, model.config.hidden_size, bool(model.config.tunesmith_pooling["normalize"]))
    loss_fn = CosineSimilarityLoss(encoder)  # type: ignore[arg-type]  # duck-typed: it only calls model(features)
    params = [p for p in backbone.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=options.body_lr)
    torch.manual_seed(seed)
    backbone.train()
    last = None
    for epoch in range(options.body_epochs):
        pairs = make_pairs(labels, options.iterations, seed + epoch, options.max_pairs)
        for start in range(0, len(pairs), options.pair_batch_size):
            chunk = pairs[start : start + options.pair_batch_size]
            side = [
                {k: v.to(device) for k, v in collate([ids[int(p[j])] for p in chunk], [0] * len(chunk)).items()
                 if k != "labels"}
                for j in (0, 1)
            ]  # fmt: skip
            loss = loss_fn(side, torch.tensor([p[2] for p in chunk], device=device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            last = float(loss.detach())
        log.info("setfit: contrastive epoch %d, %d pairs, last loss %.4f", epoch + 1, len(pairs), last or 0.0)
    backbone.eval()
    return last


def fit_head(
    model: Any, ids: list[list[int]], labels: list[int], num_labels: int, collate: Any, device: Any,
    c: float, seed: int,
) -> None:  # fmt: skip
    """Logistic regression on the embeddings (multinomial), copied into the model's linear classifier."""
    from sklearn.linear_model import LogisticRegression

    x = embed(model, ids, collate, device).numpy()
    y = np.asarray(labels)
    head = model.classifier
    with torch.no_grad():
        if len(np.unique(y)) < 2:  # one class seen: predict it (sklearn refuses a single class)
            head.weight.zero_()
            head.bias.fill_(-10.0)
            head.bias[int(y[0])] = 10.0
            return
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
        weight = np.zeros((num_labels, x.shape[1]), dtype=np.float32)
        bias = np.full(num_labels, -10.0, dtype=np.float32)  # labels absent from training: never predicted
        if len(clf.classes_) == 2:  # sklearn's binary form: one row w for class 1; softmax over (-w/2, w/2)
            rows = [-clf.coef_[0] / 2, clf.coef_[0] / 2]
            biases = [-clf.intercept_[0] / 2, clf.intercept_[0] / 2]
        else:
            rows, biases = list(clf.coef_), list(clf.intercept_)
        for k, cls in enumerate(clf.classes_):
            weight[int(cls)], bias[int(cls)] = rows[k], biases[k]
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
