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
    validation_split: float = Field(0.15, gt=0.0, lt=0.9, description="share of train held out when no validation file")
    seed: int = Field(42, description="seed of the stratified validation split")


class StrategyConfig(Section):
    # Strategies own their options; the registry validates them (see tunesmith.strategies).
    model_config = ConfigDict(extra="allow", validate_assignment=True)
    name: str = Field("full", description="how much of the model trains: see `tunesmith strategies`")


class EarlyStoppingConfig(Section):
    patience: PositiveInt | None = Field(3, description="epochs without improvement before stopping; null disables")
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
    checkpoint_every: int = Field(0, ge=0, description="optimizer steps between mid-epoch checkpoints; 0 = per epoch only")
    keep_checkpoints: PositiveInt = Field(2, description="most recent checkpoints kept on disk")
    monitor_every: PositiveInt = Field(
        50, description="optimizer steps between per-layer gradient norms and update/weight ratios"
    )
    nan_policy: Literal["stop", "skip", "rollback"] = Field(
        "rollback", description="on a NaN/Inf loss: stop, skip the batch, or restore the last good state with half the lr"
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
        "warn", description="off: skip the audit; warn: report findings; error: stop the run on error findings"
    )
    near_duplicate_threshold: float = Field(0.8, gt=0.0, le=1.0, description="MinHash Jaccard similarity")
    label_errors: bool = Field(True, description="run the confident-learning check (needs the embedded encoder)")


class Recipe(Section):
    task: Literal["text-classification"] = "text-classification"
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    report_to: list[Literal["jsonl", "tensorboard", "mlflow"]] = Field(
        default_factory=lambda: ["jsonl"], description="trackers; jsonl (history.jsonl) is always written"
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
