"""`task: text-classification`: a text column and a label column; an encoder with a classification head.

The loss is cross-entropy (optionally class-weighted); training metrics come from a confusion matrix kept
on the device; evaluation is accuracy / precision / recall / F1 per class and averaged. Every epoch also
records each training example's margin (assigned-label logit minus the largest other) and the probability
of its label, from the forward pass the step made anyway: RUN_DIR/dynamics.npz, the training dynamics that
AUM and dataset cartography read to find mislabelled rows.
"""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from tunesmith.data.batching import collate, tokenize_texts
from tunesmith.data.prepare import prepare_data
from tunesmith.data.types import DataBundle, Split, Table
from tunesmith.errors import UserError
from tunesmith.evaluation.inference import predict_probs
from tunesmith.evaluation.metrics import classification_metrics, headline
from tunesmith.fileio import write_bytes_atomic
from tunesmith.findings import Finding
from tunesmith.models.loader import load_classifier
from tunesmith.outputs import save_model, write_predictions
from tunesmith.tasks.base import Collate, Encoded, Evaluation, LoadedModel, StepOutput, Task
from tunesmith.training.precision import resolve_precision

DYNAMICS_FILE = "dynamics.npz"


def class_weights(labels: list[int], num_classes: int) -> torch.Tensor:
    """Inverse-frequency ("balanced") weights: n / (k * count_c)."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def group_weights(groups: list[str]) -> torch.Tensor:
    """Per-example inverse group frequency, normalised to mean 1: every group weighs the same in total."""
    names, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    weights = len(groups) / (len(names) * counts[inverse].astype(np.float64))
    return torch.tensor(weights, dtype=torch.float32)


def make_collate(tokenizer: Any) -> Collate:
    """(token ids, class ids) -> padded batch, with token_type_ids for BERT-style tokenizers."""
    with_types = "token_type_ids" in tokenizer.model_input_names
    return partial(collate, pad_id=tokenizer.pad_token_id or 0, with_token_type_ids=with_types)


class TextClassification(Task):
    name = "text-classification"
    metrics: ClassVar[dict[str, bool]] = {
        "macro_f1": True, "accuracy": True, "weighted_f1": True, "loss": False,
    }  # fmt: skip
    default_metric = "macro_f1"
    summary_columns = (
        ("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("weighted_f1", "weighted-F1"), ("loss", "loss"),
    )  # fmt: skip

    def __init__(self, recipe: Any) -> None:
        super().__init__(recipe)
        self.labels: list[str] = []
        self.train_rows: list[int] = []
        self.bundle: DataBundle | None = None
        # split -> the final model's probabilities, which the evaluation suite reuses
        self.final_probs: dict[str, np.ndarray] = {}
        self.weights: torch.Tensor | None = None
        self.example_weights: torch.Tensor | None = None  # train.group_weights, by training example

    def check_recipe(self) -> None:
        self.check_metric()
        data = self.recipe.data
        if self.recipe.train.group_weights and data.group is None:
            raise UserError("train.group_weights: weights by group need a group column; set data.group "
                            "(e.g. condition) or drop train.group_weights.")  # fmt: skip
        for key in ("prompt", "response", "messages"):
            if getattr(data, key) is not None:
                raise UserError(f"data.{key}: a causal-lm column, not read by task: text-classification; "
                                "remove it, or set task: causal-lm.")  # fmt: skip
        for key in ("train_on_prompt", "packing"):
            if getattr(data, key):
                raise UserError(f"data.{key}: a causal-lm setting, not used by task: text-classification; "
                                "remove it, or set task: causal-lm.")  # fmt: skip

    def check_model(self) -> None:
        from tunesmith.models.checks import check_model_options

        check_model_options(self.recipe)

    def prepare_data(self) -> tuple[dict[str, Table], DataBundle]:
        return prepare_data(self.recipe.data)

    def load_model(self, bundle: DataBundle) -> LoadedModel:
        self.labels = list(bundle.labels)
        self.bundle = bundle
        self.train_rows = list(bundle.train.rows)  # source rows of the training examples, for dynamics.npz
        model, tokenizer, model_dir = load_classifier(
            self.recipe.model.name, self.labels, seed=self.recipe.train.seed, shape=self.recipe.model
        )
        self.tokenizer, self.collate_fn = tokenizer, make_collate(tokenizer)
        return LoadedModel(model, tokenizer, model_dir)

    def encode(self, split: Split) -> Encoded:
        return Encoded(
            tokenize_texts(split.texts, self.tokenizer, self.recipe.model.max_length), list(split.labels)
        )

    # ---- training ----
    def start_training(self, train: Encoded, device: torch.device) -> None:
        if self.recipe.train.class_weights:
            self.weights = class_weights(train.labels, len(self.labels)).to(device)
        if self.recipe.train.group_weights and self.bundle is not None and self.bundle.train.groups:
            self.example_weights = group_weights(self.bundle.train.groups).to(device)

    def new_sums(self, n_train: int, device: torch.device) -> dict[str, torch.Tensor]:
        k = len(self.labels)
        return {
            "loss": torch.zeros((), dtype=torch.float64, device=device),
            "n": torch.zeros((), dtype=torch.int64, device=device),
            "confusion": torch.zeros((k, k), dtype=torch.int64, device=device),
            "margin": torch.full((n_train,), float("nan"), device=device),
            "p_label": torch.full((n_train,), float("nan"), device=device),
        }

    def step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], index: torch.Tensor) -> StepOutput:
        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits.float()
        weights = self.weights.to(logits.device) if self.weights is not None else None
        smoothing = self.recipe.train.label_smoothing  # training loss only; evaluation stays plain NLL
        if self.example_weights is None:
            loss = F.cross_entropy(logits, labels, weight=weights, label_smoothing=smoothing)
        else:  # a weighted mean over the batch, as cross_entropy's own `weight` makes it
            w = self.example_weights[index] * (weights[labels] if weights is not None else 1.0)
            per_example = F.cross_entropy(logits, labels, reduction="none", label_smoothing=smoothing)
            loss = (per_example * w).sum() / w.sum()
        detached = logits.detach()
        own = detached.gather(1, labels[:, None]).squeeze(1)
        others = detached.scatter(1, labels[:, None], float("-inf")).amax(1)
        p_label = F.softmax(detached, dim=-1).gather(1, labels[:, None]).squeeze(1)
        stats = {"labels": labels, "preds": detached.argmax(-1), "index": index,
                 "margin": own - others, "p_label": p_label}  # fmt: skip
        return StepOutput(loss, stats)

    def accumulate(self, sums: dict[str, torch.Tensor], out: StepOutput, keep: torch.Tensor) -> None:
        s = out.stats
        n = len(s["labels"])
        sums["loss"] += torch.where(keep, out.loss.detach().double() * n, 0.0)
        sums["n"] += keep.long() * n
        sums["confusion"].index_put_((s["labels"], s["preds"]), keep.long().expand(n), accumulate=True)
        for key in ("margin", "p_label"):  # no boolean indexing: it would wait for the device
            sums[key][s["index"]] = torch.where(keep, s[key], sums[key][s["index"]])

    def train_metrics(self, sums: dict[str, torch.Tensor]) -> dict[str, Any]:
        n = int(sums["n"].item())
        result: dict[str, Any] = {"train_loss": float(sums["loss"].item()) / max(n, 1)}
        train = classification_metrics(*_from_confusion(sums["confusion"]), self.labels) if n else {}
        result.update(train_accuracy=train.get("accuracy"), train_macro_f1=train.get("macro_f1"))
        return result

    def epoch_end(self, run_dir: Path, epoch: int, sums: dict[str, torch.Tensor]) -> None:
        """Append (replace, after a resume) this epoch's row of the training dynamics."""
        path = run_dir / DYNAMICS_FILE
        rows = {k: sums[k].cpu().numpy()[None] for k in ("margin", "p_label")}
        if path.is_file():
            with np.load(path) as old:
                if old["margin"].shape[1] == rows["margin"].shape[1]:
                    rows = {k: np.concatenate([old[k][:epoch], rows[k]]) for k in rows}
        buffer = io.BytesIO()
        np.savez(
            buffer,
            rows=np.asarray(self.train_rows, dtype=np.int64),
            margin=rows["margin"],
            p_label=rows["p_label"],
        )
        write_bytes_atomic(path, buffer.getvalue())

    # ---- evaluation and outputs ----
    def evaluate(
        self, model: torch.nn.Module, data: Encoded, *, batch_size: int, device: torch.device
    ) -> Evaluation:
        probs, losses = predict_probs(
            model, data, batch_size=batch_size, collate=self.collate_fn, device=device
        )
        metrics = classification_metrics(
            data.labels, probs.argmax(-1).tolist(), self.labels, loss=float(losses.mean())
        )
        return Evaluation(metrics, losses, probs)

    def write_predictions(self, run_dir: Path, split: Split, evaluation: Evaluation) -> None:
        write_predictions(
            run_dir / "predictions" / f"{split.name}.jsonl", split, evaluation.outputs, self.labels
        )
        self.final_probs[split.name] = evaluation.outputs  # the suite reuses them instead of predicting again

    def finish(self, run_dir: Path, model: torch.nn.Module) -> tuple[dict[str, Any], list[Finding]]:
        """The evaluation suite (eval.suite: slices, calibration, robustness, latency, explanations,
        baseline) through one predict function; it writes evaluation/*.json and model/calibration.json."""
        from tunesmith.evaluation import suite

        assert self.bundle is not None
        handle = suite.handle_for_model(
            model, self.tokenizer, self.labels, self.recipe.model.max_length, run_dir / "model"
        )
        # The final evaluation ran in fp32 without autocast only when the precision is fp32: only then are its
        # probabilities the ones the suite's predict function would compute again.
        fp32 = resolve_precision(self.recipe.train.precision) == "fp32"
        known = self.final_probs if fp32 else {}
        summary, findings = suite.run_suite(run_dir, self.recipe, self.bundle, handle, known_probs=known)
        return {"evaluation": summary}, findings

    def save(self, run_dir: Path, model: torch.nn.Module, metrics: dict[str, Any]) -> Path:
        return save_model(run_dir, model, self.tokenizer, self.recipe, metrics)

    def headline(self, metrics: dict[str, Any]) -> str:
        return headline(metrics)


def _from_confusion(confusion: torch.Tensor) -> tuple[list[int], list[int]]:
    """(y_true, y_pred) with the counts of a confusion matrix: the metrics only depend on the counts."""
    counts = confusion.cpu().numpy().ravel()
    k = confusion.shape[0]
    cells = np.repeat(np.arange(k * k), counts)
    return (cells // k).tolist(), (cells % k).tolist()
