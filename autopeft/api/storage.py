"""Storage over SQLAlchemy Core: every read and write of studies and trials.

:class:`Storage` implements :class:`autopeft.api.storage_protocol.StorageProtocol`, the written contract.

One method is one transaction (:func:`autopeft.api.db.transaction`). Methods return immutable
records (:mod:`autopeft.api.records`) and raise :mod:`autopeft.api.errors`. State changes are conditional
updates: a trial becomes running only if it is still queued, a report lands only if
the trial is still running under the same lease token.

Claiming takes the oldest queued trial: on PostgreSQL with ``SELECT ... FOR UPDATE
SKIP LOCKED`` (concurrent claimers skip each other's rows), on SQLite inside a write
transaction (``BEGIN IMMEDIATE``: claimers queue on the database lock).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from autopeft.api import storage_sql as sql
from autopeft.api.db import transaction
from autopeft.api.errors import NotFoundError, StaleLeaseError, StorageError
from autopeft.api.failures import FailedTrial
from autopeft.api.records import (
    REPORT_FIELDS,
    Claim,
    CompletedTrial,
    CurveRecord,
    Demand,
    Lease,
    NewStudy,
    NewTrial,
    ProposalSnapshot,
    Report,
    StudyEventRecord,
    StudyRecord,
    TrialRecord,
)
from autopeft.api.storage_protocol import CountsByStudy
from autopeft.migrations.engine import is_sqlite
from autopeft.migrations.tables import proposal_locks, studies, study_events, trials, workers
from autopeft.optimize.warm import WARM_SOURCE
from autopeft.trial_state import FINISHED_STATES, OPEN_STATES, TrialState

#: Studies that propose and hand out trials: neither stopped nor paused.
ACTIVE = (studies.c.stopped_at.is_(None), studies.c.paused_at.is_(None))
#: A claim that finds the queue empty sweeps expired leases at most this often (per process).
LAZY_SWEEP_S = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Storage:
    """Studies and trials in one SQL database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, started_at: datetime | None = None) -> None:
        self.engine = engine
        #: Leases expire only once this process has been up for one lease length (see requeue_expired).
        self.started_at = started_at or utcnow()
        self._insert = sqlite_insert if is_sqlite(engine) else pg_insert
        self._swept_at = -LAZY_SWEEP_S
        self._insert_proposals = (
            self._insert(trials)
            .on_conflict_do_nothing(index_elements=[trials.c.study_id, trials.c.config_key])
            .returning(trials.c.id)
        )

    def ping(self) -> bool:
        """Whether the database answers."""
        try:
            with transaction(self.engine) as conn:
                conn.execute(select(1))
        except StorageError:
            return False
        return True

    # -- studies ------------------------------------------------------------------------------
    def create_study(self, new: NewStudy, now: datetime | None = None) -> StudyRecord:
        """Store a study and its baseline trials (queued first, in the order given)."""
        now = now or utcnow()
        values = sql.study_values(new)
        with transaction(self.engine, write=True) as conn:
            study_id = conn.execute(
                insert(studies).values(**values, n_trials=len(new.baselines), created_at=now).returning(studies.c.id)
            ).scalar_one()
            if new.baselines:
                conn.execute(insert(trials), [sql.trial_row(study_id, i, t, now) for i, t in enumerate(new.baselines)])
            return sql.study_record(conn.execute(select(studies).where(studies.c.id == study_id)).one())

    def get_study(self, study_id: int) -> StudyRecord:
        with transaction(self.engine) as conn:
            return sql.study_record(sql.one_study(conn, study_id))

    def list_studies(self) -> list[StudyRecord]:
        with transaction(self.engine) as conn:
            return [sql.study_record(r) for r in conn.execute(select(studies).order_by(studies.c.id))]

    def trial_counts(self, study_ids: Sequence[int] | None = None) -> CountsByStudy:
        """Per study: trials per state, and when the last one finished."""
        query = select(trials.c.study_id, trials.c.state, func.count(), func.max(trials.c.finished_at)).group_by(
            trials.c.study_id, trials.c.state
        )
        if study_ids is not None:
            query = query.where(trials.c.study_id.in_(list(study_ids)))
        out: CountsByStudy = {}
        with transaction(self.engine) as conn:
            for study_id, state, count, last in conn.execute(query):
                counts, prev = out.get(study_id, ({}, None))
                counts[state] = int(count)
                last = sql.aware(last)
                out[study_id] = (counts, max(filter(None, [prev, last]), default=None))
        return out

    def completed_objectives(self, study_id: int) -> list[tuple[int, float, float]]:
        """``(trial id, metric, param_fraction)`` of the study's completed trials, by id."""
        query = (
            select(trials.c.id, trials.c.metric, trials.c.param_fraction)
            .where(trials.c.study_id == study_id, trials.c.state == TrialState.COMPLETED)
            .order_by(trials.c.id)
        )
        with transaction(self.engine) as conn:
            return [(int(i), float(m), float(f)) for i, m, f in conn.execute(query)]

    def completed_trials(self, study_ids: Sequence[int]) -> list[CompletedTrial]:
        """The completed trials of these studies, by study and id (a warm start reads them at each proposal,
        so a study that still runs contributes what it has)."""
        if not study_ids:
            return []
        query = (
            select(trials.c.study_id, trials.c.id, trials.c.config, trials.c.metric, trials.c.param_fraction)
            .where(trials.c.study_id.in_([int(i) for i in study_ids]), trials.c.state == TrialState.COMPLETED)
            .order_by(trials.c.study_id, trials.c.id)
        )
        with transaction(self.engine) as conn:
            return [
                CompletedTrial(int(s), int(i), dict(c), float(m), float(f))
                for s, i, c, m, f in conn.execute(query)
                if m is not None and f is not None
            ]

    def trial_sources(self, study_id: int) -> dict[str, int]:
        """How many of the study's trials each source queued."""
        query = select(trials.c.source, func.count()).where(trials.c.study_id == study_id).group_by(trials.c.source)
        with transaction(self.engine) as conn:
            return {str(source): int(n) for source, n in conn.execute(query)}

    def stop_study(self, study_id: int, now: datetime | None = None) -> StudyRecord:
        """No more proposals and no more claims; queued trials stay (a resume hands them out), running ones
        may still report."""
        now = now or utcnow()
        with transaction(self.engine, write=True) as conn:
            conn.execute(
                update(studies).where(studies.c.id == study_id, studies.c.stopped_at.is_(None)).values(stopped_at=now)
            )
            return sql.study_record(sql.one_study(conn, study_id))

    def pause_study(self, study_id: int, reason: str, now: datetime | None = None) -> bool:
        """Pause a running study (no proposals, no claims; queued trials wait). False if it was not running."""
        with transaction(self.engine, write=True) as conn:
            return bool(
                conn.execute(
                    update(studies)
                    .where(studies.c.id == study_id, *ACTIVE)
                    .values(paused_at=now or utcnow(), pause_reason=reason)
                ).rowcount
            )

    def resume_study(self, study_id: int, now: datetime | None = None) -> StudyRecord:
        """Undo a stop or a pause: the study proposes and hands out its queued trials again; failures before
        now no longer count towards the next pause."""
        with transaction(self.engine, write=True) as conn:
            row = sql.one_study(conn, study_id, lock=True)
            if row.stopped_at is not None or row.paused_at is not None:
                conn.execute(
                    update(studies)
                    .where(studies.c.id == study_id)
                    .values(stopped_at=None, paused_at=None, pause_reason=None, resumed_at=now or utcnow())
                )
            return sql.study_record(conn.execute(select(studies).where(studies.c.id == study_id)).one())

    def recent_finished(self, study_id: int, limit: int) -> list[tuple[str, str | None]]:
        """``(state, error)`` of the study's last ``limit`` finished trials since its last resume, newest first."""
        with transaction(self.engine) as conn:
            resumed = sql.one_study(conn, study_id).resumed_at
            query = select(trials.c.state, trials.c.error).where(
                trials.c.study_id == study_id, trials.c.state.in_(FINISHED_STATES)
            )
            if resumed is not None:
                query = query.where(trials.c.finished_at > resumed)
            rows = conn.execute(query.order_by(trials.c.finished_at.desc(), trials.c.id.desc()).limit(limit))
            return [(str(state), error) for state, error in rows]

    def failed_trials(self, study_id: int) -> list[FailedTrial]:
        """The study's failed trials, by id, with what grouping them by cause needs."""
        query = (
            select(trials.c.id, trials.c.number, trials.c.error, trials.c.worker_id, trials.c.finished_at)
            .where(trials.c.study_id == study_id, trials.c.state == TrialState.FAILED)
            .order_by(trials.c.id)
        )
        with transaction(self.engine) as conn:
            return [
                FailedTrial(int(i), int(n), error, worker, sql.aware(at))
                for i, n, error, worker, at in conn.execute(query)
            ]

    def delete_study(self, study_id: int) -> None:
        with transaction(self.engine, write=True) as conn:
            sql.one_study(conn, study_id, lock=True)
            conn.execute(delete(trials).where(trials.c.study_id == study_id))
            conn.execute(delete(proposal_locks).where(proposal_locks.c.study_id == study_id))
            conn.execute(delete(study_events).where(study_events.c.study_id == study_id))
            conn.execute(delete(studies).where(studies.c.id == study_id))

    def set_proposal_error(self, study_id: int, message: str | None) -> None:
        with transaction(self.engine, write=True) as conn:
            conn.execute(update(studies).where(studies.c.id == study_id).values(proposal_error=message))

    def add_event(self, study_id: int, kind: str, message: str) -> None:
        with transaction(self.engine, write=True) as conn:
            if conn.execute(select(studies.c.id).where(studies.c.id == study_id)).first() is None:
                return  # deleted meanwhile: nobody will read it
            conn.execute(insert(study_events).values(study_id=study_id, at=utcnow(), kind=kind, message=message))

    def events(self, study_id: int, limit: int) -> list[StudyEventRecord]:
        with transaction(self.engine) as conn:
            sql.one_study(conn, study_id)
            rows = conn.execute(
                select(study_events)
                .where(study_events.c.study_id == study_id)
                .order_by(study_events.c.id.desc())
                .limit(limit)
            ).all()
        return [StudyEventRecord(**dict(r._mapping)) for r in reversed(rows)]

    # -- trials -------------------------------------------------------------------------------
    def get_trial(self, trial_id: int) -> TrialRecord:
        with transaction(self.engine) as conn:
            return sql.trial_record(sql.one_trial(conn, trial_id))

    def study_of_trial(self, trial_id: int) -> StudyRecord:
        """The study a trial belongs to (404 if the trial does not exist), in one query."""
        with transaction(self.engine) as conn:
            row = conn.execute(
                select(studies).join(trials, trials.c.study_id == studies.c.id).where(trials.c.id == trial_id)
            ).first()
            if row is None:
                raise NotFoundError(f"trial {trial_id} does not exist")
            return sql.study_record(row)

    def get_trials(self, trial_ids: Sequence[int]) -> list[TrialRecord]:
        """The trials with these ids (missing ones are left out), by id."""
        if not trial_ids:
            return []
        with transaction(self.engine) as conn:
            rows = conn.execute(select(trials).where(trials.c.id.in_(list(trial_ids))).order_by(trials.c.id))
            return [sql.trial_record(r) for r in rows]

    def list_trials(
        self, study_id: int, state: str | None = None, offset: int = 0, limit: int | None = None
    ) -> tuple[list[TrialRecord], int]:
        """A study's trials by number, and how many match in all."""
        where = [trials.c.study_id == study_id] + ([trials.c.state == state] if state else [])
        with transaction(self.engine) as conn:
            sql.one_study(conn, study_id)
            total = conn.execute(select(func.count()).select_from(trials).where(*where)).scalar_one()
            query = select(trials).where(*where).order_by(trials.c.number).offset(offset)
            rows = conn.execute(query.limit(limit) if limit is not None else query)
            return [sql.trial_record(r) for r in rows], int(total)

    def claim(
        self, worker_id: str, study_id: int | None = None, now: datetime | None = None, touch_worker: bool = True
    ) -> Claim | None:
        """Lease the oldest queued trial (of ``study_id``, or of any study) to ``worker_id``; None: no work.

        When the queue is empty, expired leases are swept first (lazily, at most every
        ``LAZY_SWEEP_S`` per process), then the claim is tried again.
        """
        now = now or utcnow()
        claim = self._claim_once(worker_id, study_id, now, touch_worker)
        if claim is None and self._lazy_sweep_due() and sum(self.requeue_expired(now)):
            claim = self._claim_once(worker_id, study_id, now, False)
        return claim

    def _lazy_sweep_due(self) -> bool:
        now = time.monotonic()
        if now - self._swept_at < LAZY_SWEEP_S:
            return False
        self._swept_at = now
        return True

    def _claim_once(self, worker_id: str, study_id: int | None, now: datetime, touch: bool) -> Claim | None:
        with transaction(self.engine, write=True) as conn:
            if touch:
                self._touch_worker(conn, worker_id, study_id, now)
            if study_id is None:
                found = conn.execute(sql.PICK_ANY).first()
            else:
                found = conn.execute(sql.PICK_OF_STUDY, {"b_study": study_id}).first()
            if found is None:
                if study_id is not None:
                    sql.one_study(conn, study_id)  # 404 (and the worker's visit rolled back) for an unknown study
                return None
            lease = Lease(secrets.token_urlsafe(24), now + timedelta(seconds=found.lease_seconds), found.lease_seconds)
            params = {
                "b_id": found.id,
                "b_worker": worker_id,
                "b_token": lease.token,
                "b_expires": lease.expires_at,
                "b_now": now,
            }
            return Claim(sql.trial_record(conn.execute(sql.TAKE, params).one()), lease)

    def _touch_worker(self, conn: Connection, worker_id: str, study_id: int | None, now: datetime) -> None:
        stmt = self._insert(workers).values(worker_id=worker_id, study_id=study_id, last_seen_at=now)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[workers.c.worker_id], set_={"study_id": study_id, "last_seen_at": now}
            )
        )

    def idle_reason(self, study_id: int | None) -> str:
        """Why a claim (for ``study_id``, or any study) found nothing: ``proposing`` when trials can
        still come (budget left, or some were queued meanwhile), ``budget used`` when a study's last
        trials are running, else ``study done``, ``study stopped``, ``study paused`` or ``no work``."""
        queued = select(func.count()).where(trials.c.state == TrialState.QUEUED)
        with transaction(self.engine) as conn:
            if study_id is None:
                growing = conn.execute(
                    select(func.count()).where(*ACTIVE, studies.c.n_trials < studies.c.max_trials)
                ).scalar_one()
                of_active = trials.join(studies, studies.c.id == trials.c.study_id)
                waiting = conn.execute(queued.select_from(of_active).where(*ACTIVE)).scalar_one()
                return "proposing" if growing or waiting else "no work"
            study = sql.one_study(conn, study_id)
            if study.stopped_at is not None:
                return "study stopped"
            if study.paused_at is not None:
                return "study paused"
            if (
                study.n_trials < study.max_trials
                or conn.execute(queued.where(trials.c.study_id == study_id)).scalar_one()
            ):
                return "proposing"
            running = conn.execute(
                select(func.count()).where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING)
            ).scalar_one()
            return "budget used" if running else "study done"

    def heartbeat(self, trial_id: int, token: str, now: datetime | None = None) -> Lease:
        """Extend the lease of a running trial held under ``token``; or take back the lease ``token`` if it
        lapsed and nobody claimed the trial since (:meth:`_revive`)."""
        now = now or utcnow()
        with transaction(self.engine, write=True) as conn:
            row = conn.execute(
                select(trials.c.state, trials.c.lease_token, trials.c.worker_id, studies.c.lease_seconds)
                .join(studies, studies.c.id == trials.c.study_id)
                .where(trials.c.id == trial_id)
                .with_for_update(of=trials)
            ).first()
            if row is None:
                raise NotFoundError(f"trial {trial_id} does not exist")
            lease = Lease(token, now + timedelta(seconds=row.lease_seconds), row.lease_seconds)
            if row.state != TrialState.RUNNING or not sql.same_token(row.lease_token, token):
                if self._revive(conn, trial_id, lease, now) is None:
                    raise StaleLeaseError(sql.stale_message(trial_id, row.state, row.worker_id))
                return lease
            conn.execute(
                update(trials)
                .where(trials.c.id == trial_id)
                .values(lease_expires_at=lease.expires_at, heartbeat_at=now)
            )
            return lease

    def _revive(self, conn: Connection, trial_id: int, lease: Lease, now: datetime) -> Any:
        """The trial's row running again under ``lease``, if its token is the lease that lapsed last and the
        trial waits since (queued, or failed by that expiry); None otherwise.

        A worker cut off from a server that stayed up (a network cut longer than the lease) kept training:
        its first heartbeat or progress report after the cut takes its lease back, as a report under that
        token would land (:data:`autopeft.api.storage_sql.LAPSED_STATES`), so finished work is not thrown away and
        the trial is not trained twice. Once another worker claimed the trial, the token stays void.
        """
        params = {"b_id": trial_id, "b_token": lease.token, "b_expires": lease.expires_at, "b_now": now}
        return conn.execute(sql.REVIVE, params).first()

    def complete(self, trial_id: int, token: str, report: Report, now: datetime | None = None) -> TrialRecord:
        """Record a result; the same report again (same token) is answered with the stored trial."""
        values = {name: getattr(report, name) for name in REPORT_FIELDS}
        done = TrialState.COMPLETED
        return self._finish(sql.COMPLETE, sql.LATE_COMPLETE, trial_id, token, done, values, now or utcnow())

    def fail(self, trial_id: int, token: str, error: str, now: datetime | None = None) -> TrialRecord:
        """Record that the trial could not be trained; it is not retried."""
        failed = TrialState.FAILED
        return self._finish(sql.FAIL, sql.LATE_FAIL, trial_id, token, failed, {"error": error}, now or utcnow())

    def _finish(
        self, stmt: Any, late: Any, trial_id: int, token: str, state: str, values: dict[str, Any], now: datetime
    ) -> TrialRecord:
        """The report under the current lease; else under the lease that expired last, if the trial waits
        in the queue and nobody claimed it since (a worker cut off by an outage); else the same report
        repeated; else 409."""
        params = {"b_id": trial_id, "b_token": token, "b_now": now, **{f"b_{k}": v for k, v in values.items()}}
        with transaction(self.engine, write=True) as conn:
            row = conn.execute(stmt, params).first() or conn.execute(late, params).first()
            if row is not None:
                return sql.trial_record(row)
            row = sql.one_trial(conn, trial_id)
            if row.state == state and sql.same_token(row.lease_token, token) and sql.same_values(row, values):
                return sql.trial_record(row)  # a repeated report
            raise StaleLeaseError(sql.stale_message(trial_id, row.state, row.worker_id))

    def release(self, trial_id: int, token: str, now: datetime | None = None) -> TrialRecord:
        """A worker gives its trial back (it is stopping): queued again at once, no retry used."""
        with transaction(self.engine, write=True) as conn:
            row = conn.execute(
                update(trials)
                .where(trials.c.id == trial_id, trials.c.state == TrialState.RUNNING, trials.c.lease_token == token)
                .values(
                    state=TrialState.QUEUED,
                    worker_id=None,
                    lease_token=None,
                    expired_token=None,
                    lease_expires_at=None,
                    heartbeat_at=None,
                )
                .returning(*trials.c)
            ).first()
            if row is None:
                found = sql.one_trial(conn, trial_id)
                raise StaleLeaseError(sql.stale_message(trial_id, found.state, found.worker_id))
            return sql.trial_record(row)

    # -- progress and early stopping ------------------------------------------------------------------
    def record_progress(
        self, trial_id: int, token: str, step: int, metric: float, now: datetime | None = None
    ) -> tuple[TrialRecord, Lease | None]:
        """Add ``(step, metric)`` to a running trial's curve and renew its lease (as :meth:`heartbeat`).

        A trial the rule stopped under this same lease is returned unchanged with no lease (the worker
        missed the answer and asks again); any other trial, or another token, is a
        :class:`~autopeft.api.errors.StaleLeaseError`.
        """
        now = now or utcnow()
        with transaction(self.engine, write=True) as conn:
            row = conn.execute(
                select(trials, studies.c.lease_seconds)
                .join(studies, studies.c.id == trials.c.study_id)
                .where(trials.c.id == trial_id)
                .with_for_update(of=trials)
            ).first()
            if row is None:
                raise NotFoundError(f"trial {trial_id} does not exist")
            if row.state == TrialState.STOPPED and sql.same_token(row.lease_token, token):
                return sql.trial_record(row), None
            lease = Lease(token, now + timedelta(seconds=row.lease_seconds), row.lease_seconds)
            if row.state != TrialState.RUNNING or not sql.same_token(row.lease_token, token):
                revived = self._revive(conn, trial_id, lease, now)
                if revived is None:
                    raise StaleLeaseError(sql.stale_message(trial_id, row.state, row.worker_id))
                row = revived
            updated = conn.execute(
                update(trials)
                .where(trials.c.id == trial_id)
                .values(
                    curve=sql.with_point(row.curve, step, metric), lease_expires_at=lease.expires_at, heartbeat_at=now
                )
                .returning(*trials.c)
            ).one()
            return sql.trial_record(updated), lease

    def curves(self, study_id: int, exclude: int | None = None) -> list[CurveRecord]:
        """The study's running, completed and stopped trials that reported progress (but ``exclude``), by id."""
        query = (
            select(trials.c.id, trials.c.state, trials.c.config, trials.c.param_fraction, trials.c.curve)
            .where(
                trials.c.study_id == study_id,
                trials.c.state.in_((TrialState.RUNNING, TrialState.COMPLETED, TrialState.STOPPED)),
                trials.c.curve.is_not(None),
            )
            .order_by(trials.c.id)
        )
        if exclude is not None:
            query = query.where(trials.c.id != exclude)
        with transaction(self.engine) as conn:
            return [
                CurveRecord(int(i), TrialState(state), config, fraction, sql.curve_of(curve) or ())
                for i, state, config, fraction, curve in conn.execute(query)
            ]

    def stop_trial(
        self,
        trial_id: int,
        token: str,
        metric: float,
        peft_params: int,
        param_fraction: float,
        now: datetime | None = None,
    ) -> TrialRecord:
        """The early-stopping rule ends a running trial held under ``token``: state ``stopped``, finished now,
        with its metric so far and its size (the worker's :meth:`report_stopped` refines them). Stopping it
        again under the same lease is answered with the stored trial."""
        values = {"metric": metric, "peft_params": peft_params, "param_fraction": param_fraction}
        params = {"b_id": trial_id, "b_token": token, "b_now": now or utcnow()}
        params.update({f"b_{k}": v for k, v in values.items()})
        with transaction(self.engine, write=True) as conn:
            row = conn.execute(sql.STOP, params).first()
            if row is not None:
                return sql.trial_record(row)
            row = sql.one_trial(conn, trial_id)
            if row.state == TrialState.STOPPED and sql.same_token(row.lease_token, token):
                return sql.trial_record(row)
            raise StaleLeaseError(sql.stale_message(trial_id, row.state, row.worker_id))

    def report_stopped(self, trial_id: int, token: str, report: Report) -> TrialRecord:
        """The worker's result for a trial the rule stopped under ``token`` (the kept state's metric, the
        exact parameter counts); the trial stays ``stopped``. Repeating it is harmless."""
        params = {"b_id": trial_id, "b_token": token, **{f"b_{k}": getattr(report, k) for k in REPORT_FIELDS}}
        with transaction(self.engine, write=True) as conn:
            row = conn.execute(sql.STOPPED_REPORT, params).first()
            if row is not None:
                return sql.trial_record(row)
            row = sql.one_trial(conn, trial_id)
            if row.state == TrialState.STOPPED:
                raise StaleLeaseError(f"trial {trial_id}: the lease token is not the one the trial was stopped under")
            raise StaleLeaseError(
                f"trial {trial_id} is {row.state}, not stopped by the early-stopping rule; use complete"
            )

    def requeue_expired(self, now: datetime | None = None) -> tuple[int, int]:
        """Running trials whose lease expired: back to the queue, or failed once their retries are used.

        Not before this process has been up for one lease length of the trial's study: after an
        outage the workers' heartbeats and backed-off reports need that long to arrive. A requeued (or
        failed) trial keeps the expired token (``expired_token``) and its last worker until it is claimed
        again, so that its worker, cut off but still training, can take the lease back with a heartbeat
        and its report still lands. Returns ``(requeued, failed)``.
        """
        now = now or utcnow()
        up_s = (now - self.started_at).total_seconds()
        lease_s = select(studies.c.lease_seconds).where(studies.c.id == trials.c.study_id).scalar_subquery()
        expired = and_(trials.c.state == TrialState.RUNNING, trials.c.lease_expires_at < now, lease_s <= up_s)
        retries = select(studies.c.max_retries).where(studies.c.id == trials.c.study_id).scalar_subquery()
        cleared = {"lease_token": None, "lease_expires_at": None, "expiries": trials.c.expiries + 1}
        lapsed = {**cleared, "expired_token": trials.c.lease_token}  # its worker may still come back with it
        with transaction(self.engine, write=True) as conn:
            failed = conn.execute(
                update(trials)
                .where(expired, trials.c.expiries >= retries)
                .values(state=TrialState.FAILED, finished_at=now, error=sql.expired_message(), **lapsed)
            ).rowcount
            requeued = conn.execute(
                update(trials).where(expired).values(state=TrialState.QUEUED, heartbeat_at=None, **lapsed)
            ).rowcount
        return int(requeued), int(failed)

    # -- proposals ------------------------------------------------------------------------------
    def demands(self, since: datetime) -> tuple[list[Demand], int]:
        """Studies that may need proposals (running and not paused, budget left) with their queues and workers seen
        since ``since``; and the number of workers seen that claim from any study."""
        with transaction(self.engine) as conn:
            active = conn.execute(
                select(studies.c.id, studies.c.max_trials, studies.c.n_trials, studies.c.optimizer).where(
                    *ACTIVE, studies.c.n_trials < studies.c.max_trials
                )
            ).all()
            if not active:
                return [], 0
            counts: dict[tuple[int, str], int] = {
                (s, st): int(n)
                for s, st, n in conn.execute(
                    select(trials.c.study_id, trials.c.state, func.count())
                    .where(trials.c.state.in_(OPEN_STATES))
                    .group_by(trials.c.study_id, trials.c.state)
                )
            }
            seen: dict[int | None, int] = {
                s: int(n)
                for s, n in conn.execute(
                    select(workers.c.study_id, func.count())
                    .where(workers.c.last_seen_at >= since)
                    .group_by(workers.c.study_id)
                )
            }
        demands = [
            Demand(
                s,
                m,
                n,
                counts.get((s, TrialState.QUEUED), 0),
                counts.get((s, TrialState.RUNNING), 0),
                seen.get(s, 0),
                str(optimizer.get("method", "gp")),
            )
            for s, m, n, optimizer in active
        ]
        return demands, seen.get(None, 0)

    def acquire_proposal_lock(self, study_id: int, owner: str, ttl_s: float, now: datetime | None = None) -> bool:
        """Take the study's proposer lock (free, expired, or already ours) until ``now + ttl_s``."""
        now = now or utcnow()
        expires = now + timedelta(seconds=ttl_s)
        with transaction(self.engine, write=True) as conn:
            if conn.execute(select(studies.c.id).where(studies.c.id == study_id)).first() is None:
                return False
            taken = conn.execute(
                self._insert(proposal_locks)
                .values(study_id=study_id, owner=owner, expires_at=expires)
                .on_conflict_do_nothing(index_elements=[proposal_locks.c.study_id])
                .returning(proposal_locks.c.study_id)
            ).first()
            if taken is not None:
                return True
            return bool(
                conn.execute(
                    update(proposal_locks)
                    .where(
                        proposal_locks.c.study_id == study_id,
                        or_(proposal_locks.c.expires_at < now, proposal_locks.c.owner == owner),
                    )
                    .values(owner=owner, expires_at=expires)
                ).rowcount
            )

    def release_proposal_lock(self, study_id: int, owner: str) -> None:
        with transaction(self.engine, write=True) as conn:
            conn.execute(
                delete(proposal_locks).where(proposal_locks.c.study_id == study_id, proposal_locks.c.owner == owner)
            )

    def proposal_snapshot(
        self, study_id: int, known: dict[int, tuple[float, ...] | None] | None = None
    ) -> ProposalSnapshot:
        """The study and its trials as optimiser input: completed (x, metric, fraction), pending, failed and
        stopped points.

        ``known`` holds points already read (a trial's point never changes): only newer ones are
        fetched, and ``known`` gains them. Trials outside the space (null ``x``: baselines the space
        cannot express) are left out.
        """
        known = {} if known is None else known
        after = max(known, default=0)
        fresh_x = case((trials.c.id > after, trials.c.x), else_=null())
        query = select(
            trials.c.id, trials.c.state, fresh_x, trials.c.metric, trials.c.param_fraction, trials.c.source
        ).where(trials.c.study_id == study_id)
        with transaction(self.engine) as conn:
            study = sql.study_record(sql.one_study(conn, study_id))
            rows = conn.execute(query).all()
            missing = [r[0] for r in rows if r[0] <= after and r[0] not in known]
            if missing:  # older trials this process has not seen (not expected: inserts are serialised)
                for trial_id, x in conn.execute(select(trials.c.id, trials.c.x).where(trials.c.id.in_(missing))):
                    known[trial_id] = sql.point_of(x)
        completed, pending, failed, stopped = [], [], [], []
        for trial_id, state, x, metric, fraction, _ in rows:
            if trial_id > after:
                known[trial_id] = sql.point_of(x)
            point = known.get(trial_id)
            if point is None:
                continue
            if state == TrialState.COMPLETED:
                completed.append((point, float(metric), float(fraction)))
            elif state == TrialState.FAILED:
                failed.append(point)
            elif state == TrialState.STOPPED:
                stopped.append(point)
            else:
                pending.append(point)
        queued = sum(r[1] == TrialState.QUEUED for r in rows)
        warm = sum(r[5] == WARM_SOURCE for r in rows)
        return ProposalSnapshot(
            study,
            tuple(completed),
            tuple(pending),
            tuple(failed),
            queued,
            len(rows),
            stopped=tuple(stopped),
            warm_started=warm,
        )

    def add_proposals(
        self, study_id: int, owner: str, new: Sequence[NewTrial], now: datetime | None = None
    ) -> list[int]:
        """Queue proposed trials if ``owner`` still holds the study's lock and the study still runs.

        Never exceeds ``max_trials``; a configuration already in the study is skipped (the
        unique key is the last line of defence). Returns the ids inserted.
        """
        now = now or utcnow()
        with transaction(self.engine, write=True) as conn:
            lock = conn.execute(
                select(proposal_locks.c.owner, proposal_locks.c.expires_at)
                .where(proposal_locks.c.study_id == study_id)
                .with_for_update()
            ).first()
            if lock is None or lock.owner != owner or sql.aware(lock.expires_at) < now:
                return []
            study = sql.one_study(conn, study_id, lock=True)
            room = study.max_trials - study.n_trials
            if study.stopped_at is not None or study.paused_at is not None or room <= 0 or not new:
                return []
            last = conn.execute(select(func.max(trials.c.number)).where(trials.c.study_id == study_id)).scalar()
            start = -1 if last is None else int(last)
            rows = [sql.trial_row(study_id, start + 1 + i, t, now) for i, t in enumerate(new[:room])]
            ids = conn.execute(self._insert_proposals, rows).scalars().all()
            conn.execute(update(studies).where(studies.c.id == study_id).values(n_trials=studies.c.n_trials + len(ids)))
            return [int(i) for i in ids]
