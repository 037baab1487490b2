"""What each endpoint does, between the routes (HTTP) and storage (SQL).

Blocking: routes call these methods in a worker thread. Responses are built from
storage records; hypervolumes are cached per study until its completed set changes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import BaseModel

from autopeft.accounting import estimate
from autopeft.api.errors import NotFoundError
from autopeft.api.failures import PAUSE_WINDOW, group_failures, pause_reason
from autopeft.api.proposer import Proposer
from autopeft.api.records import REPORT_FIELDS, Claim, Report, StudyRecord, TrialRecord, field_names
from autopeft.api.schemas.studies import (
    FailureGroupPublic,
    ParetoPublic,
    StudiesPublic,
    StudyCreate,
    StudyEventPublic,
    StudyEventsPublic,
    StudyPublic,
    TrialCounts,
    WarmStartPublic,
    WarmStartSourcePublic,
)
from autopeft.api.schemas.trials import (
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    LeasePublic,
    ProgressPublic,
    ProgressRequest,
    TrialAssignment,
    TrialPublic,
    TrialsPublic,
)
from autopeft.api.settings import Settings
from autopeft.api.storage import utcnow
from autopeft.api.storage_protocol import StorageProtocol
from autopeft.api.study_spec import (
    StudyContexts,
    check_metric,
    check_report,
    check_warm_start,
    metric_range,
    prepare_study,
    shape_from_hf_config,
)
from autopeft.config import parse_config
from autopeft.early_stopping import Decision, EarlyStoppingSettings, Peer, best_until, decide
from autopeft.encoder import ModelShape
from autopeft.errors import AutoPeftError, ConfigError
from autopeft.optimize.warm import WARM_SOURCE
from autopeft.trial_state import OPEN_STATES, TrialState

log = logging.getLogger("autopeft.api")

#: A worker's last-seen time is written at most this often (it only sets the queue depth).
TOUCH_EVERY_S = 5.0


@dataclass(frozen=True)
class Front:
    """A study's completed results summarised: best trial, Pareto front and its hypervolume."""

    n_completed: int
    best_metric: float | None
    best_trial_id: int | None
    front_ids: tuple[int, ...]
    hypervolume: float


@dataclass(frozen=True)
class NoWork:
    """Why a claim found nothing (see :meth:`api.storage.Storage.idle_reason`) and when to ask again."""

    retry_after_s: int
    reason: str

    @property
    def coming(self) -> bool:
        """Trials will be proposed for this claim: worth asking again in a moment."""
        return self.reason == "proposing"


class Service:
    """The server's behaviour, shared by all requests of one process."""

    def __init__(
        self, settings: Settings, storage: StorageProtocol, contexts: StudyContexts, proposer: Proposer | None
    ):
        self.settings, self.storage, self.contexts, self.proposer = settings, storage, contexts, proposer
        self._static: dict[int, StudyRecord] = {}  # immutable fields of studies, for assignments
        self._sizes: dict[int, dict[str, Any]] = {}  # each study's space size within its budget
        self._fronts: dict[int, tuple[tuple[int, Any], Front]] = {}
        self._touched: dict[tuple[str, int | None], float] = {}
        #: (study id, its creation time, trial id) -> the trial's estimated param_fraction (ids may be reused).
        self._fractions: dict[tuple[int, datetime, int], float | None] = {}
        self._lock = threading.Lock()

    # -- studies --------------------------------------------------------------------------------
    def create_study(self, body: StudyCreate) -> StudyPublic:
        new = prepare_study(body, self.settings.lease_seconds, self.settings.max_retries, self.settings.model_folders)
        if body.warm_start is not None:
            ids = body.warm_start.studies
            check_warm_start(ids, new.task, {i: self._study_or_none(i) for i in ids})
        study = self.storage.create_study(new)
        if self.proposer:
            self.proposer.wake()
        return self.study_view(study.id, detail=True)

    def _study_or_none(self, study_id: int) -> StudyRecord | None:
        try:
            return self.storage.get_study(study_id)
        except NotFoundError:
            return None

    def study_view(self, study_id: int, detail: bool = True) -> StudyPublic:
        study = self.storage.get_study(study_id)
        counts, last = self.storage.trial_counts([study_id]).get(study_id, ({}, None))
        return self._public(study, counts, last, detail)

    def list_studies(self) -> StudiesPublic:
        studies = self.storage.list_studies()
        stats = self.storage.trial_counts()
        data = [self._public(s, *stats.get(s.id, ({}, None)), detail=False) for s in studies]
        return StudiesPublic(data=data, count=len(data))

    def stop_study(self, study_id: int) -> StudyPublic:
        self.storage.stop_study(study_id)
        if self.proposer is not None:  # in this process: cancel its proposal now (another process polls)
            self.proposer.cancel(study_id)
        return self.study_view(study_id)

    def events(self, study_id: int, limit: int) -> StudyEventsPublic:
        records = self.storage.events(study_id, limit)
        data = [StudyEventPublic(id=e.id, at=e.at, kind=e.kind, message=e.message) for e in records]
        return StudyEventsPublic(study_id=study_id, data=data, count=len(data))

    def resume_study(self, study_id: int) -> StudyPublic:
        self.storage.resume_study(study_id)
        self._woke()
        return self.study_view(study_id)

    def delete_study(self, study_id: int) -> None:
        self.storage.delete_study(study_id)
        self.contexts.forget(study_id)
        with self._lock:
            self._static.pop(study_id, None)
            self._sizes.pop(study_id, None)
            self._fronts.pop(study_id, None)

    def _public(self, s: StudyRecord, counts: dict[str, int], last: datetime | None, detail: bool) -> StudyPublic:
        front = self._front(s, counts.get(TrialState.COMPLETED, 0), last)
        extra: dict[str, Any] = {}
        if detail:
            space = self.contexts.get(s).space
            failures = group_failures(self.storage.failed_trials(s.id)) if counts.get(TrialState.FAILED) else []
            extra = {
                "d": space.d,
                "space_size": self._space_size(s, space),
                "model_shape": space.shape.to_json(),
                "failures": [FailureGroupPublic(**asdict(g)) for g in failures],
            }
        fields = shared_fields(StudyPublic, s)
        fields["warm_start"] = self._warm_start_view(s, detail)
        return StudyPublic(
            **fields,
            state=_state(s, counts),
            counts=TrialCounts(**counts),
            best_metric=front.best_metric,
            best_trial_id=front.best_trial_id,
            hypervolume=front.hypervolume,
            reference=reference_json(s),
            elapsed_s=_elapsed(s, counts, last),
            **extra,
        )

    def _warm_start_view(self, study: StudyRecord, detail: bool) -> WarmStartPublic | None:
        """Which studies ``study`` started from; in detail, how many of its trials came from them and
        what those studies are now."""
        spec = study.warm_start
        if spec is None:
            return None
        view = WarmStartPublic(studies=list(spec.studies), max_configs=spec.max_configs)
        if not detail:
            return view
        view.configs = self.storage.trial_sources(study.id).get(WARM_SOURCE, 0)
        sources = []
        for i in spec.studies:
            found = self._study_or_none(i)
            if found is None:
                sources.append(WarmStartSourcePublic(id=i, name=None, task=None, state=None))
                continue
            counts, _ = self.storage.trial_counts([i]).get(i, ({}, None))
            sources.append(
                WarmStartSourcePublic(id=i, name=found.name, task=found.task.get("name"), state=_state(found, counts))
            )
        view.sources = sources
        return view

    def _space_size(self, study: StudyRecord, space: Any) -> dict[str, Any]:
        """The space's size within the study's budget (computed once per study: spaces never change)."""
        with self._lock:
            hit = self._sizes.get(study.id)
        if hit is None:
            from autopeft.optimize.budget import budget_size

            hit = budget_size(space, study.constraints, study.seed).to_json()
            with self._lock:
                self._sizes[study.id] = hit
        return hit

    def _front(self, study: StudyRecord, n_completed: int, last: datetime | None) -> Front:
        """The study's front, recomputed only when its completed trials changed."""
        stamp = (n_completed, last)
        with self._lock:
            hit = self._fronts.get(study.id)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        front = compute_front(self.storage.completed_objectives(study.id), metric_range(study)[1])
        with self._lock:
            self._fronts[study.id] = (stamp, front)
        return front

    def trials(self, study_id: int, state: str | None, offset: int, limit: int) -> TrialsPublic:
        records, total = self.storage.list_trials(study_id, state, offset, limit)
        shape = self.contexts.get(self.storage.get_study(study_id)).space.shape
        return TrialsPublic(data=[trial_public(t, shape) for t in records], count=total)

    def pareto(self, study_id: int) -> ParetoPublic:
        study = self.storage.get_study(study_id)
        counts, last = self.storage.trial_counts([study_id]).get(study_id, ({}, None))
        front = self._front(study, counts.get(TrialState.COMPLETED, 0), last)
        by_id = {t.id: t for t in self.storage.get_trials(front.front_ids)}
        shape = self.contexts.get(study).space.shape
        data = [trial_public(by_id[i], shape) for i in front.front_ids if i in by_id]
        name = metric_range(study)[0]
        return ParetoPublic(
            study_id=study_id,
            metric_name=name,
            hypervolume=front.hypervolume,
            reference=reference_json(study),
            objectives={"metric": f"maximise ({name})", "param_fraction": "minimise (log10 scale)"},
            data=data,
            count=len(data),
        )

    # -- trials ---------------------------------------------------------------------------------
    def claim(self, req: ClaimRequest) -> TrialAssignment | NoWork:
        """A trial for the worker, or why there is none; a database operation only, it never waits."""
        claim = self.storage.claim(req.worker_id, req.study_id, touch_worker=self._touch_due(req))
        if self.proposer is not None:
            self.proposer.wake()
        if claim is not None:
            return self._assignment(claim)
        reason = self.storage.idle_reason(req.study_id)
        wait = self.settings.retry_after_s if reason == "proposing" else self.settings.idle_retry_after_s
        return NoWork(wait, reason)

    def _touch_due(self, req: ClaimRequest) -> bool:
        key, now = (req.worker_id, req.study_id), time.monotonic()
        with self._lock:
            if now - self._touched.get(key, -1e9) < TOUCH_EVERY_S:
                return False
            if len(self._touched) > 100_000:
                self._touched.clear()
            self._touched[key] = now
        return True

    def _assignment(self, claim: Claim) -> TrialAssignment:
        t = claim.trial
        study = self._static_study(t.study_id)
        return TrialAssignment(
            **shared_fields(TrialAssignment, t),
            attempt=t.attempts,
            task=study.task,
            model=study.model,
            training=study.training.model_dump(mode="json"),
            seed=study.seed,
            lease=LeasePublic(**shared_fields(LeasePublic, claim.lease)),
        )

    def _static_study(self, study_id: int) -> StudyRecord:
        with self._lock:
            hit = self._static.get(study_id)
        if hit is None:
            hit = self.storage.get_study(study_id)
            with self._lock:
                self._static[study_id] = hit
        return hit

    def heartbeat(self, trial_id: int, token: str) -> LeasePublic:
        return LeasePublic(**shared_fields(LeasePublic, self.storage.heartbeat(trial_id, token)))

    def complete(self, trial_id: int, req: CompleteRequest) -> TrialPublic:
        report = self._checked_report(trial_id, req)
        trial = self.storage.complete(trial_id, req.lease_token, report)
        self._woke()
        return trial_public(trial)

    def report_stopped(self, trial_id: int, req: CompleteRequest) -> TrialPublic:
        """The worker's result for a trial the early-stopping rule stopped (it stays stopped)."""
        report = self._checked_report(trial_id, req)
        return trial_public(self.storage.report_stopped(trial_id, req.lease_token, report))

    def _checked_report(self, trial_id: int, req: CompleteRequest) -> Report:
        """The report, if it is one this trial can have: its metrics in range, its counts those its
        configuration trains on the study's model (:func:`autopeft.api.study_spec.check_report`)."""
        report = Report(**{name: getattr(req, name) for name in REPORT_FIELDS})
        study = self.storage.study_of_trial(trial_id)  # read now: an id may name another study later (SQLite)
        shape = shape_from_hf_config(study.hf_config, study.num_labels)  # not the space: building one may be slow
        try:
            expected = estimate(self.storage.get_trial(trial_id).config, shape)
        except AutoPeftError:  # stored before a family's rules changed: only the counts' consistency is checked
            expected = None
        check_report(report, study, shape.backbone_params, expected)
        return report

    def progress(self, trial_id: int, req: ProgressRequest) -> ProgressPublic:
        """Store an evaluation on the trial's curve, renew its lease, and ask the study's early-stopping rule
        (:mod:`autopeft.early_stopping`) whether it goes on; a stop marks the trial ``stopped`` at once."""
        study = self.storage.study_of_trial(trial_id)
        check_metric(req.metric, study)
        trial, lease = self.storage.record_progress(trial_id, req.lease_token, req.step, req.metric)
        if lease is None:  # stopped already under this lease: the worker missed the answer
            return ProgressPublic(go_on=False, reason="the trial was stopped early", lease_expires_at=None)
        decision = self._decide(study, trial, req)
        if decision.go_on:
            return ProgressPublic(go_on=True, reason=decision.reason, lease_expires_at=lease.expires_at)
        count = self._count(study, trial)
        best = best_until(trial.curve or (), req.step)
        metric = req.metric if best is None else best
        self.storage.stop_trial(trial_id, req.lease_token, metric, count[0], count[1])
        log.info("trial %d stopped early: %s", trial_id, decision.reason)
        self._woke()
        return ProgressPublic(go_on=False, reason=decision.reason, lease_expires_at=None)

    def _decide(self, study: StudyRecord, trial: TrialRecord, req: ProgressRequest) -> Decision:
        settings = study.early_stopping or EarlyStoppingSettings()
        total = req.total_steps or study.training.max_steps
        if not settings.enabled or total is None or req.step < settings.grace * total:
            return decide(settings, step=req.step, total_steps=total, curve=(), param_fraction=None, peers=())
        peers = []
        for c in self.storage.curves(study.id, exclude=trial.id):
            fraction = c.param_fraction if c.param_fraction is not None else self._fraction_of(study, c.id, c.config)
            if fraction is not None:
                peers.append(Peer(fraction, c.curve))
        return decide(
            settings,
            step=req.step,
            total_steps=int(total),
            curve=trial.curve or (),
            param_fraction=self._fraction_of(study, trial.id, trial.config),
            peers=peers,
        )

    def _count(self, study: StudyRecord, trial: TrialRecord) -> tuple[int, float]:
        """``(peft_params, param_fraction)`` the trial's configuration trains (the server's estimate)."""
        try:
            count = estimate(trial.config, self.contexts.get(study).space.shape)
        except AutoPeftError:
            return 0, 0.0
        return count.peft_params, count.param_fraction

    def _fraction_of(self, study: StudyRecord, trial_id: int, config: dict[str, Any]) -> float | None:
        """The share of the backbone a trial's configuration trains, estimated from the study's model shape
        (kept per trial: a trial's configuration never changes, and running peers are asked about often)."""
        key = (study.id, study.created_at, trial_id)
        with self._lock:
            if key in self._fractions:
                return self._fractions[key]
        try:
            fraction: float | None = estimate(config, self.contexts.get(study).space.shape).param_fraction
        except AutoPeftError:
            fraction = None
        with self._lock:
            if len(self._fractions) > 100_000:
                self._fractions.clear()
            self._fractions[key] = fraction
        return fraction

    def fail(self, trial_id: int, req: FailRequest) -> TrialPublic:
        trial = self.storage.fail(trial_id, req.lease_token, req.error)
        reason = pause_reason(self.storage.recent_finished(trial.study_id, PAUSE_WINDOW))
        if reason is not None and self.storage.pause_study(trial.study_id, reason):
            log.warning("study %d paused: %s", trial.study_id, reason)
        self._woke()
        return trial_public(trial)

    def release(self, trial_id: int, token: str) -> TrialPublic:
        return trial_public(self.storage.release(trial_id, token))

    def trial(self, trial_id: int) -> TrialPublic:
        return trial_public(self.storage.get_trial(trial_id))

    def _woke(self) -> None:
        if self.proposer is not None:
            self.proposer.wake()


# -- pure helpers ------------------------------------------------------------------------------------
def shared_fields(model: type[BaseModel], record: Any) -> dict[str, Any]:
    """The fields of the response ``model`` that ``record`` holds under the same name: a record's
    fields are written once (:mod:`autopeft.api.records`) and a response declares only what is public."""
    return {name: getattr(record, name) for name in _shared_names(model, type(record))}


@cache
def _shared_names(model: type[BaseModel], record: type) -> tuple[str, ...]:
    held = set(field_names(record))
    return tuple(name for name in model.model_fields if name in held)


def compute_front(objectives: list[tuple[int, float, float]], metric_range: tuple[float, float] = (0.0, 1.0)) -> Front:
    """Best trial and Pareto front of ``(trial id, metric, param_fraction)`` (autopeft.pareto.study_front),
    the hypervolume measured from the metric's lowest value. Results outside the metric's range (stored
    before reports were checked) are left out, so every number stays finite."""
    from autopeft.pareto import study_front, study_reference

    lo, hi = metric_range
    kept = [o for o in objectives if lo <= o[1] <= hi and 0 <= o[2] <= 1]
    if not kept:
        return Front(0, None, None, (), 0.0)
    ids = [o[0] for o in kept]
    metrics = [o[1] for o in kept]
    fractions = [o[2] for o in kept]
    front, volume = study_front(metrics, fractions, study_reference(lo))
    best = front[0]  # best metric first, fewer parameters on ties
    return Front(len(ids), metrics[best], ids[best], tuple(ids[i] for i in front), float(volume))


def reference_json(study: StudyRecord) -> dict[str, float]:
    """The point a study's hypervolume is measured from, in natural units."""
    from autopeft.pareto import study_reference

    metric, cost = study_reference(metric_range(study)[1][0])
    return {"metric": metric, "param_fraction": 10**-cost}


def _state(study: StudyRecord, counts: dict[str, int]) -> str:
    if study.stopped_at is not None:
        return "stopped"
    if study.paused_at is not None:
        return "paused"
    open_trials = sum(counts.get(state, 0) for state in OPEN_STATES)
    return "done" if study.n_trials >= study.max_trials and open_trials == 0 else "running"


def _elapsed(study: StudyRecord, counts: dict[str, int], last: datetime | None) -> float:
    if _state(study, counts) == "running":
        end = utcnow()
    else:
        end = max(filter(None, (last, study.stopped_at)), default=study.created_at)
    return max(0.0, (end - study.created_at).total_seconds())


def trial_public(t: TrialRecord, shape: ModelShape | None = None) -> TrialPublic:
    """The public view of a trial; with the study's ``shape``, open trials get their estimated fraction."""
    duration = (t.finished_at - t.started_at).total_seconds() if t.finished_at and t.started_at else None
    estimated = None
    if shape is not None and t.state in OPEN_STATES:
        estimated = estimate(t.config, shape).param_fraction
    n_layers = shape.n_layers if shape is not None else None
    try:
        config = parse_config(t.config)
        summary = config.summary(n_layers)
        placement = config.placement(n_layers) if n_layers else None
    except ConfigError:  # a configuration stored before a family's rules changed is shown as it is
        summary = placement = None
    return TrialPublic(
        **shared_fields(TrialPublic, t),
        summary=summary,
        placement=placement,
        in_space=t.x is not None,
        duration_s=duration,
        estimated_param_fraction=estimated,
        last_step=t.curve[-1][0] if t.curve else None,
    )
