"""Immutable snapshots that storage hands out: never live ORM objects, never shared with a session.

JSON-valued fields are fresh copies read for each call; a study's settings are parsed once, here, into the
library's frozen models (:func:`autopeft.api.storage_sql.study_record`); the dataclasses are frozen. Each
field list is written here once: storage reads and writes columns by these names, and the
responses (:mod:`autopeft.api.schemas`) declare only what is public and copy the fields they share
with a record by name (:func:`autopeft.api.service.shared_fields`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autopeft.early_stopping import EarlyStoppingSettings
    from autopeft.optimize import MethodSettings, ParamBudget, WarmStartSettings
    from autopeft.train.settings import TrainingSettings
    from autopeft.trial_state import TrialState


@dataclass(frozen=True)
class NewTrial:
    """A trial to insert: a configuration, its key in the study and its point in the space (None: outside)."""

    config: dict[str, Any]
    config_key: str
    x: tuple[float, ...] | None
    source: str
    label: str | None = None


@dataclass(frozen=True, kw_only=True)
class StudyInput:
    """What a study is made of, stored as given: every field a study is created with (its columns too).

    Its settings are the library's models, shared by the API's schemas, the service and the proposer;
    storage writes them as JSON and reads them back (:data:`autopeft.api.storage_sql.SETTINGS`).
    """

    name: str
    task: dict[str, Any]
    model: str | None
    hf_config: dict[str, Any]
    num_labels: int
    space_name: str
    space: dict[str, Any]
    optimizer: MethodSettings
    training: TrainingSettings
    seed: int
    max_trials: int
    max_retries: int
    lease_seconds: float
    #: When trials are stopped early; None (studies older than migration 0004): off.
    early_stopping: EarlyStoppingSettings | None = None
    #: The earlier studies it starts from; None: none.
    warm_start: WarmStartSettings | None = None
    #: Its parameter budget; None: none (migration 0006 moved it out of the optimizer's JSON).
    constraints: ParamBudget | None = None


@dataclass(frozen=True, kw_only=True)
class NewStudy(StudyInput):
    """A validated study, ready to store (see :func:`autopeft.api.study_spec.prepare_study`)."""

    baselines: tuple[NewTrial, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StudyRecord(StudyInput):
    """A stored study: what it was created with, and what became of it."""

    id: int
    n_trials: int
    created_at: datetime
    stopped_at: datetime | None
    proposal_error: str | None
    paused_at: datetime | None = None
    pause_reason: str | None = None
    resumed_at: datetime | None = None


def field_names(record: type) -> tuple[str, ...]:
    """The fields of a record class, in order."""
    return tuple(f.name for f in fields(record))


#: The fields a study is created with, in order (the values :meth:`api.storage.Storage.create_study` inserts).
STUDY_INPUT: tuple[str, ...] = field_names(StudyInput)


@dataclass(frozen=True)
class StudyEventRecord:
    """Something the server did to a study on its own (``kind``: ``overrun``, ``fallback``, ``cancelled``)."""

    id: int
    study_id: int
    at: datetime
    kind: str
    message: str


@dataclass(frozen=True)
class StudyStats:
    """What a study's trials add up to."""

    counts: dict[str, int]
    best_metric: float | None
    best_trial_id: int | None
    last_finished_at: datetime | None


@dataclass(frozen=True)
class TrialRecord:
    id: int
    study_id: int
    number: int
    config: dict[str, Any]
    x: tuple[float, ...] | None
    source: str
    label: str | None
    state: TrialState
    attempts: int
    expiries: int
    worker_id: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    metric: float | None
    peft_params: int | None
    param_fraction: float | None
    metrics: dict[str, float] | None
    extra: dict[str, Any] | None
    error: str | None
    #: ``((step, metric), ...)`` by step: the progress reports of its current (or last) run; None: none yet.
    curve: tuple[tuple[int, float], ...] | None = None


@dataclass(frozen=True)
class CurveRecord:
    """What the early-stopping rule needs of another trial of the study: its size and its curve."""

    id: int
    state: TrialState
    config: dict[str, Any]
    param_fraction: float | None
    curve: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Lease:
    token: str
    expires_at: datetime
    seconds: float


@dataclass(frozen=True)
class Claim:
    """A trial just handed to a worker, with its lease."""

    trial: TrialRecord
    lease: Lease


@dataclass(frozen=True)
class Report:
    """A worker's result for a trial."""

    metric: float
    peft_params: int
    param_fraction: float
    metrics: dict[str, float] | None = None
    extra: dict[str, Any] | None = None


#: A report's fields, in order: the columns a completed trial stores its result in.
REPORT_FIELDS: tuple[str, ...] = field_names(Report)


@dataclass(frozen=True)
class Demand:
    """One active study's queue, as the proposer sees it."""

    study_id: int
    max_trials: int
    n_trials: int
    queued: int
    running: int
    workers: int
    method: str = "gp"

    @property
    def space_filling(self) -> bool:
        """Proposals are cheap (Sobol, random: no model), so the queue may run ahead of the workers."""
        from autopeft.optimize import METHODS

        method = METHODS.get(self.method)
        return method is not None and method.space_filling

    @property
    def modelled(self) -> bool:
        """The next round may fit a model (a model-based method with enough trials for one): it runs where an
        overrun can be abandoned. Before, every point of a round comes from the space-filling design."""
        from autopeft.optimize.settings import MIN_MODEL_POINTS

        return not self.space_filling and self.n_trials >= MIN_MODEL_POINTS

    @property
    def budget_left(self) -> int:
        return max(0, self.max_trials - self.n_trials)


@dataclass(frozen=True)
class ProposalSnapshot:
    """Everything the optimiser needs of a study, read under the study's proposal lock."""

    study: StudyRecord
    completed: tuple[tuple[tuple[float, ...], float, float], ...]  # (x, metric, param_fraction)
    pending: tuple[tuple[float, ...], ...]
    failed: tuple[tuple[float, ...], ...]
    queued: int
    trials: int = field(default=0)
    #: Points of trials the early-stopping rule stopped: never modelled (their metric is partial), never proposed again.
    stopped: tuple[tuple[float, ...], ...] = field(default=())
    #: Trials the study holds that its warm start queued (``source`` ``warm_start``), in any state.
    warm_started: int = field(default=0)


@dataclass(frozen=True)
class CompletedTrial:
    """A completed trial as another study's warm start reads it: its configuration and result."""

    study_id: int
    id: int
    config: dict[str, Any]
    metric: float
    param_fraction: float
