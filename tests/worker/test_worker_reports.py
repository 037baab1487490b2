"""What the worker says and counts when the server refuses a report (issue 13, item 6), and what a
failure it sends carries (item 2): against a fake server (httpx.MockTransport), with training faked."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from autopeft.client import ServerClient
from autopeft.errors import TaskError
from autopeft.train.trial import TrialResult
from worker.loop import Worker
from worker.spool import Spool

ASSIGNMENT = {
    "id": 6547,
    "study_id": 3,
    "number": 0,
    "attempt": 1,
    "config": {"bitfit": {}},
    "task": {"name": "rte"},
    "model": None,
    "training": {"max_steps": 1},
    "seed": 0,
    "source": "sobol",
    "label": None,
    "lease": {"token": "tok", "expires_at": "2026-01-01T00:00:00Z", "seconds": 60},
}


def _result() -> TrialResult:
    fields: dict[str, Any] = {name: 0 for name in TrialResult.__dataclass_fields__}
    fields.update(metric=0.7, metric_name="accuracy", metrics={"search": {"accuracy": 0.7}}, param_fraction=0.01)
    fields.update(peft_params=1000, device="cpu", final_loss=0.5, stopped_early=False, by_family={}, losses=[])
    return TrialResult(**fields)


class FakeServer:
    """One trial to claim; ``complete`` answers ``complete_status``; every request is recorded."""

    def __init__(self, complete_status: int, detail: str) -> None:
        self.complete_status, self.detail = complete_status, detail
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.claimed = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.read() or b"{}")
        self.requests.append((request.url.path, body))
        path = request.url.path
        if path.endswith("/claim"):
            if self.claimed:
                return httpx.Response(204, headers={"Retry-After": "1", "X-Autopeft-Idle": "study done"})
            self.claimed = True
            return httpx.Response(200, json=ASSIGNMENT)
        if path.endswith("/complete") and self.complete_status != 200:
            return httpx.Response(self.complete_status, json={"detail": self.detail})
        return httpx.Response(200, json={"id": 6547})


def _worker(server: FakeServer, tmp_path, monkeypatch, train=None) -> tuple[Worker, list[str]]:
    import autopeft.train

    monkeypatch.setattr(autopeft.train, "run_trial", train or (lambda *a, **k: _result()))
    lines: list[str] = []
    client = ServerClient("http://server", transport=httpx.MockTransport(server))
    worker = Worker(
        client, device="cpu", study_id=3, spool=Spool("http://server", root=tmp_path), say=lines.append, progress=False
    )
    return worker, lines


def test_a_refused_report_is_not_a_success_and_names_the_trial_once(tmp_path, monkeypatch):
    server = FakeServer(409, "trial 6547: the lease token is not the current one (the lease expired and ...)")
    worker, lines = _worker(server, tmp_path, monkeypatch)
    assert worker.run() == 0  # nothing reported
    said = "\n".join(lines)
    assert "accuracy 0.7000" not in said  # no success line
    refused = [line for line in lines if "refused" in line]
    assert refused == [
        "complete report refused: trial 6547: the lease token is not the current one (the lease expired and ...)"
    ], lines
    assert "0 trial(s) reported" in said


def test_a_result_the_server_will_never_take_fails_the_trial_with_the_reason(tmp_path, monkeypatch):
    server = FakeServer(422, "metric: 1.5 is outside the range [0, 1] of accuracy")
    worker, lines = _worker(server, tmp_path, monkeypatch)
    assert worker.run() == 1
    fail = [body for path, body in server.requests if path.endswith("/fail")]
    assert len(fail) == 1 and "the server refused the result" in fail[0]["error"] and "1.5" in fail[0]["error"]
    assert not any("accuracy 0.7000" in line for line in lines)


def test_a_failure_sent_to_the_server_carries_no_file_content(tmp_path, monkeypatch):
    def train(*args: Any, **kwargs: Any) -> TrialResult:
        raise TaskError(
            "label '/bin/bash' in data row 1 of '/data/x.tsv' is not in the label set ['a', 'b'] of task 'x'",
            public="a label in data row 1 of '/data/x.tsv' is not in the label set of task 'x'",
        )

    server = FakeServer(200, "")
    worker, lines = _worker(server, tmp_path, monkeypatch, train)
    assert worker.run() == 1
    (fail,) = [body for path, body in server.requests if path.endswith("/fail")]
    assert "/bin/bash" not in fail["error"] and "data row 1 of '/data/x.tsv'" in fail["error"]
    assert any("/bin/bash" in line for line in lines)  # the person at the worker sees the whole message


@pytest.mark.parametrize("status", [404, 409])
def test_lease_lost_messages_name_the_trial_once(status):
    from autopeft.client import LeaseLost

    client = ServerClient(
        "http://s", transport=httpx.MockTransport(lambda r: httpx.Response(status, json={"detail": "trial 5: gone"}))
    )
    with pytest.raises(LeaseLost) as err:
        client.complete(5, {"lease_token": "t"}, give_up=lambda: False)
    assert str(err.value) == "trial 5: gone"
