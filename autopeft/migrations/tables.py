"""The tables (SQLAlchemy 2 declarative): what the revisions in ``versions/`` build; a test checks that they match.

They live beside the migrations, not in ``api``, so that Alembic's ``env.py`` reads them without
importing the app; :mod:`autopeft.api.storage` reads and writes through them.

- ``studies``: what to search (task, model, space, optimiser, budget) and ``n_trials``, the
  number of trials it holds, kept by every insert so the proposer never counts rows;
  ``warm_start`` names the earlier studies it starts from (migration 0005), ``constraints`` holds its
  parameter budget (migration 0006).
- ``trials``: one configuration of a study and its life: queued -> running (leased) ->
  completed | failed | stopped (ended early by the study's early-stopping rule, migration 0004);
  an expired lease returns it to queued. ``curve`` holds its ``[step, metric]`` progress reports. ``config_key`` is the
  SHA-256 of :meth:`autopeft.config.PeftConfig.key`; (study_id, config_key) is unique.
- ``workers``: when each worker last asked for work, and for which study (the queue depth).
- ``study_events``: what the server did to a study on its own (a proposal abandoned or cancelled, a
  fallback to a space-filling method), with when and why (migration 0007).
- ``proposal_locks``: the per-study proposer lock, a row with an owner and an expiry, so
  that it holds across server processes without holding a transaction open.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from autopeft.trial_state import TrialState

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass UTC-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def Json(nullable: bool = False) -> JSON:
    """JSON column; a nullable one stores Python None as SQL NULL."""
    return JSON(none_as_null=nullable)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[dict[str, Any]] = mapped_column(Json())
    model: Mapped[str | None] = mapped_column(String(1000))
    hf_config: Mapped[dict[str, Any]] = mapped_column(Json())
    num_labels: Mapped[int] = mapped_column(Integer)
    space_name: Mapped[str] = mapped_column(String(200))
    space: Mapped[dict[str, Any]] = mapped_column(Json())
    optimizer: Mapped[dict[str, Any]] = mapped_column(Json())
    training: Mapped[dict[str, Any]] = mapped_column(Json())
    seed: Mapped[int] = mapped_column(BigInteger)
    max_trials: Mapped[int] = mapped_column(Integer)
    max_retries: Mapped[int] = mapped_column(Integer)
    lease_seconds: Mapped[float] = mapped_column(Double)
    n_trials: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    proposal_error: Mapped[str | None] = mapped_column(Text)
    #: Set when repeated identical failures paused the study (no proposals, no claims) until resumed.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pause_reason: Mapped[str | None] = mapped_column(Text)
    #: The last resume: failures before it no longer count towards a pause.
    resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The study's early-stopping settings (:class:`autopeft.early_stopping.EarlyStoppingSettings`; migration 0004).
    early_stopping: Mapped[dict[str, Any] | None] = mapped_column(Json(nullable=True))
    #: The earlier studies it starts from (:class:`autopeft.optimize.WarmStartSettings`; migration 0005); null: none.
    warm_start: Mapped[dict[str, Any] | None] = mapped_column(Json(nullable=True))
    #: Its parameter budget (:class:`autopeft.optimize.ParamBudget`; migration 0006 moved it out of ``optimizer``,
    #: which holds the method's settings only); null: none.
    constraints: Mapped[dict[str, Any] | None] = mapped_column(Json(nullable=True))

    __table_args__ = (
        CheckConstraint("max_trials >= 1", name="max_trials_positive"),
        CheckConstraint("n_trials >= 0", name="n_trials_nonnegative"),
    )


class Trial(Base):
    __tablename__ = "trials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(Integer, ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(Json())
    config_key: Mapped[str] = mapped_column(String(64))
    x: Mapped[list[float] | None] = mapped_column(Json(nullable=True))
    source: Mapped[str] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    expiries: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    #: The token of the lease that expired last while the trial waits in the queue again: its worker's
    #: late report still lands until another worker claims the trial (migration 0003).
    expired_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    metric: Mapped[float | None] = mapped_column(Double)
    peft_params: Mapped[int | None] = mapped_column(BigInteger)
    param_fraction: Mapped[float | None] = mapped_column(Double)
    metrics: Mapped[dict[str, float] | None] = mapped_column(Json(nullable=True))
    extra: Mapped[dict[str, Any] | None] = mapped_column(Json(nullable=True))
    error: Mapped[str | None] = mapped_column(Text)
    #: ``[[step, metric], ...]``: every progress report while it trained, by step (migration 0004).
    curve: Mapped[list[list[float]] | None] = mapped_column(Json(nullable=True))

    __table_args__ = (
        UniqueConstraint("study_id", "config_key"),
        UniqueConstraint("study_id", "number"),
        # the states of TrialState (a migration that changes them writes its own list out)
        CheckConstraint(f"state IN ({', '.join(repr(s.value) for s in TrialState)})", name="state_known"),
        Index(None, "state", "id"),
        Index(None, "study_id", "state"),
    )


class Worker(Base):
    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    study_id: Mapped[int | None] = mapped_column(Integer)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProposalLock(Base):
    __tablename__ = "proposal_locks"

    study_id: Mapped[int] = mapped_column(Integer, ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StudyEvent(Base):
    __tablename__ = "study_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(Integer, ForeignKey("studies.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: What happened, in one word: ``overrun``, ``fallback``, ``cancelled`` (see :mod:`autopeft.api.proposer`).
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index(None, "study_id", "id"),)


studies = Study.__table__
trials = Trial.__table__
workers = Worker.__table__
proposal_locks = ProposalLock.__table__
study_events = StudyEvent.__table__
