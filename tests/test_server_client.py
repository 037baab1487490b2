"""The REST client every part shares: one attempt by default, a retry policy per call, typed refusals.

(The worker's calls: tests/worker/test_client.py.)"""

from __future__ import annotations

import httpx
import pytest

from autopeft.client import GaveUp, RequestRefused, ServerClient, give_up_after


def _client(handler) -> ServerClient:
    return ServerClient("http://server/", transport=httpx.MockTransport(handler), max_backoff=0.01)


def test_a_call_answers_the_json_below_the_api_prefix() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return httpx.Response(204) if request.method == "DELETE" else httpx.Response(200, json={"id": 1})

    with _client(handler) as client:
        assert client.call("GET", "/studies/1") == {"id": 1}
        assert client.call("DELETE", "/studies/1") is None
    assert seen == [("GET", "/api/v1/studies/1"), ("DELETE", "/api/v1/studies/1")]


def test_one_attempt_unless_the_call_asks_for_more(caplog) -> None:
    attempts = []

    def down(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        raise httpx.ConnectError("refused")

    with pytest.raises(GaveUp, match="cannot reach the server at http://server: ConnectError: refused"):
        _client(down).call("GET", "/studies")
    assert len(attempts) == 1
    with pytest.raises(GaveUp):
        _client(down).call("GET", "/studies", give_up=give_up_after(0.3))
    assert len(attempts) > 2
    # each retry is logged with the full path (what a worker's operator, and a test, look for)
    assert "server unavailable (ConnectError: refused); retrying GET /api/v1/studies in" in caplog.text


@pytest.mark.parametrize("status, error", [(404, RequestRefused), (503, GaveUp)])
def test_refusals_name_the_request_and_the_servers_reason(status: int, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"detail": "study 9 does not exist"})

    with pytest.raises(error) as err:
        _client(handler).call("GET", "/studies/9")
    assert str(err.value) == f"GET /studies/9: {status} study 9 does not exist"
