"""Training settings of a trial (the ``training`` object of a study)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autopeft.errors import ConfigError
from autopeft.inputs import validate_object
from autopeft.modules.registry import FAMILIES


class TrainingSettings(BaseModel):
    """How one trial trains and is scored. Every field has a default.

    ``learning_rate`` is the peak rate of every trained parameter unless
    ``family_learning_rates`` names its family or ``head_learning_rate`` is set for
    the task head. Rates differ by family and budget: over several epochs full
    fine-tuning wants about 2e-5 and PEFT families 5e-4 to 5e-3 (prefixes highest);
    over ~100 steps those leave MiniLM at the majority class, and 2 to 5 times higher
    rates learn (measured in docs/baselines.md).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: float | None = Field(None, gt=0, le=1000, description="Passes over the training split.")
    max_steps: int | None = Field(None, ge=1, le=10_000_000, description="Optimiser steps (wins over epochs).")
    learning_rate: float = Field(5e-4, gt=0, le=1.0, allow_inf_nan=False, description="Peak AdamW learning rate.")
    batch_size: int = Field(32, ge=1, le=4096)
    max_length: int = Field(128, ge=8, le=4096, description="Tokens per example after truncation.")
    warmup_ratio: float = Field(
        0.06, ge=0.0, lt=1.0, allow_inf_nan=False, description="Share of steps with linear warm-up."
    )
    weight_decay: float = Field(0.01, ge=0.0, le=1.0, allow_inf_nan=False)
    grad_clip: float | None = Field(
        1.0, gt=0, le=1e6, allow_inf_nan=False, description="Max gradient norm; null turns clipping off."
    )
    patience: int | None = Field(
        None, ge=1, le=1_000_000, description="Evaluations without improvement before stopping early."
    )
    eval_every: int | None = Field(
        None, ge=1, le=10_000_000, description="Steps between evaluations (default: once per epoch)."
    )
    search_split: float = Field(
        0.1, gt=0.0, lt=1.0, description="Share of the training file held out to score the search objective."
    )
    split_seed: int = Field(
        0, ge=0, le=2**31 - 1, description="Seed of the search split; fixed within a study so trials score alike."
    )
    max_train_examples: int | None = Field(None, ge=1, le=10**9, description="Use at most this many training examples.")
    max_search_examples: int | None = Field(
        None,
        ge=1,
        le=10**9,
        description="Score the objective on at most this many held-out examples (a seeded subset).",
    )
    head_learning_rate: float | None = Field(
        None,
        gt=0,
        le=1.0,
        allow_inf_nan=False,
        description="Peak learning rate of the task head (null: learning_rate).",
    )
    family_learning_rates: dict[str, float] = Field(
        default_factory=dict,
        description='Peak learning rate per family, overriding learning_rate for its parameters (e.g. {"full": 2e-5}).',
    )
    adamix_consistency: float = Field(
        1.0, ge=0.0, le=1e3, allow_inf_nan=False, description="Weight of AdaMix's consistency loss."
    )
    evaluate_dev: bool = Field(False, description="Also score the dev file (reported, never optimised).")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on CUDA.")
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute each layer's activations in the backward pass instead of keeping them: less memory "
        "for longer rows or bigger batches, about a third more compute.",
    )

    @field_validator("family_learning_rates")
    @classmethod
    def _family_rates(cls, rates: dict[str, float]) -> dict[str, float]:
        for name, rate in rates.items():
            if name not in FAMILIES:
                raise ValueError(f"unknown family {name!r} (known: {', '.join(FAMILIES)})")
            if not 0.0 < rate <= 1.0:
                raise ValueError(f"learning rate {rate!r} of {name} must be in (0, 1]")
        return rates

    @model_validator(mode="before")
    @classmethod
    def _length(cls, data: object) -> object:
        """With neither epochs nor max_steps, train for 3 epochs."""
        if isinstance(data, dict) and data.get("epochs") is None and data.get("max_steps") is None:
            return {**data, "epochs": 3.0}
        return data


def parse_training(data: Mapping[str, Any] | TrainingSettings | None) -> TrainingSettings:
    """Validate a ``training`` object, raising :class:`ConfigError` that names the field and value."""
    if data is None:
        return TrainingSettings()
    return validate_object(TrainingSettings, data, "training settings", ConfigError)
