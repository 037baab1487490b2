"""The worker's pull loop: claim, heartbeat, train, report, retry.

Each evaluation during training is reported to the server (:mod:`autopeft.worker.progress`); when the
study's early-stopping rule answers ``continue: false`` training ends at once, the best state is
kept and the result goes to ``POST /trials/{id}/stopped``. A trial that raises is reported as
failed with its error and the worker goes on. A
stop request (SIGTERM, Ctrl-C) ends the running trial at its next step and gives it
back to the queue, so another worker can take it at once. A lease the server refuses mid-trial
(it handed the trial on, or the trial is gone) stops that trial and drops its result, and the worker
says what the server said; a heartbeat that cannot reach the server is only retried (after a network cut
longer than the lease the server gives the lease back if nobody claimed the trial meanwhile).

Task files and models are read only under the worker's roots (:class:`autopeft.roots.Roots`),
and a failure sent to the server carries no content of any file
(:meth:`autopeft.errors.AutoPeftError.public_message`); the full message is printed here.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Literal

from autopeft.client import Claim, GaveUp, LeaseLost, NoWork, RequestRefused, ServerClient, give_up_after
from autopeft.errors import AutoPeftError
from autopeft.worker.heartbeat import Heartbeat
from autopeft.worker.progress import ProgressReporter
from autopeft.worker.spool import Spool

log = logging.getLogger("autopeft.worker")


#: Reasons the server gives (X-Autopeft-Idle) when a study will have no more work.
FINISHED = ("study done", "study stopped")
#: What became of a report: the server has it; refused (the trial is no longer ours); invalid (the
#: server will never take it as sent); spooled (the server is away: kept on disk for the next start).
Outcome = Literal["delivered", "refused", "invalid", "spooled"]


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    """Runs trials from one server until stopped or out of budget; a worker bound to one study
    (``study_id``) also stops when that study is finished."""

    def __init__(
        self,
        client: ServerClient,
        *,
        worker_id: str | None = None,
        study_id: int | None = None,
        device: str = "auto",
        max_trials: int | None = None,
        poll: float = 5.0,
        data_roots: Sequence[str] | None = None,
        model_roots: Sequence[str] | None = None,
        exit_when_idle: float | None = None,
        exit_when_paused: bool = False,
        claim_until: float | None = None,
        progress: bool = True,
        say: Callable[[str], None] = print,
        spool: Spool | None = None,
    ) -> None:
        from autopeft.roots import Roots
        from autopeft.train import TrialCache, resolve_device

        self.client = client
        self.worker_id = worker_id or default_worker_id()
        self.study_id = study_id
        self.device = str(resolve_device(device))
        self.max_trials = max_trials
        self.poll = poll
        self.roots = Roots.of(data_roots, model_roots)
        self.exit_when_idle = exit_when_idle
        self.exit_when_paused = exit_when_paused
        #: ``time.monotonic()`` after which no new trial is claimed (the running one finishes).
        self.claim_until = claim_until
        self.progress = progress
        self.say = say
        self.spool = spool or Spool(client.url)
        self.stopping = threading.Event()
        self.cache = TrialCache()
        self.done = 0

    def stop(self) -> None:
        """Ask the worker to stop: the running trial is given back at its next step."""
        self.stopping.set()

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        """Work until stopped; returns the number of trials reported (completed, stopped early or failed)."""
        self.say(f"worker {self.worker_id} on {self.device}, server {self.client.url}")
        self.say(
            f"reads task data under {', '.join(map(str, self.roots.data))}; "
            f"models under {', '.join(map(str, self.roots.models))}"
        )
        self.flush_spool()
        idle_since = time.monotonic()
        paused_said = False
        while not self.stopping.is_set() and (self.max_trials is None or self.done < self.max_trials):
            if self.claim_until is not None and time.monotonic() >= self.claim_until:
                self.say("time budget used: no new trials")
                break
            try:
                claim = self.client.claim(self.worker_id, self.study_id, lambda: self._give_up_claim(idle_since))
            except GaveUp as err:
                if not self.stopping.is_set():
                    self.say(f"no work for {self.exit_when_idle:g} s: {err}")
                break
            if isinstance(claim, NoWork):
                if self.study_id is not None and claim.reason in FINISHED:
                    self.say(f"study {self.study_id}: {claim.reason}")
                    break
                if claim.reason == "study paused" and self.exit_when_paused:
                    self.say(f"study {self.study_id} paused: its trials kept failing the same way")
                    break
                if claim.reason == "study paused" and not paused_said:
                    self.say(f"study {self.study_id} is paused (its trials kept failing the same way); waiting")
                paused_said = claim.reason == "study paused"
                if self._idle_too_long(idle_since, claim):
                    break
                self._wait(claim)
                continue
            self.run_one(claim)
            idle_since = time.monotonic()
        self.say(f"worker {self.worker_id}: {self.done} trial(s) reported, stopping")
        return self.done

    def _give_up_claim(self, idle_since: float) -> bool:
        """Stop retrying a claim while the server is away: when stopping, or past ``exit_when_idle`` without work."""
        idle = self.exit_when_idle is not None and time.monotonic() - idle_since >= self.exit_when_idle
        return self.stopping.is_set() or idle

    def _idle_too_long(self, idle_since: float, claim: NoWork) -> bool:
        if self.exit_when_idle is not None and time.monotonic() - idle_since >= self.exit_when_idle:
            self.say(f"no work for {self.exit_when_idle:g} s ({claim.reason or 'queue empty'})")
            return True
        return False

    def _wait(self, claim: NoWork) -> None:
        wait = min(max(claim.retry_after, 0.2), self.poll)
        self.stopping.wait(wait)

    def run_one(self, claim: Claim) -> None:
        trial = claim.trial
        label = f"trial {trial['id']} (study {trial['study_id']}, #{trial['number']})"
        self.say(f"{label}: {_summary(trial['config'])}")
        beat = Heartbeat(self.client, trial["id"], claim.token, claim.lease_seconds / 3)
        beat.start()
        try:
            result = self._train(trial, beat)
        except _Stopped:
            beat.stop()
            self._give_back(trial, claim, beat)
            return
        except AutoPeftError as err:  # bad input, out of memory, non-finite loss: the trial failed
            beat.stop()
            if err.public is not None:  # the whole message quotes a file: shown here, never sent
                self.say(f"{label}: {type(err).__name__}: {err}")
            self._report_failure(trial, claim, f"{type(err).__name__}: {err.public_message()}", label)
            return
        except Exception:  # a bug: keep the traceback for the person who reads the failure
            beat.stop()
            self._report_failure(trial, claim, traceback.format_exc(), label)
            return
        beat.stop()
        if getattr(result, "pruned", False):  # the server stopped it: heartbeats since then were refused, rightly
            self._report_stopped(trial, claim, result, label)
            return
        if beat.lost.is_set():
            self.say(f"{label}: result dropped, the server refused its lease: {beat.reason}")
            return
        self._report_success(trial, claim, result, label)

    def _train(self, trial: dict[str, Any], beat: Heartbeat) -> Any:
        from autopeft.train import TrialStopped, run_trial

        try:
            return run_trial(
                trial["task"],
                trial["model"],
                trial["config"],
                trial["training"],
                device=self.device,
                cache=self.cache,
                progress=self.progress,
                should_stop=lambda: self.stopping.is_set() or beat.lost.is_set(),
                on_evaluation=ProgressReporter(
                    self.client, trial["id"], beat.token, beat.lost, on_stop=beat.stop, on_lost=beat.lose
                ),
                roots=self.roots,
            )
        except TrialStopped:
            raise _Stopped from None

    # -- reports ------------------------------------------------------------------------------
    def _result_body(self, claim: Claim, result: Any) -> dict[str, Any]:
        return {
            "lease_token": claim.token,
            "metric": result.metric,
            "peft_params": result.peft_params,
            "param_fraction": result.param_fraction,
            "metrics": _flat_metrics(result.metrics),
            "extra": {**result.to_json(), "worker_id": self.worker_id},
        }

    def _report_stopped(self, trial: dict[str, Any], claim: Claim, result: Any, label: str) -> None:
        """The server stopped the trial (it is ``stopped`` there already): send what the kept state scores."""
        outcome, _ = self._deliver(trial["id"], "stopped", self._result_body(claim, result))
        if outcome in ("refused", "invalid"):  # said by _send; the trial stays stopped with the server's numbers
            return
        self.done += 1
        self.say(
            f"{label}: stopped early at step {result.steps} by the study's early-stopping rule; "
            f"{result.metric_name} {result.metric:.4f} so far with {100 * result.param_fraction:.3f}% of the parameters"
            + (" (report kept to send later)" if outcome == "spooled" else "")
        )

    def _report_success(self, trial: dict[str, Any], claim: Claim, result: Any, label: str) -> None:
        body = self._result_body(claim, result)
        outcome, why = self._deliver(trial["id"], "complete", body)
        if outcome == "invalid":  # the server will never take this result: the trial failed, and says why
            self._report_failure(trial, claim, f"the server refused the result: {why}", label)
            return
        if outcome == "refused":
            return
        self.done += 1
        self.say(
            f"{label}: {result.metric_name} {result.metric:.4f} with {100 * result.param_fraction:.3f}% "
            f"of the parameters, {result.steps} steps, {result.train_seconds + result.eval_seconds:.0f} s"
            + (" (report kept to send later)" if outcome == "spooled" else "")
        )

    def _report_failure(self, trial: dict[str, Any], claim: Claim, error: str, label: str) -> None:
        outcome, _ = self._deliver(trial["id"], "fail", {"lease_token": claim.token, "error": error})
        if outcome in ("refused", "invalid"):
            return
        self.done += 1
        self.say(f"{label}: failed: {error.strip().splitlines()[-1]}")

    def _give_back(self, trial: dict[str, Any], claim: Claim, beat: Heartbeat) -> None:
        if beat.lost.is_set():
            self.say(f"trial {trial['id']}: stopped it, the server refused its lease: {beat.reason}")
            return
        try:
            self.client.release(trial["id"], claim.token, give_up_after(10.0))
            self.say(f"trial {trial['id']}: given back to the queue")
        except (LeaseLost, GaveUp, RequestRefused) as err:
            self.say(f"trial {trial['id']}: could not give it back ({err}); its lease will expire")

    def _deliver(self, trial_id: int, kind: str, body: dict[str, Any]) -> tuple[Outcome, str]:
        """Spool the report, send it (retrying while the server is away), then forget it."""
        path = self.spool.put(trial_id, kind, body)
        start = time.monotonic()  # while stopping, keep trying for 30 s; the spool keeps it after that
        return self._send(path, trial_id, kind, body, lambda: self.stopping.is_set() and time.monotonic() - start > 30)

    def _send(
        self, path: Any, trial_id: int, kind: str, body: dict[str, Any], give_up: Callable[[], bool]
    ) -> tuple[Outcome, str]:
        """What became of the report (see :data:`Outcome`) and the server's reason when it refused."""
        try:
            if kind == "complete":
                self.client.complete(trial_id, body, give_up)
            elif kind == "stopped":
                self.client.stopped(trial_id, body, give_up)
            else:
                self.client.fail(trial_id, body["lease_token"], body["error"], give_up)
        except GaveUp:
            self.say(f"trial {trial_id}: server unreachable; the report waits in {path} for the next start")
            return "spooled", ""
        except LeaseLost as err:  # its message names the trial
            self.say(f"{kind} report refused: {err}")
            Spool.done(path)
            return "refused", str(err)
        except RequestRefused as err:
            self.say(f"trial {trial_id}: {kind} report refused: {err}")
            Spool.done(path)
            return "invalid", str(err)
        Spool.done(path)
        return "delivered", ""

    def flush_spool(self) -> None:
        """Send reports a previous run could not deliver."""
        for path, item in self.spool.pending():
            self.say(f"trial {item['trial_id']}: sending the {item['kind']} report spooled by an earlier run")
            self._send(path, item["trial_id"], item["kind"], item["body"], give_up=give_up_after(60.0))


class _Stopped(Exception):
    """The trial stopped because the worker is stopping or lost its lease."""


def _summary(config: dict[str, Any]) -> str:
    from autopeft.config import parse_config

    try:
        return parse_config(config).summary()
    except AutoPeftError:
        return str(config)


def _flat_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{"search": {"accuracy": .7}, "dev": {...}}`` -> ``{"search_accuracy": .7, ...}``."""
    return {f"{split}_{name}": float(v) for split, values in metrics.items() for name, v in values.items()}
