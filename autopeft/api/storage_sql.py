"""The SQL that storage runs often, built once, and how rows become records.

Building a statement costs more than running a cached one, so the claim and report
statements are module constants with bind parameters (names start with ``b_``: a bind
may not share a column's name in an UPDATE).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Row, String, bindparam, cast, func, literal, select, update

from autopeft.api.errors import NotFoundError, StorageError
from autopeft.api.records import REPORT_FIELDS, STUDY_INPUT, NewTrial, StudyInput, StudyRecord, TrialRecord
from autopeft.early_stopping import EarlyStoppingSettings
from autopeft.errors import AutoPeftError
from autopeft.migrations.tables import studies, trials
from autopeft.optimize import ParamBudget, WarmStartSettings, parse_optimizer
from autopeft.train.settings import TrainingSettings
from autopeft.trial_state import TrialState


# -- statements ------------------------------------------------------------------------------------------
def pick_queued(*where: Any) -> Any:
    """The oldest queued trial of a study neither paused nor stopped, locked; concurrent claimers skip locked rows
    (PostgreSQL)."""
    return (
        select(trials.c.id, studies.c.lease_seconds)
        .join(studies, studies.c.id == trials.c.study_id)
        .where(
            trials.c.state == TrialState.QUEUED, studies.c.paused_at.is_(None), studies.c.stopped_at.is_(None), *where
        )
        .order_by(trials.c.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=trials)
    )


PICK_ANY = pick_queued()
PICK_OF_STUDY = pick_queued(trials.c.study_id == bindparam("b_study"))
TAKE = (
    update(trials)
    .where(trials.c.id == bindparam("b_id"), trials.c.state == TrialState.QUEUED)
    .values(
        state=TrialState.RUNNING,
        worker_id=bindparam("b_worker"),
        lease_token=bindparam("b_token"),
        lease_expires_at=bindparam("b_expires", type_=trials.c.lease_expires_at.type),
        attempts=trials.c.attempts + 1,
        started_at=bindparam("b_now", type_=trials.c.started_at.type),
        heartbeat_at=bindparam("b_now", type_=trials.c.heartbeat_at.type),
        expired_token=None,  # claimed again: a late report of the expired lease no longer lands
        curve=None,  # a new run from the first step: the last run's progress is not this one's
    )
    .returning(*trials.c)
)


def finish_statement(state: str, *fields: str) -> Any:
    """running -> ``state`` with the report's ``fields``, only under the current lease token."""
    return (
        update(trials)
        .where(
            trials.c.id == bindparam("b_id"),
            trials.c.state == TrialState.RUNNING,
            trials.c.lease_token == bindparam("b_token"),
        )
        .values(
            state=state,
            finished_at=bindparam("b_now", type_=trials.c.finished_at.type),
            lease_expires_at=None,
            **{f: bindparam(f"b_{f}", type_=trials.c[f].type) for f in fields},
        )
        .returning(*trials.c)
    )


def late_finish_statement(state: str, *fields: str) -> Any:
    """A report under the lease that expired last, while nobody has claimed the trial since: it waits in
    the queue, or failed when that expiry used its last retry. The first valid result wins and the queued
    trial is withdrawn; the token becomes the trial's again, so the same report repeated is harmless."""
    cleared = {} if "error" in fields else {"error": None}  # a result replaces the expiry's failure message
    return (
        update(trials)
        .where(
            trials.c.id == bindparam("b_id"),
            trials.c.state.in_(LAPSED_STATES),
            trials.c.expired_token == bindparam("b_token"),
        )
        .values(
            state=state,
            finished_at=bindparam("b_now", type_=trials.c.finished_at.type),
            lease_token=trials.c.expired_token,
            expired_token=None,
            lease_expires_at=None,
            **cleared,
            **{f: bindparam(f"b_{f}", type_=trials.c[f].type) for f in fields},
        )
        .returning(*trials.c)
    )


#: Where a trial whose lease lapsed waits while nobody else holds it: back in the queue, or failed when that
#: expiry used its last retry. Its ``expired_token`` marks it; a claim clears it.
LAPSED_STATES = (TrialState.QUEUED, TrialState.FAILED)


def revive_statement() -> Any:
    """The lapsed lease ``b_token`` becomes the trial's lease again (its worker is back: a heartbeat or a
    progress report after a network cut longer than the lease), if nobody claimed the trial since."""
    return (
        update(trials)
        .where(
            trials.c.id == bindparam("b_id"),
            trials.c.state.in_(LAPSED_STATES),
            trials.c.expired_token == bindparam("b_token"),
        )
        .values(
            state=TrialState.RUNNING,
            lease_token=trials.c.expired_token,
            expired_token=None,
            lease_expires_at=bindparam("b_expires", type_=trials.c.lease_expires_at.type),
            heartbeat_at=bindparam("b_now", type_=trials.c.heartbeat_at.type),
            finished_at=None,
            error=None,
        )
        .returning(*trials.c)
    )


#: The result fields the server sets when its early-stopping rule stops a trial (the worker's report refines them).
STOP_FIELDS = ("metric", "peft_params", "param_fraction")
COMPLETE = finish_statement(TrialState.COMPLETED, *REPORT_FIELDS)
STOP = finish_statement(TrialState.STOPPED, *STOP_FIELDS)
#: The worker's result for a trial the rule stopped (the state it keeps), under the lease it ran with.
STOPPED_REPORT = (
    update(trials)
    .where(
        trials.c.id == bindparam("b_id"),
        trials.c.state == TrialState.STOPPED,
        trials.c.lease_token == bindparam("b_token"),
    )
    .values(**{f: bindparam(f"b_{f}", type_=trials.c[f].type) for f in REPORT_FIELDS})
    .returning(*trials.c)
)
FAIL = finish_statement(TrialState.FAILED, "error")
LATE_COMPLETE = late_finish_statement(TrialState.COMPLETED, *REPORT_FIELDS)
LATE_FAIL = late_finish_statement(TrialState.FAILED, "error")
REVIVE = revive_statement()


# -- row helpers --------------------------------------------------------------------------------
def aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def one_study(conn: Connection, study_id: int, lock: bool = False) -> Row[Any]:
    query = select(studies).where(studies.c.id == study_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFoundError(f"study {study_id} does not exist")
    return row


def one_trial(conn: Connection, trial_id: int) -> Row[Any]:
    row = conn.execute(select(trials).where(trials.c.id == trial_id)).first()
    if row is None:
        raise NotFoundError(f"trial {trial_id} does not exist")
    return row


#: A study's settings: JSON columns that records hold as these models (None stays None).
SETTINGS: dict[str, Callable[[Any], BaseModel]] = {
    "optimizer": parse_optimizer,
    "training": TrainingSettings.model_validate,
    "constraints": ParamBudget.model_validate,
    "early_stopping": EarlyStoppingSettings.model_validate,
    "warm_start": WarmStartSettings.model_validate,
}


def study_values(new: StudyInput) -> dict[str, Any]:
    """The columns of a new study: its fields, with its settings as JSON."""
    values = {k: getattr(new, k) for k in STUDY_INPUT}
    for name in SETTINGS:
        if values[name] is not None:
            values[name] = values[name].model_dump(mode="json")
    return values


def study_record(row: Row[Any]) -> StudyRecord:
    """A stored study, its settings parsed (the one place they are: services and the proposer share them)."""
    m = row._mapping
    values = {f: m[f] for f in StudyRecord.__dataclass_fields__}
    for name, parse in SETTINGS.items():
        if values[name] is not None:
            try:
                values[name] = parse(values[name])
            except (AutoPeftError, ValidationError) as err:
                raise StorageError(f"study {values['id']}: its stored {name} cannot be read ({err})") from None
    return StudyRecord(**values)


def trial_record(row: Row[Any]) -> TrialRecord:
    m = row._mapping
    values = {f: m[f] for f in TrialRecord.__dataclass_fields__}
    values["x"] = tuple(values["x"]) if values["x"] is not None else None
    values["state"] = TrialState(values["state"])
    values["curve"] = curve_of(values["curve"])
    return TrialRecord(**values)


def curve_of(value: Any) -> tuple[tuple[int, float], ...] | None:
    """A stored curve (``[[step, metric], ...]``) as an immutable tuple of pairs."""
    return None if value is None else tuple((int(step), float(metric)) for step, metric in value)


def with_point(curve: Any, step: int, metric: float) -> list[list[float]]:
    """``curve`` with ``(step, metric)`` added by step; a repeated step (a retried report) replaces its value."""
    points = {int(s): float(m) for s, m in (curve or [])}
    points[step] = metric
    return [[s, points[s]] for s in sorted(points)]


def trial_row(study_id: int, number: int, t: NewTrial, now: datetime) -> dict[str, Any]:
    return {
        "study_id": study_id,
        "number": number,
        "config": t.config,
        "config_key": t.config_key,
        "x": list(t.x) if t.x is not None else None,
        "source": t.source,
        "label": t.label,
        "state": TrialState.QUEUED,
        "attempts": 0,
        "expiries": 0,
        "created_at": now,
    }


def point_of(x: Any) -> tuple[float, ...] | None:
    return None if x is None else tuple(float(v) for v in x)


def same_token(stored: str | None, given: str) -> bool:
    return stored is not None and secrets.compare_digest(stored.encode(), given.encode())


def same_values(row: Row[Any], values: dict[str, Any]) -> bool:
    m = row._mapping
    return all(m[k] == v for k, v in values.items())


def stale_message(trial_id: int, state: str, worker_id: str | None = None) -> str:
    """Why a token is not the trial's lease, as far as the server knows: it says that another worker holds
    the trial only when one does."""
    if state == TrialState.RUNNING:
        holder = f"worker {worker_id!r} holds it" if worker_id else "another lease holds it"
        return (
            f"trial {trial_id}: this lease token is not the trial's lease; {holder} now (an expired lease is handed on)"
        )
    if state == TrialState.QUEUED:
        return (
            f"trial {trial_id}: this lease is void: the trial went back to the queue (given back, or handed on "
            "since its lease expired)"
        )
    return f"trial {trial_id} is already {state}; this report is refused"


def expired_message() -> Any:
    """SQL for 'lease expired N times (last worker: W)' (|| works on SQLite and PostgreSQL)."""
    times = cast(trials.c.expiries + 1, String)
    worker = func.coalesce(trials.c.worker_id, "?")
    return literal("lease expired ", String) + times + " times (last worker: " + worker + ")"
