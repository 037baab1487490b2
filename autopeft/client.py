"""The one HTTP client of a study server's REST API (``/api/v1``): the worker, ``autopeft study``
and ``autopeft demo`` all talk to the server through :class:`ServerClient`.

Retry policy, per call: ``give_up`` is asked after each transient failure (connection refused
or reset, timeouts, 5xx) and the call is tried again, with capped exponential backoff and
jitter, until it says stop (:func:`once`, the default: one attempt; :func:`give_up_after`: for
a while; the worker passes its own). Refusals are typed: 401 :class:`Unauthorized`; 404 and
409 on a trial :class:`LeaseLost` (the worker no longer holds it); any other 4xx
:class:`RequestRefused`; a call that stopped retrying :class:`GaveUp`. Every one of them is a
:class:`ServerError`, whose message names what was asked and what the server said.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from autopeft.errors import AutoPeftError

log = logging.getLogger("autopeft.client")

API = "/api/v1"
#: Retry policy of a call: asked after each transient failure; True stops retrying.
GiveUp = Callable[[], bool]


def once() -> bool:
    """The retry policy of a single attempt."""
    return True


def give_up_after(seconds: float) -> GiveUp:
    """The retry policy of a call that keeps trying for ``seconds``."""
    end = time.monotonic() + seconds
    return lambda: time.monotonic() > end


class ServerError(AutoPeftError):
    """The study server refused a request or could not be reached."""


class Unauthorized(ServerError):
    """The server refused the API key (or none was given)."""


class LeaseLost(ServerError):
    """The trial is no longer ours: its lease expired and was handed on, or the trial is gone."""


class RequestRefused(ServerError):
    """The server answered 4xx to a request it will never accept as sent."""


#: Connection failures in a row after which the retry warning says that the URL may be wrong.
UNREACHABLE_HINT = 3


class GaveUp(ServerError):
    """Retrying stopped before the server answered (it is away, or the caller is shutting down)."""


@dataclass(frozen=True)
class Claim:
    """A claimed trial: the server's assignment and the lease length in seconds."""

    trial: dict[str, Any]
    token: str
    lease_seconds: float


@dataclass(frozen=True)
class NoWork:
    retry_after: float
    reason: str


class ServerClient:
    """Talks to one autopeft server. Thread-safe (httpx.Client is)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_backoff: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.max_backoff = max_backoff
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- any call ----------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *, give_up: GiveUp = once) -> Any:
        """``method`` on ``/api/v1`` + ``path``: the JSON answer (None when it is empty)."""
        response = self.request(method, path, body, give_up)
        return response.json() if response.content else None

    def request(
        self, method: str, path: str, body: Any, give_up: GiveUp = once, trial_id: int | None = None
    ) -> httpx.Response:
        """The server's answer below 400, retried as ``give_up`` allows; a refusal raises (see the module)."""
        delay = 0.5
        unreachable = 0  # connection failures in a row (an answer, even a 5xx, says the URL is right)
        while True:
            try:
                response = self._http.request(method, API + path, json=body)
                if response.status_code < 500:
                    return self._check(method, path, response, trial_id)
                reason, failure = f"HTTP {response.status_code}", _refusal(method, path, response)
                unreachable = 0
            except httpx.TransportError as err:
                reason = f"{type(err).__name__}: {err}"
                failure = f"cannot reach the server at {self.url}: {reason}"
                unreachable += 1
            if give_up():
                raise GaveUp(failure)
            wait = delay * (0.5 + random.random())
            log.warning("server unavailable (%s); retrying %s %s in %.1f s", reason, method, API + path, wait)
            if unreachable == UNREACHABLE_HINT:
                log.warning(
                    "no server has answered at %s after %d tries: the URL may be wrong, or the server not started "
                    "(autopeft serve); still retrying (--exit-when-idle S bounds the wait)",
                    self.url,
                    unreachable,
                )
            _sleep(wait, give_up)
            delay = min(delay * 2, self.max_backoff)

    def _check(self, method: str, path: str, response: httpx.Response, trial_id: int | None) -> httpx.Response:
        code = response.status_code
        if code < 400:
            return response
        detail = _detail(response)
        if code == 401:
            raise Unauthorized(f"the server at {self.url} refused the API key: {detail}")
        if trial_id is not None and code in (404, 409):  # the server's message names the trial
            raise LeaseLost(detail if detail.startswith(f"trial {trial_id}") else f"trial {trial_id}: {detail}")
        raise RequestRefused(_refusal(method, path, response))

    # -- the calls a worker makes ------------------------------------------------------
    def study(self, study_id: int) -> dict[str, Any]:
        """One study as the server returns it (retried while the server is away, for up to a minute)."""
        return self.call("GET", f"/studies/{study_id}", give_up=give_up_after(60))

    def trials(self, study_id: int, *, limit: int = 1000) -> list[dict[str, Any]]:
        """A study's first ``limit`` trials (retried like :meth:`study`)."""
        return self.call("GET", f"/studies/{study_id}/trials?limit={limit}", give_up=give_up_after(60))["data"]

    def claim(self, worker_id: str, study_id: int | None, give_up: GiveUp) -> Claim | NoWork:
        body: dict[str, Any] = {"worker_id": worker_id}
        if study_id is not None:
            body["study_id"] = study_id
        response = self.request("POST", "/trials/claim", body, give_up)
        if response.status_code == 204:
            return NoWork(float(response.headers.get("Retry-After", "2")), response.headers.get("X-Autopeft-Idle", ""))
        trial = response.json()
        return Claim(trial, trial["lease"]["token"], float(trial["lease"]["seconds"]))

    def heartbeat(self, trial_id: int, token: str) -> None:
        """One attempt (the heartbeat thread retries on its own schedule)."""
        self.request("POST", f"/trials/{trial_id}/heartbeat", {"lease_token": token}, once, trial_id)

    def progress(
        self, trial_id: int, token: str, step: int, metric: float, total_steps: int | None = None
    ) -> dict[str, Any]:
        """One attempt to report an evaluation (it renews the lease); the answer ``{"continue": bool, "reason",
        "lease_expires_at"}``. The worker tries again at its next evaluation rather than retrying here."""
        body: dict[str, Any] = {"lease_token": token, "step": step, "metric": metric}
        if total_steps is not None:
            body["total_steps"] = total_steps
        return self.request("POST", f"/trials/{trial_id}/progress", body, once, trial_id).json()

    def complete(self, trial_id: int, report: dict[str, Any], give_up: GiveUp) -> None:
        self.request("POST", f"/trials/{trial_id}/complete", report, give_up, trial_id)

    def stopped(self, trial_id: int, report: dict[str, Any], give_up: GiveUp) -> None:
        """The result of a trial the server's early-stopping rule stopped (a body like :meth:`complete`'s)."""
        self.request("POST", f"/trials/{trial_id}/stopped", report, give_up, trial_id)

    def fail(self, trial_id: int, token: str, error: str, give_up: GiveUp) -> None:
        body = {"lease_token": token, "error": error[-100_000:]}
        self.request("POST", f"/trials/{trial_id}/fail", body, give_up, trial_id)

    def release(self, trial_id: int, token: str, give_up: GiveUp) -> None:
        self.request("POST", f"/trials/{trial_id}/release", {"lease_token": token}, give_up, trial_id)


def _refusal(method: str, path: str, response: httpx.Response) -> str:
    return f"{method} {path}: {response.status_code} {_detail(response)}"


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except (ValueError, AttributeError):
        return response.text[:500] or response.reason_phrase


def _sleep(seconds: float, give_up: GiveUp) -> None:
    """Sleep, waking early once ``give_up()`` turns true."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0 and not give_up():
        time.sleep(min(left, 0.2))
