"""The recipe: pydantic models for every section, with defaults a careful practitioner would pick.

Every model forbids unknown keys so a typo is an error (with a did-you-mean from the loader), never a
silently ignored setting.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Section):
    name: str = Field("minilm", description="registry name (minilm) or a local Hugging Face model directory")
    max_length: PositiveInt = Field(256, description="tokens kept per text; longer texts are truncated")


class DataConfig(Section):
    train: str = Field(..., description="training file: .csv, .tsv, .jsonl or .parquet (or builtin:NAME)")
    validation: str | None = Field(None, description="validation file; split off train when absent")
    test: str | None = Field(None, description="optional held-out test file")
    text: str = Field("text", description="column holding the input text")
    label: str = Field("label", description="column holding the class label")
    group: str | None = Field(None, description="optional column used for slices (e.g. condition)")
    validation_split: float = Field(
        0.15, gt=0.0, lt=0.9, description="share of train held out when no validation file"
    )
    seed: int = Field(42, description="seed of the stratified validation split")


class StrategyConfig(Section):
    # Strategies own their options; the registry validates them (see tunesmith.strategies).
    model_config = ConfigDict(extra="allow", validate_assignment=True)
    name: str = Field("full", description="how much of the model trains: see `tunesmith strategies`")


class EarlyStoppingConfig(Section):
    patience: PositiveInt | None = Field(
        3, description="epochs without improvement before stopping; null disables"
    )
    min_delta: float = Field(0.0, ge=0.0, description="smallest change that counts as an improvement")


class TrainConfig(Section):
    epochs: PositiveInt = 3
    batch_size: PositiveInt = 16
    lr: float = Field(5e-5, gt=0.0, description="peak learning rate")
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="share of steps spent warming up")
    schedule: Literal["linear", "cosine", "one-cycle", "constant"] = "linear"
    grad_clip: float | None = Field(1.0, gt=0.0, description="max global gradient norm; null disables")
    grad_accum: PositiveInt = Field(1, description="micro-batches per optimizer step")
    class_weights: bool = Field(False, description="weight the loss by inverse class frequency")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = 42
    log_every: PositiveInt = Field(10, description="optimizer steps between history records")
    checkpoint_every: int = Field(
        0, ge=0, description="optimizer steps between mid-epoch checkpoints; 0 = per epoch only"
    )
    keep_checkpoints: PositiveInt = Field(2, description="most recent checkpoints kept on disk")
    monitor_every: PositiveInt = Field(
        50, description="optimizer steps between per-layer gradient norms and update/weight ratios"
    )
    nan_policy: Literal["stop", "skip", "rollback"] = Field(
        "rollback",
        description="on a NaN/Inf loss: stop, skip the batch, or restore the last good state with half the lr",
    )
    max_rollbacks: PositiveInt = 3


class EvalConfig(Section):
    metric: Literal["macro_f1", "accuracy", "weighted_f1", "loss"] = Field(
        "macro_f1", description="metric that picks the best epoch and drives early stopping"
    )
    batch_size: PositiveInt = 64


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


class Recipe(Section):
    task: Literal["text-classification"] = "text-classification"
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
