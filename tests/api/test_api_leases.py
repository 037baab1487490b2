"""Leases through the HTTP API: expiry returns the trial to the queue; the old token is refused."""

from __future__ import annotations

import time

from tests.api.conftest import claim, report


def _wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_expired_lease_is_requeued_and_the_late_report_refused(client, study_body):
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, lease_seconds=0.5, max_retries=1)).json()
    first = claim(client, "slow", study["id"]).json()
    trial_url = f"/api/v1/trials/{first['id']}"
    _wait_until(lambda: client.get(trial_url).json()["state"] == "queued")  # the sweeper found it
    assert client.get(trial_url).json()["expiries"] == 1

    second = claim(client, "fast", study["id"]).json()
    assert second["id"] == first["id"] and second["attempt"] == 2
    assert second["lease"]["token"] != first["lease"]["token"]
    late = client.post(f"{trial_url}/complete", json=report(first["lease"]["token"], 0.9))
    assert late.status_code == 409 and "handed on" in late.json()["detail"]
    beat = client.post(f"{trial_url}/heartbeat", json={"lease_token": first["lease"]["token"]})
    assert beat.status_code == 409

    ok = client.post(f"{trial_url}/complete", json=report(second["lease"]["token"], 0.6))
    assert ok.status_code == 200 and ok.json()["metric"] == 0.6 and ok.json()["worker_id"] == "fast"


def test_heartbeats_keep_a_lease_alive(client, study_body):
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, lease_seconds=1.5)).json()
    trial = claim(client, "w", study["id"]).json()
    token = trial["lease"]["token"]
    for _ in range(10):  # 3 s in all, twice the lease
        time.sleep(0.3)
        assert client.post(f"/api/v1/trials/{trial['id']}/heartbeat", json={"lease_token": token}).status_code == 200
    assert client.post(f"/api/v1/trials/{trial['id']}/complete", json=report(token)).status_code == 200


def test_a_trial_fails_when_its_retries_are_used(client, study_body):
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, lease_seconds=0.5, max_retries=0)).json()
    trial = claim(client, "w", study["id"]).json()
    url = f"/api/v1/trials/{trial['id']}"
    _wait_until(lambda: client.get(url).json()["state"] == "failed")
    assert "lease expired 1 times" in client.get(url).json()["error"]
    assert client.get(f"/api/v1/studies/{study['id']}").json()["state"] == "done"
    assert client.post(f"{url}/complete", json=report(trial["lease"]["token"])).status_code == 409
