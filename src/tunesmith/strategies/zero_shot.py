"""`zero-shot`: no training; each text gets the label whose description it is most similar to.

The label descriptions (`strategy.label_descriptions`, default the label names themselves) are embedded
once with the sentence encoder, and their unit vectors times `scale` become the rows of the model's linear
classifier with a zero bias: the logits are then `scale * cos(text, description)`, so the prediction is the
most similar description and the probabilities a softmax over similarities. The saved model is an ordinary
classifier (see tunesmith.strategies.sentence), so metrics, predictions, the evaluation suite and the report
are those of any run; it is the floor that every few-shot result should be compared with.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from tunesmith.config.schema import StrategyConfig
from tunesmith.data.messages import did_you_mean
from tunesmith.errors import UserError
from tunesmith.models.registry import resolve_model_dir
from tunesmith.strategies.base import Strategy
from tunesmith.strategies.options import Options, parse_options
from tunesmith.strategies.sentence import check_linear_head, check_task, embed, sentence_pooling, use_pooling


class ZeroShotOptions(Options):
    label_descriptions: dict[str, str] = Field(default_factory=dict)  # label -> text; default the label name
    scale: float = 20.0  # logit = scale * cosine: a temperature for the probabilities, not the ranking


class ZeroShotStrategy(Strategy):
    name = "zero-shot"
    description = "no training: the label whose description is most similar (cosine) to the text"
    options_model = ZeroShotOptions
    recommended_lr = 0.0
    trains = False

    def __init__(self, cfg: StrategyConfig) -> None:
        super().__init__(cfg)
        self.options = parse_options(ZeroShotOptions, cfg)
        self.pooling: dict[str, Any] = {}

    def validate(self, recipe: Any, labels: list[str]) -> None:
        check_task(recipe, self.name)
        unknown = [k for k in self.options.label_descriptions if k not in labels]
        if unknown:
            guess = did_you_mean(unknown[0], labels)
            hint = f" (did you mean '{guess}'?)" if guess else ""
            raise UserError(
                f"strategy.label_descriptions: '{unknown[0]}'{hint} is not a label of the data; its labels "
                f"are: {', '.join(labels)}."
            )
        empty = [k for k, v in self.options.label_descriptions.items() if not str(v).strip()]
        if empty:
            raise UserError(f"strategy.label_descriptions.{empty[0]}: the description is empty; write a "
                            "short phrase, or drop the key to use the label name.")  # fmt: skip
        if self.options.scale <= 0:
            raise UserError(f"strategy.scale: must be positive; got {self.options.scale}.")
        self.pooling = sentence_pooling(resolve_model_dir(recipe.model.name), self.name)

    def prepare(self, model: nn.Module) -> nn.Module:
        check_linear_head(model, self.name)
        for p in model.parameters():
            p.requires_grad_(False)
        return use_pooling(model, self.pooling)

    def descriptions(self, labels: list[str]) -> list[str]:
        return [self.options.label_descriptions.get(label, label) for label in labels]

    def before_training(self, model: Any, task: Any, train_data: Any, device: Any) -> None:
        from tunesmith.data.batching import tokenize_texts

        ids = tokenize_texts(self.descriptions(task.labels), task.tokenizer, task.recipe.model.max_length)
        model.to(device)
        vectors = F.normalize(embed(model, ids, task.collate_fn, device), dim=-1)
        with torch.no_grad():
            model.classifier.weight.copy_(self.options.scale * vectors)
            model.classifier.bias.zero_()

    def param_groups(self, model: nn.Module, train: Any) -> list[dict[str, Any]]:
        # Nothing trains, but the run still builds an optimizer and schedule: one placeholder outside the
        # model keeps that path unchanged (the loop never runs, see skip_training).
        return [{"params": [nn.Parameter(torch.zeros(1))], "lr": 0.0, "weight_decay": 0.0}]

    def skip_training(self, run_dir: Any) -> Any:
        from tunesmith.training.loop import TrainOutcome

        (run_dir / "history.jsonl").write_text("")  # no steps: the diagnosis and report read an empty history
        return TrainOutcome(best_epoch=None, best_metric=None, epochs_run=0, steps=0,
                            stop_reason="zero-shot: no training", train_time_s=0.0)  # fmt: skip
