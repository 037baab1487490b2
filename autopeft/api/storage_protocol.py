"""The written contract of storage: every call the service, the proposer and the routes make.

:class:`autopeft.api.storage.Storage` implements it over SQLAlchemy Core, on SQLite and PostgreSQL
alike; ``tests/api/test_api_storage.py`` runs one suite against both backends through this type,
and checks that the class's signatures are the ones written here.

What every implementation promises: one call is one transaction (all of it happens or none);
records come out immutable (:mod:`autopeft.api.records`), never live rows; errors are :mod:`autopeft.api.errors`
(:class:`~autopeft.api.errors.NotFoundError` for an unknown study or trial,
:class:`~autopeft.api.errors.StaleLeaseError` for a lease that is not the trial's current one, :class:`~autopeft.api.errors.StorageError` when the
database fails). State changes are conditional: a trial becomes running only if it is still
queued, and a report lands only under the lease it was made with. ``now`` parameters exist for
tests; None is the current UTC time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from autopeft.api.failures import FailedTrial
from autopeft.api.records import (
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

#: Per study: trials per state, and when the last one finished.
CountsByStudy = dict[int, tuple[dict[str, int], datetime | None]]


@runtime_checkable
class StorageProtocol(Protocol):
    """Studies, trials, workers' visits and proposal locks."""

    def ping(self) -> bool:
        """Whether the database answers (never raises)."""
        ...

    # -- studies ------------------------------------------------------------------------------
    def create_study(self, new: NewStudy, now: datetime | None = None) -> StudyRecord:
        """Store a study and queue its baselines first, numbered from 0 in the order given."""
        ...

    def get_study(self, study_id: int) -> StudyRecord: ...

    def list_studies(self) -> list[StudyRecord]:
        """Every study, by id."""
        ...

    def trial_counts(self, study_ids: Sequence[int] | None = None) -> CountsByStudy:
        """Of these studies (None: all), the studies that have trials."""
        ...

    def completed_objectives(self, study_id: int) -> list[tuple[int, float, float]]:
        """``(trial id, metric, param_fraction)`` of the completed trials, by id."""
        ...

    def completed_trials(self, study_ids: Sequence[int]) -> list[CompletedTrial]:
        """The completed trials of these studies (unknown ids: none), by study and id: what a warm start reads."""
        ...

    def trial_sources(self, study_id: int) -> dict[str, int]:
        """How many of the study's trials each source (``sobol``, ``gp``, ``warm_start``, ...) queued."""
        ...

    def stop_study(self, study_id: int, now: datetime | None = None) -> StudyRecord:
        """No more proposals or claims; queued trials stay for a resume, running ones may still report."""
        ...

    def pause_study(self, study_id: int, reason: str, now: datetime | None = None) -> bool:
        """Pause a study that is neither stopped nor paused; False if it was not running."""
        ...

    def resume_study(self, study_id: int, now: datetime | None = None) -> StudyRecord:
        """Undo a stop or a pause: proposals and claims again (failures before it no longer count)."""
        ...

    def recent_finished(self, study_id: int, limit: int) -> list[tuple[str, str | None]]:
        """``(state, error)`` of the last ``limit`` finished trials (completed, failed or stopped) since the last
        resume, newest first."""
        ...

    def failed_trials(self, study_id: int) -> list[FailedTrial]:
        """The failed trials, by id."""
        ...

    def delete_study(self, study_id: int) -> None:
        """The study, its trials and its proposal lock."""
        ...

    def set_proposal_error(self, study_id: int, message: str | None) -> None: ...

    def add_event(self, study_id: int, kind: str, message: str) -> None:
        """Record what the server did to the study on its own (nothing if the study is gone)."""
        ...

    def events(self, study_id: int, limit: int) -> list[StudyEventRecord]:
        """The study's last ``limit`` events, oldest first (:class:`NotFoundError` without the study)."""
        ...

    # -- trials -------------------------------------------------------------------------------
    def get_trial(self, trial_id: int) -> TrialRecord: ...

    def study_of_trial(self, trial_id: int) -> StudyRecord:
        """The study the trial belongs to, as stored now."""
        ...

    def get_trials(self, trial_ids: Sequence[int]) -> list[TrialRecord]:
        """The trials with these ids, by id; missing ones are left out."""
        ...

    def list_trials(
        self, study_id: int, state: str | None = None, offset: int = 0, limit: int | None = None
    ) -> tuple[list[TrialRecord], int]:
        """A page of the study's trials by number, and how many match in all."""
        ...

    def claim(
        self, worker_id: str, study_id: int | None = None, now: datetime | None = None, touch_worker: bool = True
    ) -> Claim | None:
        """Lease the oldest queued trial of a study that is neither stopped nor paused (of ``study_id``, or
        of any), to one worker only; None: no work. ``touch_worker`` records the worker's visit."""
        ...

    def idle_reason(self, study_id: int | None) -> str:
        """Why a claim found nothing: ``proposing``, ``budget used``, ``study done``, ``study stopped``,
        ``study paused`` or ``no work``."""
        ...

    def heartbeat(self, trial_id: int, token: str, now: datetime | None = None) -> Lease:
        """Extend the lease of a running trial held under ``token`` by the study's lease length; a lease that
        lapsed while nobody claimed the trial since is taken back."""
        ...

    def complete(self, trial_id: int, token: str, report: Report, now: datetime | None = None) -> TrialRecord:
        """Record a result; the same report again is answered with the stored trial."""
        ...

    def fail(self, trial_id: int, token: str, error: str, now: datetime | None = None) -> TrialRecord:
        """Record that the trial could not be trained (it is not retried); idempotent like :meth:`complete`."""
        ...

    def release(self, trial_id: int, token: str, now: datetime | None = None) -> TrialRecord:
        """Give a running trial back to the queue at once, without using a retry."""
        ...

    def record_progress(
        self, trial_id: int, token: str, step: int, metric: float, now: datetime | None = None
    ) -> tuple[TrialRecord, Lease | None]:
        """Add ``(step, metric)`` to a running trial's curve and renew its lease (taken back like
        :meth:`heartbeat` does); a trial already stopped under ``token`` comes back unchanged with no lease."""
        ...

    def curves(self, study_id: int, exclude: int | None = None) -> list[CurveRecord]:
        """The study's running, completed and stopped trials with a curve (but ``exclude``), by id."""
        ...

    def stop_trial(
        self,
        trial_id: int,
        token: str,
        metric: float,
        peft_params: int,
        param_fraction: float,
        now: datetime | None = None,
    ) -> TrialRecord:
        """running -> stopped under ``token`` (the early-stopping rule), with the metric so far and the size."""
        ...

    def report_stopped(self, trial_id: int, token: str, report: Report) -> TrialRecord:
        """The worker's result for a trial stopped under ``token``; it stays stopped."""
        ...

    def requeue_expired(self, now: datetime | None = None) -> tuple[int, int]:
        """Running trials whose lease expired go back to the queue, or fail once their retries are used:
        ``(requeued, failed)``."""
        ...

    # -- proposals ------------------------------------------------------------------------------
    def demands(self, since: datetime) -> tuple[list[Demand], int]:
        """The studies that may need proposals, with their queues and the workers seen since ``since``;
        and the number of workers seen that claim from any study."""
        ...

    def acquire_proposal_lock(self, study_id: int, owner: str, ttl_s: float, now: datetime | None = None) -> bool:
        """Take the study's proposer lock (free, expired, or ``owner``'s already) for ``ttl_s`` seconds."""
        ...

    def release_proposal_lock(self, study_id: int, owner: str) -> None: ...

    def proposal_snapshot(
        self, study_id: int, known: dict[int, tuple[float, ...] | None] | None = None
    ) -> ProposalSnapshot:
        """The study's trials as optimiser input; ``known`` (trial id -> point) saves reading points again."""
        ...

    def add_proposals(
        self, study_id: int, owner: str, new: Sequence[NewTrial], now: datetime | None = None
    ) -> list[int]:
        """Queue proposed trials while ``owner`` holds the lock and the study runs, never beyond ``max_trials``
        nor twice the same configuration; the ids inserted."""
        ...
