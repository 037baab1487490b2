"""Finished results survive a worker that cannot reach the server."""

from __future__ import annotations

import httpx

from autopeft.client import ServerClient
from autopeft.worker.spool import Spool


def test_reports_are_kept_until_delivered_and_sent_by_the_next_run(tmp_path, monkeypatch):
    from autopeft.worker.loop import Worker

    spool = Spool("http://server", root=tmp_path)
    spool.put(11, "complete", {"lease_token": "abc", "metric": 0.7, "peft_params": 10, "param_fraction": 0.1})
    spool.put(12, "fail", {"lease_token": "def", "error": "boom"})
    assert len(spool.pending()) == 2

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.read()))
        return httpx.Response(409 if "12" in request.url.path else 200, json={"detail": "stale"})

    client = ServerClient("http://server", transport=httpx.MockTransport(handler))
    worker = Worker(client, device="cpu", spool=spool, say=lambda line: None)
    worker.flush_spool()
    assert [p for p, _ in seen] == ["/api/v1/trials/11/complete", "/api/v1/trials/12/fail"]
    assert spool.pending() == []  # delivered, or refused for good (stale lease): nothing left to send


def test_a_spool_file_is_written_atomically(tmp_path):
    spool = Spool("http://a", root=tmp_path)
    path = spool.put(1, "complete", {"lease_token": "x", "metric": 1.0})
    assert path.exists() and not list(spool.dir.glob("*.tmp"))
    assert Spool("http://b", root=tmp_path).pending() == []  # one folder per server
