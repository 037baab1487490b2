"""Proposals made ahead of claims, in the background, and the sweeper of expired leases.

A scheduler thread looks at the queues (at most every ``LOOK_GAP_S``, at least every
``proposer_tick_s``; a claim in the same process wakes it at once). Each active study
should hold about as many queued trials as workers were recently seen claiming from it
(at least one; more when claims come faster than a proposal round takes, as with very
short trials), without passing ``max_trials``. A study whose queue fell to two thirds of
that gets a job on a small thread pool: take the study's proposer lock (a row with an owner
and an expiry, so it holds across server processes and machines), re-read the study's
trials under it, call :func:`autopeft.optimize.propose` with completed trials as
observations, queued and running ones as pending points, and failed ones and those the
early-stopping rule stopped excluded (never modelled: a stopped trial's metric is partial),
and, for a warm-started study, the completed trials of the studies it names as they are now
(:mod:`autopeft.optimize.warm`), and queue the batch if the lock is still ours. Claims never
wait for this: they read the queue.

Fairness: one study's cost stays with that study. Rounds run in two lanes: space-filling rounds
(``sobol``/``random``, and every study's first rounds, before a model has data) on ``proposer_threads``
threads, in this process; model-based rounds (``gp``, ``saas``, ``tpe``) on ``proposal_processes``
threads, each round in a process of its own (:mod:`autopeft.api.proposal_process`). A model round that runs past
``proposal_budget_s`` is abandoned (its process ended and reaped) and that round's trials come from
``sobol``; a study whose model rounds took ``study_proposal_budget_s`` of the last
``study_budget_window_s`` gets ``sobol`` rounds until its use falls under it. Both say so in the
study's events (``GET /studies/{id}/events``). A study that stops (or pauses, or is deleted) while its
model round runs has that round cancelled. So a heavy study never holds a thread for long, and
studies that take turns in a lane wait at most one budget per study ahead of them.

``autopeft serve`` runs one :class:`Proposer` in a process of its own
(:func:`run_process`), so that proposal work (pure Python for Sobol, seconds of
torch for a GP) never competes with requests for a process's GIL; an app made by
:func:`autopeft.api.main.create_app` alone runs it in a thread.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from autopeft.api import proposal_process
from autopeft.api.errors import NotFoundError
from autopeft.api.records import Demand, NewTrial, ProposalSnapshot
from autopeft.api.settings import Settings
from autopeft.api.storage import Storage, utcnow
from autopeft.api.storage_protocol import StorageProtocol
from autopeft.api.study_spec import StudyContext, StudyContexts, config_key
from autopeft.optimize import Observation, SobolSettings, WarmStartSettings, method_of, propose
from autopeft.optimize.warm import EarlierTrial, WarmStart, build_warm_start

log = logging.getLogger("autopeft.api.proposer")

#: Shortest pause between two looks at the queues (wake-ups in between are coalesced).
LOOK_GAP_S = 0.05
#: How often a running model round asks the database whether its study still runs.
CANCEL_CHECK_S = 0.5
#: The lanes of a round: space-filling in a thread, a model in a process, a model's study over its budget.
CHEAP, MODEL, FALLBACK = "cheap", "model", "fallback"


@dataclass
class _Pace:
    """What the scheduler remembers of a study between looks: its claim rate and round time."""

    n_trials: int
    queued: int
    at: float
    rate: float = 0.0
    round_s: float = 0.0
    retry_at: float = 0.0
    #: (when it ended, seconds) of each model round in the study's budget window.
    model_rounds: deque[tuple[float, float]] = field(default_factory=deque)
    #: Whether the study's rounds come from sobol because its budget is spent (an event marks the start).
    falling_back: bool = False

    def model_seconds(self, now: float, window_s: float) -> float:
        """Seconds of model rounds that ended in the last ``window_s``."""
        while self.model_rounds and self.model_rounds[0][0] < now - window_s:
            self.model_rounds.popleft()
        return sum(seconds for _, seconds in self.model_rounds)


def queue_target(demand: Demand, shared_workers: float, rate: float, round_s: float, settings: Settings) -> int:
    """Queued trials the study should hold: one per worker seen; for cheap (space-filling) proposals,
    also what claims take during a few rounds when they come faster than rounds (short trials).
    A model's batch stays at the workers' number: its cost and its quality depend on it."""
    workers = demand.workers + math.ceil(shared_workers)
    cover = math.ceil(rate * (round_s + 2 * LOOK_GAP_S) * 4) if demand.space_filling else 0
    return max(1, min(settings.max_queue, max(workers, cover)))


def should_refill(queued: int, target: int) -> bool:
    """Refill at two thirds of the target: fewer, larger rounds (each reads the whole study), and a
    third of the queue left to cover claims while the round runs."""
    return 3 * queued <= 2 * target


class Proposer:
    """Keeps the queues of active studies filled and requeues expired leases."""

    def __init__(self, storage: StorageProtocol, contexts: StudyContexts, settings: Settings) -> None:
        self.storage, self.contexts, self.settings = storage, contexts, settings
        self.owner = uuid.uuid4().hex
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        self._cancelled: set[int] = set()
        #: Study id -> the process id of its model round now running.
        self.running: dict[int, int] = {}
        self._pace: dict[int, _Pace] = {}
        self._pool = ThreadPoolExecutor(settings.proposer_threads, thread_name_prefix="autopeft-propose")
        self._model_pool = ThreadPoolExecutor(settings.proposal_processes, thread_name_prefix="autopeft-model")
        self._thread = threading.Thread(target=self._loop, name="autopeft-scheduler", daemon=True)
        self._last_look = 0.0

    def start(self) -> None:
        self._thread.start()
        threading.Thread(target=proposal_process.start, name="autopeft-forkserver", daemon=True).start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()  # a model round running now is cancelled (its process ended)
        self._wake.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._model_pool.shutdown(wait=True, cancel_futures=True)

    def cancel(self, study_id: int) -> None:
        """End the study's model round if one runs (the study stopped); a later round is not affected."""
        with self._lock:
            if study_id in self._in_flight:
                self._cancelled.add(study_id)

    def wake(self) -> None:
        """Look at the queues soon (a claim took a trial, or found none)."""
        self._wake.set()

    # -- scheduler ------------------------------------------------------------------------------
    def _loop(self) -> None:
        next_sweep = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.settings.proposer_tick_s)
            self._wake.clear()
            gap = LOOK_GAP_S - (time.monotonic() - self._last_look)
            if gap > 0 and self._stop.wait(gap):
                break
            self._last_look = time.monotonic()
            try:
                if self._last_look >= next_sweep:
                    self._sweep()
                    next_sweep = self._last_look + self.settings.sweep_interval_s
                self._look()
            except Exception:  # the loop must outlive a database outage
                log.exception("proposer: looking at the queues failed")
                self._stop.wait(1.0)

    def _sweep(self) -> None:
        requeued, failed = self.storage.requeue_expired()
        if requeued or failed:
            log.info("expired leases", extra={"requeued": requeued, "failed": failed})

    def _look(self) -> None:
        since = utcnow() - timedelta(seconds=self.settings.worker_window_s)
        demands, anywhere = self.storage.demands(since)
        shared = anywhere / len(demands) if demands else 0.0
        now = time.monotonic()
        for demand in demands:
            pace = self._update_pace(demand, now)
            target = queue_target(demand, shared, pace.rate, pace.round_s, self.settings)
            due = min(target - demand.queued, demand.budget_left) > 0
            if due and should_refill(demand.queued, target) and now >= pace.retry_at:
                self._submit(demand.study_id, target, self._lane(demand, pace, now))
        active = {d.study_id for d in demands}
        for gone in set(self._pace) - active:
            del self._pace[gone]

    def _update_pace(self, demand: Demand, now: float) -> _Pace:
        pace = self._pace.get(demand.study_id)
        if pace is None:
            pace = self._pace[demand.study_id] = _Pace(demand.n_trials, demand.queued, now)
            return pace
        dt = now - pace.at
        if dt >= 0.25:
            taken = (demand.n_trials - pace.n_trials) - (demand.queued - pace.queued)
            pace.rate = 0.5 * pace.rate + 0.5 * max(0, taken) / dt
            pace.n_trials, pace.queued, pace.at = demand.n_trials, demand.queued, now
        return pace

    def _lane(self, demand: Demand, pace: _Pace, now: float) -> str:
        """Where the study's next round runs: a model round in a process while the study is within its budget."""
        if not demand.modelled:
            return CHEAP
        spent = pace.model_seconds(now, self.settings.study_budget_window_s)
        if spent < self.settings.study_proposal_budget_s:
            pace.falling_back = False
            return MODEL
        if not pace.falling_back:
            pace.falling_back = True
            self._event(
                demand.study_id,
                "fallback",
                f"{demand.method} proposals took {spent:.1f} s of the last {self.settings.study_budget_window_s:g} s, "
                f"over the study's budget of {self.settings.study_proposal_budget_s:g} s (study_proposal_budget_s): "
                f"its proposals come from sobol until that falls under the budget",
            )
        return FALLBACK

    def _submit(self, study_id: int, target: int, lane: str = CHEAP) -> None:
        with self._lock:
            if study_id in self._in_flight:
                return
            self._in_flight.add(study_id)
            self._cancelled.discard(study_id)
        try:
            (self._model_pool if lane == MODEL else self._pool).submit(self._job, study_id, target, lane)
        except RuntimeError:  # shutting down
            with self._lock:
                self._in_flight.discard(study_id)

    # -- one proposal round ------------------------------------------------------------------------
    def _job(self, study_id: int, target: int, lane: str = CHEAP) -> None:
        started = time.monotonic()
        try:
            self.propose_now(study_id, target, lane)
        except Exception as err:  # an optimiser failure must not stop other studies
            log.exception("proposer: study %s failed", study_id)
            self._record_error(study_id, f"{type(err).__name__}: {err}")
        finally:
            pace = self._pace.get(study_id)
            if pace is not None:
                pace.round_s = time.monotonic() - started
            with self._lock:
                self._in_flight.discard(study_id)
            self._wake.set()

    def propose_now(self, study_id: int, target: int, lane: str = CHEAP) -> list[int]:
        """One round for one study under its lock; returns the ids of the trials queued. ``lane``: in this
        thread (:data:`CHEAP`), in a process with a time budget (:data:`MODEL`), or from sobol
        (:data:`FALLBACK`)."""
        if not self.storage.acquire_proposal_lock(study_id, self.owner, self.settings.proposal_lock_s):
            return []
        try:
            study = self.storage.get_study(study_id)
            snap = self.storage.proposal_snapshot(study_id, self.contexts.get(study).points)
            n = min(target - snap.queued, snap.study.max_trials - snap.trials)
            if n <= 0 or snap.study.stopped_at is not None:
                return []
            started = time.perf_counter()
            new = self._model_round(snap, n) if lane == MODEL else self._proposals(snap, n, sobol=lane == FALLBACK)
            seconds = time.perf_counter() - started
            if not new:  # cancelled: the study stopped
                return []
            ids = self.storage.add_proposals(study_id, self.owner, new)
            if snap.study.proposal_error:
                self.storage.set_proposal_error(study_id, None)
            log.info(
                "proposed",
                extra={
                    "study_id": study_id,
                    "queued": len(ids),
                    "asked": n,
                    "trials": snap.trials,
                    "propose_s": round(seconds, 4),
                },
            )
            return ids
        finally:
            self.storage.release_proposal_lock(study_id, self.owner)

    def _proposals(self, snap: ProposalSnapshot, n: int, *, sobol: bool = False) -> list[NewTrial]:
        """A round in this thread; ``sobol``: from the space-filling design whatever the study's method."""
        context = self.contexts.get(snap.study)
        kwargs = self._inputs(snap, n, context)
        if sobol:
            kwargs["settings"], kwargs["warm"] = SobolSettings(), None
        return self._new_trials(propose(**kwargs), context)

    def _model_round(self, snap: ProposalSnapshot, n: int) -> list[NewTrial]:
        """A model round in a process of its own, within ``proposal_budget_s``; an overrun is abandoned and the
        round comes from sobol, a cancelled round (the study stopped) proposes nothing."""
        study_id, context = snap.study.id, self.contexts.get(snap.study)
        budget = self.settings.proposal_budget_s
        method = method_of(snap.study.optimizer).name
        try:
            result = proposal_process.run_round(
                self._inputs(snap, n, context),
                budget,
                self._cancel_check(study_id),
                lambda pid: self.running.__setitem__(study_id, pid),
            )
        except proposal_process.RoundAbandoned as gone:
            self._spent(study_id, gone.seconds)
            if gone.reason == "cancelled":
                if not self._stop.is_set():  # a proposer that stops leaves the round to the next one, silently
                    self._event(
                        study_id,
                        "cancelled",
                        f"a {method} proposal was cancelled after {gone.seconds:.1f} s: the study stopped, paused or "
                        "was deleted (its process ended)",
                    )
                return []
            self._event(
                study_id,
                "overrun",
                f"a {method} proposal ran past the proposal budget of {budget:g} s (proposal_budget_s) and was "
                f"abandoned (its process ended); this round's {n} trial(s) come from sobol",
            )
            return self._proposals(snap, n, sobol=True)
        finally:
            self.running.pop(study_id, None)
        self._spent(study_id, result.seconds)
        if result.state is not None:  # what the round's optimiser remembered (warm starts, key cache)
            vars(context.state).update(vars(result.state))
        return self._new_trials(result.proposals, context)

    def _inputs(self, snap: ProposalSnapshot, n: int, context: StudyContext) -> dict[str, Any]:
        """The arguments of :func:`autopeft.optimize.propose` for a round of the study."""
        spec = snap.study.warm_start
        return {
            "space": context.space,
            "completed": [Observation(x, metric, fraction) for x, metric, fraction in snap.completed],
            "pending": list(snap.pending),
            "n": n,
            "seed": snap.study.seed,
            "settings": snap.study.optimizer,
            "failed": list(snap.failed),
            "state": context.state,
            "stopped": list(snap.stopped),
            "warm": self._warm_start(snap, context, spec) if spec is not None else None,
            "constraints": snap.study.constraints,
        }

    @staticmethod
    def _new_trials(proposals: list[Any], context: StudyContext) -> list[NewTrial]:
        return [
            NewTrial(p.config.to_json(), config_key(p.config, context.n_layers), tuple(p.x), p.source)
            for p in proposals
        ]

    def _cancel_check(self, study_id: int) -> Callable[[], bool]:
        """Whether the study's model round should end now: this proposer stops, or the study stopped, paused or
        went away (asked of the database every :data:`CANCEL_CHECK_S`; at once when it stopped in this process)."""
        asked = [time.monotonic()]

        def cancelled() -> bool:
            if self._stop.is_set() or study_id in self._cancelled:
                return True
            now = time.monotonic()
            if now < asked[0] + CANCEL_CHECK_S:
                return False
            asked[0] = now
            try:
                study = self.storage.get_study(study_id)
            except NotFoundError:
                return True
            return study.stopped_at is not None or study.paused_at is not None

        return cancelled

    def _spent(self, study_id: int, seconds: float) -> None:
        pace = self._pace.get(study_id)
        if pace is not None:
            pace.model_rounds.append((time.monotonic(), seconds))

    def _event(self, study_id: int, kind: str, message: str) -> None:
        log.warning("proposer: %s", message, extra={"study_id": study_id, "event": kind})
        try:
            self.storage.add_event(study_id, kind, message)
        except Exception:
            log.exception("proposer: cannot record an event of study %s", study_id)

    def _warm_start(self, snap: ProposalSnapshot, context: StudyContext, spec: WarmStartSettings) -> WarmStart:
        """What the study takes from the earlier studies it names, read now: a study that still runs
        contributes the trials it has completed; one deleted since contributes nothing."""
        earlier = [
            EarlierTrial(t.study_id, t.id, t.config, t.metric, t.param_fraction)
            for t in self.storage.completed_trials(spec.studies)
        ]
        slots = spec.max_configs_for(snap.study.optimizer.n_initial_for(context.space.d)) - snap.warm_started
        return build_warm_start(context.space, spec.studies, earlier, slots, context.warm_points)

    def _record_error(self, study_id: int, message: str) -> None:
        pace = self._pace.get(study_id)
        if pace is not None:
            pace.retry_at = time.monotonic() + self.settings.proposal_error_backoff_s
        try:
            self.storage.set_proposal_error(study_id, message[:2000])
        except Exception:
            log.exception("proposer: cannot record the error of study %s", study_id)


def run_process(parent_pid: int, settings: Settings | None = None) -> None:
    """The proposer and sweeper as a process of their own (``autopeft serve``), until SIGTERM, SIGINT,
    or the death of the process that started it (``parent_pid``: see :mod:`autopeft.api.lifeline`)."""
    from autopeft.api.lifeline import HARD_EXIT_S, die_with_parent, hard_exit_after

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    die_with_parent(parent_pid)  # first: the server may die while the imports below take seconds
    # its model rounds are processes of its own (autopeft.api.proposal_process), which multiprocessing refuses to a daemon;
    # it ends them itself, and they end with it however it ends
    multiprocessing.current_process().daemon = False
    if stop.is_set():  # it had died already
        return

    from autopeft.api import startup
    from autopeft.api.settings import get_settings

    settings = settings or get_settings()
    startup.start_process(settings)
    engine = startup.open_engine(settings, pool_size=settings.proposer_threads + 2, max_overflow=2)
    startup.warm_up()  # transformers' import and the bundled model's shape, before the first study needs them
    if stop.is_set():  # told to stop while starting
        engine.dispose()
        return
    proposer = Proposer(Storage(engine), StudyContexts(), settings)
    proposer.start()
    log.info("proposer process ready", extra={"owner": proposer.owner})
    try:
        while not stop.wait(1.0):  # a timeout, so that the signal handler runs promptly
            pass
    finally:
        hard_exit_after(HARD_EXIT_S)  # a proposal round that does not end must not keep the process
        proposer.stop()
        engine.dispose()
