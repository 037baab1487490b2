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
from autopeft.worker.loop import Worker
from autopeft.worker.spool import Spool

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


class ProgressServer(FakeServer):
    """A fake server whose progress endpoint answers ``answers`` in turn (a status, or the continue flag)."""

    def __init__(self, answers: list[int | bool]) -> None:
        super().__init__(200, "")
        self.answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/progress"):
            self.requests.append((request.url.path, json.loads(request.read())))
            answer = self.answers.pop(0)
            if answer is True or answer is False:
                return httpx.Response(200, json={"continue": answer, "reason": "rule", "lease_expires_at": None})
            if answer == 0:
                raise httpx.ConnectError("connection refused")
            return httpx.Response(answer, json={"detail": f"HTTP {answer}"})
        return super().__call__(request)


def _training_with_evaluations(evaluations: int):
    """A fake run_trial that calls the evaluation hook like the loop does and stops when it answers False."""
    seen: list[tuple[int, float, int]] = []

    def train(*args: Any, on_evaluation=None, should_stop=None, **kwargs: Any) -> TrialResult:
        pruned = False
        for i in range(1, evaluations + 1):
            assert not should_stop(), "the trial was stopped by something else"
            seen.append((10 * i, 0.5 + 0.01 * i, 10 * evaluations))
            if not on_evaluation(10 * i, 0.5 + 0.01 * i, 10 * evaluations):
                pruned = True
                break
        result = _result()
        return TrialResult(**{**result.__dict__, "pruned": pruned, "steps": seen[-1][0]})

    return train, seen


def test_the_server_stops_a_trial_and_the_worker_reports_it_as_stopped(tmp_path, monkeypatch):
    server = ProgressServer([True, False])
    train, seen = _training_with_evaluations(5)
    worker, lines = _worker(server, tmp_path, monkeypatch, train)
    assert worker.run() == 1
    assert [s for s, _, _ in seen] == [10, 20]  # training ended at the evaluation the server stopped
    progress = [body for path, body in server.requests if path.endswith("/progress")]
    assert progress == [
        {"lease_token": "tok", "step": 10, "metric": 0.51, "total_steps": 50},
        {"lease_token": "tok", "step": 20, "metric": 0.52, "total_steps": 50},
    ]
    paths = [path for path, _ in server.requests]
    assert any(p.endswith("/6547/stopped") for p in paths) and not any(p.endswith("/complete") for p in paths)
    (stopped,) = [body for path, body in server.requests if path.endswith("/stopped")]
    assert stopped["lease_token"] == "tok" and stopped["metric"] == 0.7 and stopped["extra"]["pruned"] is True
    assert any("stopped early at step 20" in line for line in lines), lines


def test_an_outage_never_stops_a_trial_and_the_next_evaluation_reports_again(tmp_path, monkeypatch):
    server = ProgressServer([0, 503, 422, True, True])
    train, seen = _training_with_evaluations(5)
    worker, lines = _worker(server, tmp_path, monkeypatch, train)
    assert worker.run() == 1
    assert len(seen) == 5  # every evaluation ran: refused connections, 5xx and a refusal do not stop training
    assert len([p for p, _ in server.requests if p.endswith("/progress")]) == 5  # one attempt each, none skipped
    assert any(p.endswith("/complete") for p, _ in server.requests)
    assert not any(p.endswith("/stopped") for p, _ in server.requests)


def test_a_lost_lease_in_a_progress_report_stops_the_trial_without_a_report(tmp_path, monkeypatch):
    server = ProgressServer([409])

    def train(*args: Any, on_evaluation=None, should_stop=None, **kwargs: Any) -> TrialResult:
        from autopeft.train import TrialStopped

        assert on_evaluation(10, 0.5, 50) is True  # the hook does not decide: the lease is gone
        if should_stop():
            raise TrialStopped("stopped at step 11")
        raise AssertionError("should_stop did not see the lost lease")

    worker, lines = _worker(server, tmp_path, monkeypatch, train)
    assert worker.run() == 0
    assert not any(p.endswith(("/complete", "/stopped", "/fail")) for p, _ in server.requests)
    assert any("the server refused its lease: trial 6547" in line for line in lines), lines


def test_a_heartbeat_refused_after_the_stop_does_not_drop_the_stopped_report(tmp_path, monkeypatch):
    """Once the server stopped the trial its heartbeats are 409 (the lease is over): a heartbeat already under
    way when the stop came marks the lease lost, and the worker must still send the stopped report."""
    from autopeft.worker import loop as worker_loop
    from autopeft.worker.heartbeat import Heartbeat

    beats: list[Heartbeat] = []

    class Recorded(Heartbeat):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            beats.append(self)

    monkeypatch.setattr(worker_loop, "Heartbeat", Recorded)

    def train(*args: Any, on_evaluation=None, should_stop=None, **kwargs: Any) -> TrialResult:
        assert on_evaluation(10, 0.5, 50) is False
        assert not beats[0].is_alive()  # the stop halted the heartbeats
        beats[0].lost.set()  # ... but one refused in between marked the lease lost
        return TrialResult(**{**_result().__dict__, "pruned": True, "steps": 10})

    server = ProgressServer([False])
    w, lines = _worker(server, tmp_path, monkeypatch, train)
    assert w.run() == 1
    assert any(p.endswith("/stopped") for p, _ in server.requests), lines
    assert not any("result dropped" in line for line in lines), lines
