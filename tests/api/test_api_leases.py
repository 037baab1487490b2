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
    late = client.post(f"{trial_url}/complete", json=report(first, 0.9))
    assert late.status_code == 409 and "worker 'fast' holds it now" in late.json()["detail"]
    beat = client.post(f"{trial_url}/heartbeat", json={"lease_token": first["lease"]["token"]})
    assert beat.status_code == 409 and "worker 'fast' holds it now" in beat.json()["detail"]

    ok = client.post(f"{trial_url}/complete", json=report(second, 0.6))
    assert ok.status_code == 200 and ok.json()["metric"] == 0.6 and ok.json()["worker_id"] == "fast"


def test_heartbeats_keep_a_lease_alive(client, study_body):
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, lease_seconds=1.5)).json()
    trial = claim(client, "w", study["id"]).json()
    token = trial["lease"]["token"]
    for _ in range(10):  # 3 s in all, twice the lease
        time.sleep(0.3)
        assert client.post(f"/api/v1/trials/{trial['id']}/heartbeat", json={"lease_token": token}).status_code == 200
    assert client.post(f"/api/v1/trials/{trial['id']}/complete", json=report(trial)).status_code == 200


def test_a_trial_fails_when_its_retries_are_used(client, study_body):
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, lease_seconds=0.5, max_retries=0)).json()
    trial = claim(client, "w", study["id"]).json()
    url = f"/api/v1/trials/{trial['id']}"
    _wait_until(lambda: client.get(url).json()["state"] == "failed")
    assert "lease expired 1 times" in client.get(url).json()["error"]
    assert client.get(f"/api/v1/studies/{study['id']}").json()["state"] == "done"
    # nobody else can hold a failed trial: its worker, cut off until now, still reports (the failure is replaced)
    late = client.post(f"{url}/complete", json=report(trial))
    assert late.status_code == 200 and late.json()["state"] == "completed" and late.json()["error"] is None


def test_a_worker_back_from_a_network_cut_takes_its_lapsed_lease_back(client, study_body):
    """Issue 27: the lease lapsed and the trial went back to the queue while its worker was cut off (the
    server stayed up); nobody claimed it since, so the worker's next heartbeat takes the lease back and its
    result lands, instead of a 409 that made it drop the training and train the trial again."""
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, lease_seconds=0.5)).json()
    trial = claim(client, "cut-off", study["id"]).json()
    url, token = f"/api/v1/trials/{trial['id']}", trial["lease"]["token"]
    _wait_until(lambda: client.get(url).json()["state"] == "queued")

    beat = client.post(f"{url}/heartbeat", json={"lease_token": token})
    assert beat.status_code == 200, beat.text
    view = client.get(url).json()
    assert (view["state"], view["worker_id"], view["attempts"]) == ("running", "cut-off", 1)
    assert claim(client, "other", study["id"]).headers["x-autopeft-idle"] == "budget used"  # it is not handed on
    done = client.post(f"{url}/complete", json=report(trial, 0.8))
    assert done.status_code == 200 and done.json()["metric"] == 0.8 and done.json()["worker_id"] == "cut-off"


def test_a_progress_report_after_a_cut_takes_the_lease_back_too(client, study_body):
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, lease_seconds=0.5)).json()
    trial = claim(client, "cut-off", study["id"]).json()
    url = f"/api/v1/trials/{trial['id']}"
    _wait_until(lambda: client.get(url).json()["state"] == "queued")
    body = {"lease_token": trial["lease"]["token"], "step": 3, "metric": 0.6}
    answer = client.post(f"{url}/progress", json=body)
    assert answer.status_code == 200 and answer.json()["continue"] is True, answer.text
    assert client.get(url).json()["state"] == "running" and client.get(url).json()["curve"] == [[3, 0.6]]


def test_a_failed_trial_whose_retries_lapsed_is_taken_back_by_its_worker(client, study_body):
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, lease_seconds=0.5, max_retries=0)).json()
    trial = claim(client, "cut-off", study["id"]).json()
    url = f"/api/v1/trials/{trial['id']}"
    _wait_until(lambda: client.get(url).json()["state"] == "failed")
    assert client.post(f"{url}/heartbeat", json={"lease_token": trial["lease"]["token"]}).status_code == 200
    view = client.get(url).json()
    assert view["state"] == "running" and view["error"] is None and view["finished_at"] is None


def test_once_another_worker_claimed_the_trial_the_refusal_names_it(client, study_body):
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, lease_seconds=0.5, max_retries=3)).json()
    first = claim(client, "cut-off", study["id"]).json()
    url = f"/api/v1/trials/{first['id']}"
    _wait_until(lambda: client.get(url).json()["state"] == "queued")
    second = claim(client, "other", study["id"]).json()
    assert second["id"] == first["id"]
    beat = client.post(f"{url}/heartbeat", json={"lease_token": first["lease"]["token"]})
    assert beat.status_code == 409 and "worker 'other' holds it now" in beat.json()["detail"]
    # the second lease lapses too: the first token stays void (it is not the last lease), the second is taken back
    _wait_until(lambda: client.get(url).json()["state"] == "queued")
    again = client.post(f"{url}/heartbeat", json={"lease_token": first["lease"]["token"]})
    assert again.status_code == 409 and "handed on since" in again.json()["detail"]
    assert client.post(f"{url}/heartbeat", json={"lease_token": second["lease"]["token"]}).status_code == 200
