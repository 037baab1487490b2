"""Issue 27: a network cut longer than the lease, while the server stays up. A real server and a real
worker loop; the worker's HTTP goes through a transport that can be cut, and training is faked (a trial
that runs through the cut), so the test is about leases, not models.

Before the fix the worker's first heartbeat after the cut got 409 "this lease is void", it dropped the
training, said "another worker has it" (nobody did) and trained the trial again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from autopeft.client import ServerClient
from autopeft.train.trial import TrialResult
from autopeft.worker.loop import Worker
from autopeft.worker.spool import Spool
from tests.api.conftest import counts, live_server


class Cuttable(httpx.HTTPTransport):
    """An HTTP transport whose requests fail as a cut network's do while :attr:`cut` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.cut = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.cut.is_set():
            raise httpx.ConnectError("network is unreachable", request=request)
        return super().handle_request(request)


def _result(config: dict[str, Any]) -> TrialResult:
    fields: dict[str, Any] = {name: 0 for name in TrialResult.__dataclass_fields__}
    fields.update(metric=0.75, metric_name="accuracy", metrics={"search": {"accuracy": 0.75}}, **counts(config))
    fields.update(device="cpu", final_loss=0.5, stopped_early=False, by_family={}, losses=[])
    return TrialResult(**fields)


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path):
    with live_server(f"sqlite:///{tmp_path / 'cut.db'}", sweep_interval_s=0.1) as srv:  # its proposer sweeps
        yield srv


def _run(server, tmp_path, monkeypatch, during_cut) -> tuple[dict[str, Any], list[str], int]:
    """One study of one trial (lease 1 s), one worker. Its (fake) training cuts the network, waits until the
    server sweeps the lapsed lease, calls ``during_cut(api, trial_id)``, restores the network and trains on
    for a few heartbeats. Returns the trial as the server has it, what the worker said, and how often the
    trial was trained."""
    import autopeft.train
    from autopeft.train import TrialStopped

    api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
    from tests.conftest import tiny_config

    body = {
        "name": "cut",
        "task": "rte",
        "model": "/models/on/the/workers/tiny-bert",
        "model_config": tiny_config("bert").to_dict(),
        "max_trials": 1,
        "lease_seconds": 1.0,
        "max_retries": 3,
        "baselines": [{"bitfit": {}}],
    }
    study = api.post("/studies", json=body).json()
    transport = Cuttable()
    trained: list[int] = []

    def train(task, model, config, training, *, should_stop, **_: Any) -> TrialResult:
        trained.append(1)
        if len(trained) == 1:
            (trial,) = api.get(f"/studies/{study['id']}/trials").json()["data"]
            transport.cut.set()
            try:
                _wait(lambda: api.get(f"/trials/{trial['id']}").json()["state"] == "queued")
                during_cut(api, trial["id"])
            finally:
                transport.cut.clear()
            end = time.monotonic() + 1.5  # several heartbeats (every third of the lease)
            while time.monotonic() < end:
                if should_stop():
                    raise TrialStopped("stopped")
                time.sleep(0.05)
        return _result(config)

    monkeypatch.setattr(autopeft.train, "run_trial", train)
    lines: list[str] = []
    worker = Worker(
        ServerClient(server.url, transport=transport, max_backoff=0.2),
        worker_id="cut-off",
        study_id=study["id"],
        device="cpu",
        max_trials=1,
        poll=0.2,
        exit_when_idle=3.0,
        progress=False,
        say=lines.append,
        spool=Spool(server.url, root=tmp_path / "spool"),
    )
    worker.run()
    (trial,) = api.get(f"/studies/{study['id']}/trials").json()["data"]
    return trial, lines, len(trained)


def test_a_worker_cut_off_longer_than_its_lease_keeps_its_training_and_reports(server, tmp_path, monkeypatch):
    trial, lines, trained = _run(server, tmp_path, monkeypatch, during_cut=lambda api, trial_id: None)
    said = "\n".join(lines)
    assert trained == 1, said  # not trained again
    assert trial["state"] == "completed" and trial["metric"] == 0.75 and trial["attempts"] == 1, (trial, said)
    assert trial["worker_id"] == "cut-off" and trial["expiries"] == 1
    assert "another worker" not in said and "refused" not in said, said


@pytest.mark.slow
def test_a_worker_whose_trial_was_claimed_meanwhile_says_who_has_it(server, tmp_path, monkeypatch):
    done = threading.Event()

    def someone_claims(api: httpx.Client, trial_id: int) -> None:
        taken = api.post("/trials/claim", json={"worker_id": "other-box"})
        assert taken.status_code == 200 and taken.json()["id"] == trial_id
        token = taken.json()["lease"]["token"]

        def beat() -> None:  # the other worker keeps its lease
            while not done.wait(0.2):
                api.post(f"/trials/{trial_id}/heartbeat", json={"lease_token": token})

        threading.Thread(target=beat, daemon=True).start()

    try:
        trial, lines, trained = _run(server, tmp_path, monkeypatch, during_cut=someone_claims)
    finally:
        done.set()
    said = "\n".join(lines)
    assert trained == 1 and trial["state"] == "running" and trial["worker_id"] == "other-box", (trial, said)
    assert "the server refused its lease" in said and "worker 'other-box' holds it now" in said, said
