"""Schemas of the ``trials`` resource: what workers send and receive, and how trials are listed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from autopeft.api.schemas.common import FiniteFloat, Id, JsonObject, Page, Strict, Text
from autopeft.trial_state import TrialState

WorkerId = Annotated[Text, Field(min_length=1, max_length=200, description="Any name unique to the worker.")]
Token = Annotated[Text, Field(min_length=1, max_length=64, description="The lease token from the claim.")]


class ClaimRequest(Strict):
    worker_id: WorkerId
    study_id: Id | None = Field(None, description="Only take trials of this study.")


class HeartbeatRequest(Strict):
    lease_token: Token


class ReleaseRequest(Strict):
    lease_token: Token


class CompleteRequest(Strict):
    """A result. Besides these bounds the server checks ``metric`` (and ``metrics`` named after a metric)
    against the range of the study's metric, and ``peft_params`` against ``param_fraction`` times the
    model's backbone parameters; a result that fails is a 422 and changes nothing."""

    lease_token: Token
    metric: FiniteFloat = Field(
        description="The task metric the study maximises, within its range: accuracy and f1 in [0, 1], "
        "matthews, pearson and spearman in [-1, 1]."
    )
    peft_params: int = Field(
        ge=0, le=2**62, strict=True, description="Parameters the configuration trained (head excluded)."
    )
    param_fraction: FiniteFloat = Field(
        ge=0, le=1, description="peft_params / backbone parameters (0 only for a configuration that trains nothing)."
    )
    metrics: dict[Annotated[Text, Field(max_length=100)], FiniteFloat] | None = Field(
        None, max_length=200, description="Other scores (not optimised)."
    )
    extra: JsonObject | None = Field(None, description="Anything else worth keeping (timings, device, ...).")


class ProgressRequest(Strict):
    """One evaluation while the trial trains. The server checks ``metric`` against the range of the study's
    metric (422 otherwise), stores ``(step, metric)`` on the trial's curve, renews the lease and asks the
    study's early-stopping rule whether the trial should go on."""

    lease_token: Token
    step: int = Field(ge=0, le=2**31 - 1, strict=True, description="Training steps done at this evaluation.")
    metric: FiniteFloat = Field(description="The study's metric on the search split at this step.")
    total_steps: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        strict=True,
        description="The trial's training budget in steps (the rule's grace is a share of it); "
        "default: the study's training.max_steps.",
    )


class ProgressPublic(BaseModel):
    """Whether the trial should go on. On ``continue: false`` the worker ends training at once, keeps the best
    state and reports its result to ``POST /trials/{id}/stopped``; the trial is already ``stopped``."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    go_on: bool = Field(alias="continue", description="false: the early-stopping rule stopped the trial.")
    reason: str = Field(description="Why (the rule's reasoning, or that early stopping is off).")
    lease_expires_at: datetime | None = Field(description="The renewed lease's expiry; null once stopped.")


class FailRequest(Strict):
    lease_token: Token
    error: Annotated[Text, Field(max_length=200_000)] = Field(description="What went wrong (a traceback is fine).")


class LeasePublic(BaseModel):
    token: str
    expires_at: datetime
    seconds: float = Field(description="Length of the lease; heartbeat every third of it.")


class TrialPublic(BaseModel):
    id: int
    study_id: int
    number: int = Field(description="Position in the study, from 0.")
    state: TrialState
    config: dict[str, Any]
    summary: str | None = Field(None, description="The configuration in one line, e.g. 'lora r8 @0-5 q,v'.")
    placement: dict[str, dict[str, Any]] | None = Field(
        None,
        description="Per family: its layers ({layer: size, or true for on/off families}; null: not per layer) "
        "and its size field.",
    )
    source: str = Field(description="baseline, or the optimiser method that proposed it.")
    label: str | None
    in_space: bool = Field(description="Whether the configuration is a point of the study's space.")
    attempts: int = Field(description="How often the trial was handed to a worker.")
    expiries: int = Field(description="How often a lease on it expired.")
    worker_id: str | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    duration_s: float | None = Field(description="From the last claim to the report.")
    metric: float | None
    peft_params: int | None
    param_fraction: float | None
    estimated_param_fraction: float | None = Field(
        None, description="For queued and running trials: the fraction the configuration will train (no result yet)."
    )
    metrics: dict[str, float] | None
    extra: dict[str, Any] | None
    error: str | None
    # pairs as lists, not tuples: a tuple's schema (``items`` as a list) is not valid in OpenAPI 3.1
    curve: list[list[int | float]] | None = Field(
        None, description="[step, metric] of every progress report of its current (or last) run, by step."
    )
    last_step: int | None = Field(None, description="The step of the last progress report (a stopped trial's stop).")


class TrialsPublic(Page):
    data: list[TrialPublic]


class TrialAssignment(BaseModel):
    """A claimed trial: everything a worker needs to run it, and its lease."""

    id: int
    study_id: int
    number: int
    attempt: int = Field(description="1 on the first claim; more after expired leases.")
    config: dict[str, Any]
    task: dict[str, Any] = Field(description="The resolved task description (TaskSpec JSON).")
    model: str | None = Field(description="Model directory on the worker; null: the bundled MiniLM.")
    training: dict[str, Any]
    seed: int = Field(description="The study's seed.")
    source: str
    label: str | None
    lease: LeasePublic
