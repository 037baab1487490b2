"""HTTP client of the study server, with the retry policy a worker needs.

Transient failures (connection refused or reset, timeouts, 5xx) are retried with
capped exponential backoff and jitter until the call succeeds or ``give_up()`` says
stop; 401 is fatal (:class:`Unauthorized`); 404 and 409 on a trial mean the worker no
longer holds it (:class:`LeaseLost`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from autopeft.errors import AutoPeftError

log = logging.getLogger("autopeft.worker")

API = "/api/v1"


class Unauthorized(AutoPeftError):
    """The server refused the API key (or none was given)."""


class LeaseLost(AutoPeftError):
    """The trial is no longer ours: its lease expired and was handed on, or the trial is gone."""


class RequestRefused(AutoPeftError):
    """The server answered 4xx to a request it will never accept as sent."""


class GaveUp(AutoPeftError):
    """Retrying stopped before the server answered (the worker is shutting down)."""


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

    # -- the calls a worker makes ------------------------------------------------------
    def study(self, study_id: int) -> dict[str, Any]:
        """One study as the server returns it (retried while the server is away, for up to a minute)."""
        end = time.monotonic() + 60
        return self._send("GET", f"{API}/studies/{study_id}", None, lambda: time.monotonic() > end).json()

    def trials(self, study_id: int, *, limit: int = 1000) -> list[dict[str, Any]]:
        """A study's first ``limit`` trials (retried like :meth:`study`)."""
        end = time.monotonic() + 60
        path = f"{API}/studies/{study_id}/trials?limit={limit}"
        return self._send("GET", path, None, lambda: time.monotonic() > end).json()["data"]

    def claim(self, worker_id: str, study_id: int | None, give_up: Callable[[], bool]) -> Claim | NoWork:
        body: dict[str, Any] = {"worker_id": worker_id}
        if study_id is not None:
            body["study_id"] = study_id
        response = self._send("POST", f"{API}/trials/claim", body, give_up)
        if response.status_code == 204:
            return NoWork(float(response.headers.get("Retry-After", "2")), response.headers.get("X-Autopeft-Idle", ""))
        trial = response.json()
        return Claim(trial, trial["lease"]["token"], float(trial["lease"]["seconds"]))

    def heartbeat(self, trial_id: int, token: str) -> None:
        """One attempt (the heartbeat thread retries on its own schedule)."""
        self._check(self._http.post(f"{API}/trials/{trial_id}/heartbeat", json={"lease_token": token}), trial_id)

    def complete(self, trial_id: int, report: dict[str, Any], give_up: Callable[[], bool]) -> None:
        self._send("POST", f"{API}/trials/{trial_id}/complete", report, give_up, trial_id)

    def fail(self, trial_id: int, token: str, error: str, give_up: Callable[[], bool]) -> None:
        body = {"lease_token": token, "error": error[-100_000:]}
        self._send("POST", f"{API}/trials/{trial_id}/fail", body, give_up, trial_id)

    def release(self, trial_id: int, token: str, give_up: Callable[[], bool]) -> None:
        self._send("POST", f"{API}/trials/{trial_id}/release", {"lease_token": token}, give_up, trial_id)

    # -- plumbing --------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        give_up: Callable[[], bool],
        trial_id: int | None = None,
    ) -> httpx.Response:
        delay = 0.5
        while True:
            try:
                response = self._http.request(method, path, json=body)
                if response.status_code < 500:
                    return self._check(response, trial_id)
                reason = f"HTTP {response.status_code}"
            except httpx.TransportError as err:
                reason = f"{type(err).__name__}: {err}"
            if give_up():
                raise GaveUp(f"{method} {path}: stopped retrying ({reason})")
            wait = delay * (0.5 + random.random())
            log.warning("server unavailable (%s); retrying %s %s in %.1f s", reason, method, path, wait)
            _sleep(wait, give_up)
            delay = min(delay * 2, self.max_backoff)

    def _check(self, response: httpx.Response, trial_id: int | None) -> httpx.Response:
        code = response.status_code
        if code < 400:
            return response
        detail = _detail(response)
        if code == 401:
            raise Unauthorized(f"the server at {self.url} refused the API key: {detail}")
        if trial_id is not None and code in (404, 409):  # the server's message names the trial
            raise LeaseLost(detail if detail.startswith(f"trial {trial_id}") else f"trial {trial_id}: {detail}")
        raise RequestRefused(f"the server refused the request (HTTP {code}): {detail}")


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:200] or response.reason_phrase


def _sleep(seconds: float, give_up: Callable[[], bool]) -> None:
    """Sleep, waking early once ``give_up()`` turns true."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0 and not give_up():
        time.sleep(min(left, 0.2))
