"""The worker's HTTP client: retries while the server is away, clear errors when it refuses."""

from __future__ import annotations

import httpx
import pytest

from autopeft.client import GaveUp, LeaseLost, NoWork, RequestRefused, ServerClient, Unauthorized


def _client(handler) -> ServerClient:
    return ServerClient("http://server", api_key="k", transport=httpx.MockTransport(handler), max_backoff=0.01)


def test_claim_retries_through_outages_then_returns_the_trial():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        if len(calls) == 2:
            return httpx.Response(503, json={"detail": "database busy"})
        return httpx.Response(200, json={"id": 7, "lease": {"token": "t", "seconds": 30}})

    claim = _client(handler).claim("w1", 3, give_up=lambda: False)
    assert claim.trial["id"] == 7 and claim.token == "t" and claim.lease_seconds == 30
    assert len(calls) == 3
    assert calls[-1].headers["Authorization"] == "Bearer k"
    assert calls[-1].read() == b'{"worker_id":"w1","study_id":3}'


def test_no_work_carries_retry_after():
    def handler(request):
        return httpx.Response(204, headers={"Retry-After": "4", "X-Autopeft-Idle": "budget used"})

    result = _client(handler).claim("w1", None, give_up=lambda: False)
    assert result == NoWork(4.0, "budget used")


@pytest.mark.parametrize(
    "status, error",
    [(401, Unauthorized), (409, LeaseLost), (404, LeaseLost), (422, RequestRefused)],
)
def test_refusals_become_typed_errors(status, error):
    def handler(request):
        return httpx.Response(status, json={"detail": "nope"})

    with pytest.raises(error, match="nope"):
        _client(handler).complete(5, {"lease_token": "t"}, give_up=lambda: False)


def test_unauthorized_claim_names_the_server():
    with pytest.raises(Unauthorized, match="http://server refused the API key"):
        _client(lambda r: httpx.Response(401, json={"detail": "bad key"})).claim("w", None, lambda: False)


def test_retrying_stops_when_asked():
    attempts = []

    def handler(request):
        attempts.append(1)
        raise httpx.ConnectError("down")

    with pytest.raises(GaveUp):
        _client(handler).release(1, "t", give_up=lambda: len(attempts) >= 3)
    assert len(attempts) == 3
