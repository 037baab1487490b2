"""Schemas of the ``studies`` resource."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from autopeft.api.schemas.common import Id, JsonObject, Page, Strict, Text
from autopeft.api.schemas.trials import TrialPublic
from autopeft.early_stopping import EarlyStoppingSettings
from autopeft.optimize import OptimizerSettings, ParamBudget, WarmStartSettings, parse_optimizer
from autopeft.train.settings import TrainingSettings
from autopeft.trial_state import TrialState

StudyState = Literal["running", "paused", "stopped", "done"]


class BaselineIn(Strict):
    """A hand-picked configuration queued before any proposal (a plain configuration object works too)."""

    config: JsonObject = Field(description="A PEFT configuration (canonical JSON).")
    label: Annotated[Text, Field(min_length=1, max_length=200)] | None = Field(
        None, description="Name shown next to it, e.g. 'LoRA r=8'."
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_config(cls, data: Any) -> Any:
        if isinstance(data, dict) and "config" not in data:
            return {"config": data}
        return data


class StudyCreate(Strict):
    """A study: what to search, on which task and model, with which budget."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    name: Annotated[Text, Field(min_length=1, max_length=200)]
    task: Annotated[Text, Field(min_length=1, max_length=100)] | JsonObject = Field(
        description="A built-in task name, {'name', 'data_dir'}, or a full task description."
    )
    model: Annotated[Text, Field(min_length=1, max_length=1000)] | None = Field(
        None, description="HF model directory as the workers see it; null: the bundled MiniLM."
    )
    hf_config: JsonObject | None = Field(
        None,
        alias="model_config",
        description="Contents of the model's config.json, needed when the server cannot read the model path.",
    )
    space: Annotated[Text, Field(min_length=1, max_length=100)] | JsonObject = Field(
        "autopeft",
        description="autopeft, grouped, full, lora (only peft-exportable LoRA/DoRA/(IA)3), or a user-defined space "
        "(JSON).",
    )
    optimizer: OptimizerSettings = Field(
        default_factory=parse_optimizer,
        description="How the study proposes: {'method': 'gp'} (default), saas, sobol or random, with that method's "
        "settings (a field of another method is refused; docs/optimizer.md).",
    )
    max_trials: int = Field(ge=1, le=1_000_000, description="Trials the study may create in all (its budget).")
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Makes the study's proposals reproducible.")
    max_retries: int | None = Field(None, ge=0, le=100, description="Expired leases a trial survives.")
    lease_seconds: float | None = Field(
        None, ge=0.5, le=86_400, allow_inf_nan=False, description="Lease of a claimed trial; heartbeat well within it."
    )
    baselines: list[BaselineIn] = Field(default_factory=list, max_length=1000)
    early_stopping: EarlyStoppingSettings = Field(
        default_factory=EarlyStoppingSettings,
        description="When trials whose front cannot move are stopped early (off by default; docs/early_stopping.md).",
    )
    constraints: ParamBudget | None = Field(
        None,
        description="Parameter budget: {max_param_fraction, min_param_fraction}. Nothing outside it is proposed "
        "(baselines are trained as given); a budget no configuration of the space meets is refused.",
    )
    warm_start: WarmStartSettings | None = Field(
        None,
        description="Start from earlier studies: {'studies': [ids], 'max_configs': k}. Their front configurations "
        "that this space encodes are trained again first (source warm_start) and the model learns from their trials "
        "as related tasks (docs/warm_start.md). Unknown ids and studies of another kind of task are refused.",
    )


#: A study's trials per state: one field for each :class:`~autopeft.trial_state.TrialState`, 0 when none.
TrialCounts = create_model(
    "TrialCounts",
    __doc__="A study's trials per state.",
    **{state.value: (int, 0) for state in TrialState},  # type: ignore[call-overload]
)


class FailureGroupPublic(BaseModel):
    """Failed trials with one cause (their error's last line, numbers aside)."""

    error: str = Field(description="The first such trial's error, its last line.")
    count: int
    first_trial_id: int
    first_trial_number: int
    worker_id: str | None = Field(description="The worker that ran the first such trial.")
    last_at: datetime | None = Field(description="When the latest such trial failed.")


class WarmStartSourcePublic(BaseModel):
    """An earlier study a warm start names, as it is now (name and task null: deleted since)."""

    id: int
    name: str | None
    task: str | None = Field(description="Its task's name.")
    state: StudyState | None


class WarmStartPublic(BaseModel):
    """Which studies a study started from, and what it took from them so far."""

    studies: list[int] = Field(description="The earlier studies' ids, as given.")
    max_configs: int | None = Field(description="Front configurations re-evaluated at most, as given (null: n_initial).")
    configs: int | None = Field(
        None, description="Trials of this study that re-evaluate an earlier front configuration (in GET one)."
    )
    sources: list[WarmStartSourcePublic] | None = Field(None, description="The earlier studies now (in GET one).")


class StudyPublic(BaseModel):
    id: int
    name: str
    state: StudyState = Field(
        description="running; paused (the same error kept failing trials: fix the workers, then resume); "
        "stopped (by a user; resume undoes it, its queued trials kept); done (budget used, nothing open)."
    )
    task: dict[str, Any]
    model: str | None
    space_name: str
    space: dict[str, Any]
    d: int | None = Field(None, description="Dimensions of the space (in GET /studies/{id}).")
    constraints: ParamBudget | None = Field(None, description="The study's parameter budget, if it has one.")
    space_size: dict[str, Any] | None = Field(
        None,
        description="Grid points of the space and those within the budget, exact or estimated from samples, and "
        "the param_fraction range seen (in GET /studies/{id}).",
    )
    model_shape: dict[str, Any] | None = Field(None, description="The model as the server sees it (in GET one).")
    optimizer: OptimizerSettings
    training: TrainingSettings
    seed: int
    max_trials: int
    max_retries: int
    lease_seconds: float
    n_trials: int = Field(description="Trials the study holds (all states); proposals stop at max_trials.")
    counts: TrialCounts
    best_metric: float | None
    best_trial_id: int | None
    hypervolume: float = Field(
        description="Of (metric, -log10 param_fraction) above `reference`: the metric's lowest value (0, or -1 for "
        "correlations) and 100% of the parameters."
    )
    reference: dict[str, float] = Field(description="The point the hypervolume is measured from.")
    created_at: datetime
    stopped_at: datetime | None
    elapsed_s: float = Field(description="From creation to the last finished trial (or now, while running).")
    proposal_error: str | None = Field(None, description="The last error of the proposer, if proposing fails.")
    paused_at: datetime | None = Field(None, description="When the study paused itself (state paused).")
    pause_reason: str | None = Field(None, description="Why it paused: how many trials failed, and with what.")
    early_stopping: EarlyStoppingSettings | None = Field(
        None, description="The study's early-stopping settings (null: created before they existed; off)."
    )
    warm_start: WarmStartPublic | None = Field(
        None, description="The earlier studies it started from (null: none); their trials never count here."
    )
    failures: list[FailureGroupPublic] | None = Field(
        None, description="Failed trials grouped by cause, most frequent first (in GET /studies/{id})."
    )


class StudyEventPublic(BaseModel):
    """Something the server did to a study on its own, and why."""

    id: int
    at: datetime
    kind: str = Field(
        description="overrun (a proposal took longer than the server's budget and was abandoned), fallback (the study's "
        "proposals come from sobol for a while: which and why are in the message), cancelled (the study stopped while "
        "a proposal for it ran)."
    )
    message: str


class StudyEventsPublic(Page):
    study_id: Id
    data: list[StudyEventPublic] = Field(description="The study's last events, oldest first.")


class StudiesPublic(Page):
    data: list[StudyPublic]


class ParetoPublic(Page):
    study_id: Id
    metric_name: str = Field(description="The metric of the study's task (accuracy, f1, matthews, ...).")
    hypervolume: float
    reference: dict[str, float] = Field(description="The reference point the hypervolume is measured from.")
    objectives: dict[str, str] = Field(description="What each objective is and its direction.")
    data: list[TrialPublic] = Field(description="Completed non-dominated trials, best metric first.")
