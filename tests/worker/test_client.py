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


def test_after_three_unanswered_tries_the_warning_says_the_url_may_be_wrong(caplog):
    """Issue 30: a worker pointed at no server says, after the first failures, that the URL may be wrong."""
    attempts = []

    def handler(request):
        attempts.append(request)
        if len(attempts) <= 5:
            raise httpx.ConnectError("refused")
        return httpx.Response(204, headers={"Retry-After": "1"})

    with caplog.at_level("WARNING", logger="autopeft.client"):
        assert isinstance(_client(handler).claim("w", None, give_up=lambda: False), NoWork)
    hints = [r.getMessage() for r in caplog.records if "URL may be wrong" in r.getMessage()]
    assert hints == [
        "no server has answered at http://server after 3 tries: the URL may be wrong, or the server not started "
        "(autopeft serve); still retrying (--exit-when-idle S bounds the wait)"
    ]
    assert len([r for r in caplog.records if "server unavailable" in r.getMessage()]) == 5


def test_a_server_that_answers_5xx_gets_no_url_hint(caplog):
    attempts = []

    def handler(request):
        attempts.append(request)
        return httpx.Response(503) if len(attempts) <= 4 else httpx.Response(204)

    with caplog.at_level("WARNING", logger="autopeft.client"):
        _client(handler).claim("w", None, give_up=lambda: False)
    assert not [r for r in caplog.records if "URL may be wrong" in r.getMessage()]


def test_exit_when_idle_also_bounds_the_time_without_a_server(tmp_path):
    """Issue 30: ``--exit-when-idle S`` ends a worker whose server never answers, after about S seconds."""
    import time

    from autopeft.worker import Worker
    from autopeft.worker.spool import Spool

    def refused(request):
        raise httpx.ConnectError("refused")

    client = ServerClient("http://nowhere", transport=httpx.MockTransport(refused), max_backoff=30)
    said = []
    worker = Worker(client, device="cpu", spool=Spool("http://nowhere", root=tmp_path), exit_when_idle=1.5,
                    say=said.append)  # fmt: skip
    import threading

    done = []
    start = time.monotonic()
    runner = threading.Thread(target=lambda: done.append(worker.run()))
    runner.start()
    runner.join(15)
    if runner.is_alive():  # the bug: retrying forever; stop it so that the test ends
        worker.stop()
        runner.join(30)
    assert done == [0] and 1.5 <= time.monotonic() - start < 10, said
    assert any(line.startswith("no work for 1.5 s: cannot reach the server at http://nowhere") for line in said), said
