"""The recipe: pydantic models for every section, with defaults a careful practitioner would pick.

Every model forbids unknown keys so a typo is an error (with a did-you-mean from the loader), never a
silently ignored setting.
"""

from __future__ import annotations

import math
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads true as 1: `model.max_length: true` would silently keep one token per text.
        if (
            isinstance(value, bool)
            and info.field_name
            and _numeric(cls.model_fields[info.field_name].annotation)
        ):
            raise ValueError("must be a number, not true/false")
        return value


def _numeric(annotation: Any) -> bool:
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    return bool(args) and all(a in (int, float, type(None)) for a in args) and args != (type(None),)


class ModelConfig(Section):
    name: str = Field("minilm", description="registry name (minilm) or a local Hugging Face model directory")
    max_length: PositiveInt = Field(256, description="tokens kept per text; longer texts are truncated")
    image_size: PositiveInt | None = Field(
        None,
        description="image-classification: input side in pixels; null: the model's own (224 for efficientnet-lite0)",
    )
    # Model shaping (tunesmith.models.shaping): null keeps the model's own setting.
    dropout: float | None = Field(
        None, ge=0.0, lt=1.0, description="backbone hidden and attention dropout; null: the model's own"
    )
    classifier_dropout: float | None = Field(
        None, ge=0.0, lt=1.0, description="classification: dropout before the head; null: the model's own"
    )
    num_layers: PositiveInt | None = Field(
        None, description="keep the bottom N transformer blocks (smaller, faster); null: all of them"
    )


class DataConfig(Section):
    train: str = Field(..., description="training file: .csv, .tsv, .jsonl or .parquet (or builtin:NAME)")
    validation: str | None = Field(None, description="validation file; split off train when absent")
    test: str | None = Field(None, description="optional held-out test file")
    text: str = Field("text", description="column holding the input text")
    label: str = Field("label", description="column holding the class label")
    group: str | None = Field(None, description="optional column used for slices (e.g. condition)")
    image: str | None = Field(
        None, description="image-classification: column of image paths (relative to the file); null: path"
    )
    validation_split: float = Field(
        0.15, gt=0.0, lt=0.9, description="share of train held out when no validation file"
    )
    seed: int = Field(42, description="seed of the stratified validation split, balancing and augmentation")
    balance: Literal["class-weights", "oversample"] | None = Field(
        None,
        description="training split only: class-weights (= train.class_weights: true) or oversample "
        "every class to the largest; null: as is",
    )
    augment: AugmentConfig | None = Field(
        None, description="label-preserving word deletion / swap copies of training rows; null: none"
    )
    # task: causal-lm (a text column, prompt + response columns, or a messages column)
    prompt: str | None = Field(None, description="causal-lm: column holding the prompt (with data.response)")
    response: str | None = Field(None, description="causal-lm: column holding the response to learn")
    messages: str | None = Field(
        None, description="causal-lm: column holding a chat: a list of {role, content}"
    )
    train_on_prompt: bool = Field(
        False, description="causal-lm: loss on prompt / user tokens too (default: responses only)"
    )
    packing: bool = Field(
        False,
        description="causal-lm: pack examples into model.max_length windows (no attention across examples)",
    )

    @model_validator(mode="after")
    def _text_is_not_the_label(self) -> DataConfig:
        # A model that reads its label as its input scores perfectly and learns nothing.
        if self.text == self.label:
            raise ValueError(
                f"data.text and data.label both name the column '{self.text}'; the model would read the "
                "label as its input: set data.text to the column holding the input text"
            )
        return self


class AugmentConfig(Section):
    """Extra training rows made by simple label-preserving edits (EDA, Wei and Zou 2019), seeded by data.seed."""

    ops: list[Literal["delete", "swap", "typo", "case", "punctuation", "flip", "crop", "rotate", "color"]] = (
        Field(
            default_factory=lambda: ["delete", "swap"],  # type: ignore[arg-type]
            min_length=1,
            description="delete: drop each word with probability p; swap: swap two words, p x words times; "
            "typo: a keyboard-neighbour typo in each word with probability p; case: upper/lower/title case; "
            "punctuation: strip punctuation; images (per batch, seeded): flip, crop, rotate, color",
        )
    )
    p: float = Field(0.1, gt=0.0, lt=1.0, description="share of the words an operation touches")
    copies: PositiveInt = Field(1, description="augmented copies per selected training row")
    classes: Literal["minority", "all"] | list[str] = Field(
        "minority", description="minority: classes smaller than the largest; all; or a list of labels"
    )


class StrategyConfig(Section):
    # Strategies own their options; the registry validates them (see tunesmith.strategies).
    model_config = ConfigDict(extra="allow", validate_assignment=True)
    name: str = Field("full", description="how much of the model trains: see `tunesmith strategies`")


class EarlyStoppingConfig(Section):
    patience: PositiveInt | None = Field(
        3, description="epochs without improvement before stopping; null disables"
    )
    min_delta: float = Field(0.0, ge=0.0, description="smallest change that counts as an improvement")


def _learning_rate(value: Any) -> Any:
    if value == "auto":
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError("must be a number greater than 0, or auto (the lr range test picks it)")
    if number <= 0:  # the same error (and message) as a plain `gt=0` field
        raise PydanticCustomError("greater_than", "Input should be greater than {gt}", {"gt": 0.0})
    return number


# Typed float on purpose: run() replaces `auto` by the range test's suggestion (tunesmith.tuning.lr_auto)
# before the optimizer, the strategies or anything else reads it.
LearningRate = Annotated[
    float, PlainValidator(_learning_rate), PlainSerializer(lambda value: value, return_type=Any)
]


def _batch_size(value: Any) -> Any:
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a positive integer, or auto (the largest micro-batch that fits)")
    try:
        number = int(value)
    except ValueError:
        raise ValueError("must be a positive integer, or auto (the largest micro-batch that fits)") from None
    if number <= 0:
        raise PydanticCustomError("greater_than", "Input should be greater than {gt}", {"gt": 0})
    return number


# Typed int on purpose, like LearningRate: run() replaces `auto` by the micro-batch the memory plan picks
# (tunesmith.hardware.plan) before the loop, the schedule or anything else reads it.
BatchSize = Annotated[int, PlainValidator(_batch_size), PlainSerializer(lambda value: value, return_type=Any)]


class TrainConfig(Section):
    epochs: PositiveInt = 3
    batch_size: BatchSize = Field(
        16, description="examples per micro-batch, or auto: the largest that fits the memory there is, "
        "keeping the effective batch (train.effective_batch_size) with train.grad_accum",
    )  # fmt: skip
    effective_batch_size: PositiveInt | None = Field(
        None, description="with batch_size auto: examples per optimizer step (default 16 x grad_accum)"
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, about 30% more time"
    )
    compile: bool = Field(
        False, description="torch.compile the training forward, batch lengths padded to a few buckets "
        "(compiles once per bucket: worth it on long GPU runs, rarely on a CPU)",
    )  # fmt: skip
    oom_policy: Literal["retry", "stop"] = Field(
        "retry",
        description="on an out-of-memory error: retry the step with half the micro-batch and twice "
        "train.grad_accum (the same effective batch), or stop",
    )
    lr: LearningRate = Field(
        5e-5, description="peak learning rate, or auto: an lr range test at the start of the run picks it"
    )
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="share of steps spent warming up")
    schedule: Literal["linear", "cosine", "one-cycle", "constant"] = "linear"
    grad_clip: float | None = Field(1.0, gt=0.0, description="max global gradient norm; null disables")
    grad_accum: PositiveInt = Field(1, description="micro-batches per optimizer step")
    class_weights: bool = Field(False, description="weight the loss by inverse class frequency")
    group_weights: bool = Field(
        False, description="weight the loss by inverse frequency of data.group values (fairer slices)"
    )
    l1: float = Field(
        0.0, ge=0.0, description="L1 penalty on the trainable weights (not biases or norms); 0: none"
    )
    label_smoothing: float = Field(
        0.0, ge=0.0, lt=1.0, description="text-classification: share of the target spread over all classes"
    )
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = 42
    log_every: PositiveInt = Field(10, description="optimizer steps between history records")
    checkpoint_every: int = Field(
        0, ge=0, description="optimizer steps between mid-epoch checkpoints; 0 = per epoch only"
    )
    keep_checkpoints: PositiveInt = Field(2, description="most recent checkpoints kept on disk")
    checkpoint_async: bool = Field(
        True, description="write checkpoints in a background thread from a host copy taken at the step"
    )
    monitor_every: PositiveInt = Field(
        50, description="optimizer steps between per-layer gradient norms and update/weight ratios"
    )
    nan_policy: Literal["stop", "skip", "rollback"] = Field(
        "rollback",
        description="on a NaN/Inf loss: stop, skip the batch, or restore the last good state with half the lr",
    )
    max_rollbacks: PositiveInt = 3
    processes: PositiveInt = Field(
        1,
        description="training processes on this machine (DDP through accelerate launch; one per GPU or core)",
    )


class EvalConfig(Section):
    metric: Literal["macro_f1", "accuracy", "weighted_f1", "loss", "perplexity", "token_accuracy"] = Field(
        "macro_f1",
        description="metric that picks the best epoch and drives early stopping (causal-lm: perplexity)",
    )
    samples: int = Field(
        4, ge=0, description="causal-lm: validation prompts generated with the start and the tuned model"
    )
    batch_size: PositiveInt = 64
    on_start: bool = Field(
        True,
        description="validate once before the first step (epoch 0 in history.jsonl): where training starts",
    )
    cv: int | None = Field(
        None, ge=2, le=20,
        description="stratified K-fold cross-validation on train (+ validation): metrics as mean ± std",
    )  # fmt: skip
    learning_curve: bool = Field(
        False, description="also train on 1/8, 1/4, 1/2 of train: the expected gain from doubling the data"
    )
    # The evaluation suite after training (tunesmith.evaluation.suite; also `tunesmith evaluate`).
    suite: (
        list[Literal["slices", "calibration", "baseline", "robustness", "latency", "explanations"]] | None
    ) = Field(
        None,
        description="evaluation checks run after training (slices, calibration, baseline, robustness, "
        "latency, explanations); null: all of them; []: none",
    )
    max_examples: PositiveInt = Field(
        200, description="evaluation examples the suite uses (a seeded sample beyond), bounding its cost"
    )
    perturb_examples: PositiveInt = Field(
        100,
        description="texts each robustness perturbation is applied to (a seeded stratified sample of "
        "the evaluation examples): each one costs a prediction per perturbation",
    )
    slices: list[str] | None = Field(
        None, description="columns to slice the evaluation by; null: data.group (plus text-length quartiles)"
    )
    min_slice_rows: PositiveInt = Field(
        20, description="slices with fewer evaluation rows are listed as too small to judge, never flagged"
    )
    flip_rate_warn: float = Field(
        0.05, ge=0.0, le=1.0, description="warn when a perturbation flips more than this share of predictions"
    )
    ece_warn: float = Field(
        0.05, ge=0.0, le=1.0, description="warn when the expected calibration error (15 bins) is higher"
    )


class OutputConfig(Section):
    dir: str = "runs"
    name: str = "run"

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value in {".", ".."}:
            raise ValueError("must be a plain directory name without '/' (e.g. drug-reviews)")
        return value


class AuditConfig(Section):
    """The data doctor (tunesmith.audit): which findings stop a run, and the checks' settings."""

    gate: Literal["off", "warn", "error"] = Field(
        "warn",
        description="off: skip the audit; warn: report findings; error: stop the run on error findings",
    )

    @field_validator("gate", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false: `gate: off` and `audit.gate=off` mean the string.
        return "off" if value is False else value

    near_duplicate_threshold: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="estimated Jaccard similarity of word shingles from which texts are near-duplicates",
    )
    shingle_words: int = Field(2, ge=1, le=5, description="words per shingle for near-duplicate search")
    minhash_num_perm: int = Field(
        128, ge=16, le=512, description="MinHash permutations (more: finer similarity, slower)"
    )
    label_errors: bool = Field(
        True, description="run the confident-learning check (needs the embedded encoder)"
    )
    label_error_folds: int = Field(
        5, ge=2, le=20, description="folds for the out-of-fold predicted probabilities"
    )
    embedding_max_rows: int = Field(
        20000,
        ge=100,
        description="rows embedded for label errors and embedding outliers (a seeded sample beyond)",
    )
    error_share: float = Field(
        0.01,
        gt=0.0,
        le=1.0,
        description="share of a split from which leakage and conflicting labels are errors",
    )
    warn_share: float = Field(
        0.01,
        gt=0.0,
        le=1.0,
        description="share of a split from which duplicates and likely label errors are warnings",
    )
    min_class_count: int = Field(10, ge=1, description="classes with fewer training rows are reported")
    imbalance_ratio: float = Field(
        3.0, gt=1.0, description="largest / smallest class size from which imbalance is a warning"
    )
    short_text_words: int = Field(3, ge=1, description="texts with fewer words are reported as very short")
    truncation_warn_share: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="share of texts cut at model.max_length from which truncation is a warning",
    )
    outlier_z: float = Field(
        4.0, gt=0.0, description="robust z-score beyond which a text is a length or embedding outlier"
    )
    group_min_count: int = Field(
        5, ge=1, description="group values with fewer rows (all splits) are reported as rare"
    )
    group_shift_tv: float = Field(
        0.3,
        gt=0.0,
        le=1.0,
        description="total-variation distance from the overall label mix that counts as a sharp shift",
    )
    seed: int = Field(0, description="seed for MinHash, sampling and the k-fold split")


class ForgettingConfig(Section):
    """Catastrophic-forgetting control (tunesmith.forgetting): what the model must keep, and how to keep it."""

    retain: str | None = Field(
        None, description="file of examples the model must keep handling; null: no control"
    )
    text: str | None = Field(None, description="text column of the retain file; default: data.text")
    label: str | None = Field(
        None, description="label column of the retain file; null: the starting model's own predictions"
    )
    method: Literal["none", "ewc", "l2sp", "replay"] = Field(
        "none",
        description="ewc: Fisher-weighted pull to the start; l2sp: plain pull; replay: mix retain examples in",
    )
    ewc_weight: float = Field(
        1.0, gt=0.0, description="EWC penalty weight (Fisher scaled to [0, 1] importances)"
    )
    ewc_samples: PositiveInt = Field(
        256, description="retain examples used to estimate the Fisher information"
    )
    l2sp_weight: float = Field(
        0.1, gt=0.0, description="L2-SP penalty weight on the squared distance to the start"
    )
    replay_fraction: float = Field(
        0.25, gt=0.0, le=1.0, description="retain examples per batch, as a share of the batch"
    )
    warn_threshold: float = Field(
        0.05, ge=0.0, le=1.0, description="warn when retained macro-F1 drops by more"
    )

    @model_validator(mode="after")
    def _needs_retain(self) -> ForgettingConfig:
        if self.method != "none" and self.retain is None:
            raise ValueError(
                f"method {self.method} needs a retain set: set forgetting.retain to a labelled file"
            )
        return self


class SearchParam(Section):
    """One dimension of the `search:` space (tunesmith tune), keyed by the dotted recipe key it sets."""

    type: Literal["float", "int", "categorical"]
    low: float | None = Field(None, description="float / int: smallest value")
    high: float | None = Field(None, description="float / int: largest value")
    log: bool = Field(False, description="float / int: sample on a log scale (low > 0)")
    step: float | None = Field(None, gt=0.0, description="float / int: spacing of the values")
    choices: list[Any] | None = Field(None, min_length=1, description="categorical: the values")

    @model_validator(mode="after")
    def _consistent(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs choices: [a, b, ...]")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("a categorical parameter takes only choices (no low, high, log, step)")
            return self
        if self.choices is not None:
            raise ValueError(
                f"a {self.type} parameter takes low and high, not choices; use type: categorical"
            )
        if self.low is None or self.high is None:
            raise ValueError(
                f"a {self.type} parameter needs low and high, e.g. {{type: {self.type}, low: 1, high: 8}}"
            )
        if not self.low < self.high:
            raise ValueError(f"low must be below high; got low={self.low:g}, high={self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0; got low={self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("log: true and step cannot be combined; drop one")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"an int parameter needs whole low and high; got {self.low:g} and {self.high:g}")
        return self


class TuneConfig(Section):
    """How `tunesmith tune` searches the `search:` space (the space itself is `search:`)."""

    sampler: Literal["tpe", "random", "grid"] = Field("tpe", description="tpe, random or grid search")
    pruner: Literal["median", "successive-halving", "none"] = Field(
        "median", description="stop unpromising trials early on the per-epoch validation metric"
    )
    seed: int = Field(0, description="sampler seed")
    startup_trials: PositiveInt = Field(
        5, description="trials sampled at random (TPE) and never pruned (median) before the model kicks in"
    )
    warmup_epochs: int = Field(1, ge=0, description="epochs of each trial never pruned (median pruner)")
    grid_points: int = Field(5, ge=2, description="grid sampler: values per float/int range without step")
    storage: str | None = Field(
        None, description="SQLAlchemy URL of the study; null: sqlite:///runs/<name>/study.db"
    )


class Recipe(Section):
    task: Literal["text-classification", "causal-lm", "image-classification"] = "text-classification"
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    forgetting: ForgettingConfig = Field(default_factory=ForgettingConfig)
    report_to: list[Literal["jsonl", "tensorboard", "mlflow"]] = Field(
        default_factory=lambda: ["jsonl"],  # type: ignore[arg-type]
        description="trackers; jsonl (history.jsonl) is always written",
    )
    search: dict[str, SearchParam] = Field(
        default_factory=dict,
        description="tunesmith tune: dotted recipe key -> {type, low, high, log | choices}",
    )
    tune: TuneConfig = Field(default_factory=TuneConfig)

    @model_validator(mode="after")
    def _task_defaults(self) -> Recipe:
        # A causal LM is judged by perplexity and tuned with LoRA unless the recipe says otherwise.
        if self.task == "causal-lm":
            if "metric" not in self.eval.model_fields_set:
                self.eval.metric = "perplexity"
            if "name" not in self.strategy.model_fields_set:
                self.strategy.name = "lora"
        if self.task == "image-classification" and "name" not in self.model.model_fields_set:
            self.model.name = "efficientnet-lite0"  # the embedded ImageNet CNN (tunesmith.models.vision)
        image_ops = {"flip", "crop", "rotate", "color"} & set(
            self.data.augment.ops if self.data.augment else []
        )
        if image_ops and self.task != "image-classification":
            raise ValueError(f"data.augment.ops: {', '.join(sorted(image_ops))} transform images; for texts use "
                             "delete, swap, typo, case or punctuation")  # fmt: skip
        return self

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        # `model: minilm` and `strategy: lora` are shorthands for {name: ...}.
        if isinstance(data, dict):
            data = dict(data)
            for key in ("model", "strategy"):
                if isinstance(data.get(key), str):
                    data[key] = {"name": data[key]}
        return data
