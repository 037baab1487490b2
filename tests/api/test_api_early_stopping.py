"""Progress reports and early stopping through the HTTP API (issue 16), on both backends.

The rule itself is tested in tests/test_early_stopping.py; here: the endpoint's answers, the
stored curve and state, leases, bad input, the budget, the front, the pause logic and proposals.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from tests.api.conftest import claim, report

#: A small trial (the one the rule judges) and a larger one; the peers are smaller still, or larger.
SMALL = {"serial_adapter": {"size": 8}}
LARGE = {"serial_adapter": {"size": 32}, "parallel_adapter": {"size": 32}}
RULE = {"enabled": True, "grace": 0.25, "min_peers": 2, "quantile": 0.5, "margin": 0.01}


def progress(client, trial: dict, step: int, metric: float, token: str | None = None, **extra):
    body = {"lease_token": token or trial["lease"]["token"], "step": step, "metric": metric, **extra}
    return client.post(f"/api/v1/trials/{trial['id']}/progress", json=body)


def fail(client, trial: dict) -> None:
    body = {"lease_token": trial["lease"]["token"], "error": "E"}
    assert client.post(f"/api/v1/trials/{trial['id']}/fail", json=body).status_code == 200


def a_study(client, study_body, **fields) -> dict:
    body = study_body(training={"max_steps": 100, "batch_size": 4}, **fields)
    created = client.post("/api/v1/studies", json=body)
    assert created.status_code == 201, created.text
    return created.json()


def with_peers(client, study_body, peer_metric: float = 0.8, peer_sizes=(2, 4), large=True, **fields):
    """A study whose first two trials (serial adapters of ``peer_sizes``: smaller than SMALL by default)
    completed with curves at steps 10 and 50, and whose next baselines (SMALL, and LARGE unless ``large``
    is false) wait in the queue."""
    baselines = [{"label": f"peer {i}", "config": {"serial_adapter": {"size": s}}} for i, s in enumerate(peer_sizes)]
    baselines += [{"label": "small", "config": SMALL}] + ([{"label": "large", "config": LARGE}] if large else [])
    study = a_study(client, study_body, baselines=baselines, early_stopping=RULE, **fields)
    for _ in range(2):
        peer = claim(client, "peer", study["id"]).json()
        assert progress(client, peer, 10, peer_metric - 0.1).json()["continue"] is True
        assert progress(client, peer, 50, peer_metric).json()["continue"] is True
        body = report(peer, 0.85)
        done = client.post(f"/api/v1/trials/{peer['id']}/complete", json=body)
        assert done.status_code == 200, done.text
    return study


def test_progress_is_stored_renews_the_lease_and_early_stopping_is_off_by_default(client, study_body):
    study = a_study(client, study_body, max_trials=2)
    assert study["early_stopping"]["enabled"] is False and study["early_stopping"]["min_peers"] >= 1
    trial = claim(client, "w", study["id"]).json()
    first = progress(client, trial, 10, 0.5)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["continue"] is True and "off" in answer["reason"]
    assert answer["lease_expires_at"] >= trial["lease"]["expires_at"]
    again = progress(client, trial, 20, 0.1)
    assert again.json()["lease_expires_at"] >= answer["lease_expires_at"]  # each report renews the lease
    progress(client, trial, 20, 0.55)  # a retried report of one step replaces its value
    progress(client, trial, 15, 0.52)  # kept by step
    shown = client.get(f"/api/v1/trials/{trial['id']}").json()
    assert shown["state"] == "running" and shown["curve"] == [[10, 0.5], [15, 0.52], [20, 0.55]]
    assert shown["last_step"] == 20 and shown["heartbeat_at"] is not None
    done = client.post(f"/api/v1/trials/{trial['id']}/complete", json=report(trial, 0.6))
    assert done.json()["state"] == "completed" and done.json()["curve"] == shown["curve"]  # kept with the result
    listed = client.get(f"/api/v1/studies/{study['id']}/trials").json()["data"]
    assert listed[0]["curve"] == shown["curve"]


def test_a_dominated_trial_is_stopped_and_its_report_lands(client, study_body):
    study = with_peers(client, study_body, max_trials=4)
    small = claim(client, "w", study["id"]).json()
    assert small["label"] == "small"
    assert progress(client, small, 10, 0.6).json()["continue"] is True  # within the grace (25 of 100 steps)
    stop = progress(client, small, 50, 0.5, total_steps=100)
    assert stop.status_code == 200, stop.text
    assert stop.json()["continue"] is False and "below" in stop.json()["reason"]
    assert stop.json()["lease_expires_at"] is None

    trial = client.get(f"/api/v1/trials/{small['id']}").json()
    assert trial["state"] == "stopped" and trial["finished_at"] is not None
    assert trial["curve"] == [[10, 0.6], [50, 0.5]] and trial["last_step"] == 50
    assert trial["metric"] == 0.6  # the best so far: what the worker's kept state scores
    assert 0 < trial["param_fraction"] < 1 and trial["peft_params"] > 0  # the server's estimate until the report

    token = small["lease"]["token"]
    assert progress(client, small, 60, 0.5).json()["continue"] is False  # asked again: the same answer
    assert client.post(f"/api/v1/trials/{small['id']}/heartbeat", json={"lease_token": token}).status_code == 409
    assert client.post(f"/api/v1/trials/{small['id']}/complete", json=report(small, 0.6)).status_code == 409
    body = report(small, 0.99, extra={"pruned": True})
    landed = client.post(f"/api/v1/trials/{small['id']}/stopped", json=body)
    assert landed.status_code == 200, landed.text
    assert landed.json()["state"] == "stopped" and landed.json()["metric"] == 0.99
    assert client.post(f"/api/v1/trials/{small['id']}/stopped", json=body).status_code == 200  # idempotent
    assert client.post(f"/api/v1/trials/{small['id']}/stopped", json={**body, "lease_token": "x"}).status_code == 409

    shown = client.get(f"/api/v1/studies/{study['id']}").json()
    assert shown["counts"]["stopped"] == 1 and shown["counts"]["completed"] == 2
    assert shown["best_metric"] == 0.85  # a stopped trial's metric is partial: not a result
    front = client.get(f"/api/v1/studies/{study['id']}/pareto").json()
    assert small["id"] not in {t["id"] for t in front["data"]}
    only = client.get(f"/api/v1/studies/{study['id']}/trials", params={"state": "stopped"}).json()
    assert [t["id"] for t in only["data"]] == [small["id"]]


def test_the_best_at_its_size_and_trials_with_only_larger_peers_go_on(client, study_body):
    study = with_peers(client, study_body, max_trials=4)
    small = claim(client, "w", study["id"]).json()
    assert progress(client, small, 50, 0.9).json()["continue"] is True  # better than every smaller peer
    assert progress(client, small, 75, 0.9).json()["continue"] is True  # (no peer reached step 75)

    larger_peers = with_peers(client, study_body, peer_sizes=(16, 32), max_trials=4)
    small = claim(client, "w", larger_peers["id"]).json()
    answer = progress(client, small, 50, 0.1).json()
    assert answer["continue"] is True and "0 of the 2 peers" in answer["reason"]


def test_a_stopped_trial_uses_its_place_in_the_budget_and_is_not_run_again(client, study_body):
    study = with_peers(client, study_body, large=False, max_trials=3)  # the two peers and `small`
    small = claim(client, "w", study["id"]).json()
    assert progress(client, small, 50, 0.2).json()["continue"] is False
    nothing = claim(client, "w", study["id"])
    assert nothing.status_code == 204 and nothing.headers["x-autopeft-idle"] == "study done"
    shown = client.get(f"/api/v1/studies/{study['id']}").json()
    assert shown["state"] == "done" and shown["n_trials"] == 3
    assert shown["counts"] == {"queued": 0, "running": 0, "completed": 2, "failed": 0, "stopped": 1}


def test_stopped_trials_are_not_failures_for_the_pause_rule(client, study_body):
    baselines = [{"serial_adapter": {"size": s}} for s in (2, 4, 8, 16, 32, 64)]
    study = a_study(client, study_body, max_trials=8, baselines=baselines, early_stopping={**RULE, "min_peers": 1})
    peer = claim(client, "w", study["id"]).json()
    progress(client, peer, 50, 0.9)
    client.post(f"/api/v1/trials/{peer['id']}/complete", json=report(peer, 0.9))
    outcomes = ["fail", "fail", "fail", "fail", "stop"]
    for what in outcomes:
        trial = claim(client, "w", study["id"]).json()
        if what == "fail":
            fail(client, trial)
        else:
            assert progress(client, trial, 50, 0.1).json()["continue"] is False
    assert client.get(f"/api/v1/studies/{study['id']}").json()["state"] == "running"
    fail(client, claim(client, "w", study["id"]).json())
    shown = client.get(f"/api/v1/studies/{study['id']}").json()
    assert shown["state"] == "running", shown["pause_reason"]  # a stop in between breaks the streak of five


def test_stale_tokens_are_409_and_bad_input_422_changing_nothing(client, study_body):
    study = a_study(client, study_body, max_trials=2, lease_seconds=0.5)
    trial = claim(client, "w", study["id"]).json()
    assert progress(client, trial, 10, 0.5).status_code == 200
    for body, words in [
        ({"step": -1}, "step"),
        ({"metric": 1.5}, "outside the range [0, 1] of accuracy"),
        ({"metric": math.inf}, "metric"),
        ({"metric": math.nan}, "metric"),
        ({"metric": True}, "metric"),
        ({"step": 1.5}, "step"),
        ({"total_steps": 0}, "total_steps"),
        ({"surprise": 1}, "surprise"),
    ]:
        full = {"lease_token": trial["lease"]["token"], "step": 20, "metric": 0.5, **body}
        raw = json.dumps(full)  # NaN and Infinity as Python writes them: not JSON, but what a client may send
        headers = {"content-type": "application/json"}
        r = client.post(f"/api/v1/trials/{trial['id']}/progress", content=raw, headers=headers)
        assert r.status_code == 422, (body, r.text)
        assert words in r.text, (body, r.text)
    assert client.get(f"/api/v1/trials/{trial['id']}").json()["curve"] == [[10, 0.5]]
    assert progress(client, trial, 20, 0.5, token="not-the-token").status_code == 409
    unknown = {"lease_token": "t", "step": 1, "metric": 0.5}
    assert client.post("/api/v1/trials/999999/progress", json=unknown).status_code == 404

    deadline = time.monotonic() + 30
    while client.get(f"/api/v1/trials/{trial['id']}").json()["state"] != "queued":  # the lease expires
        assert time.monotonic() < deadline
        time.sleep(0.2)
    again = claim(client, "w2", study["id"]).json()
    assert again["id"] == trial["id"]
    assert client.get(f"/api/v1/trials/{trial['id']}").json()["curve"] is None  # a new run starts a new curve
    late = progress(client, trial, 30, 0.5)  # (before the claim, it would have taken its lapsed lease back)
    assert late.status_code == 409 and "worker 'w2' holds it now" in late.json()["detail"]


@pytest.mark.parametrize("bad", [{"enabled": "maybe"}, {"grace": 2}, {"min_peers": 0}, {"nope": 1}])
def test_bad_early_stopping_settings_are_422(client, study_body, bad):
    r = client.post("/api/v1/studies", json=study_body(early_stopping=bad))
    assert r.status_code == 422 and "early_stopping" in r.text


def test_the_proposer_sees_stopped_trials_apart(client, study_body, engine):
    """The optimiser input: stopped trials are neither observations nor pending, but listed apart."""
    from autopeft.api.storage import Storage

    study = with_peers(client, study_body, max_trials=5)
    small = claim(client, "w", study["id"]).json()
    assert progress(client, small, 50, 0.2).json()["continue"] is False
    snap = Storage(engine).proposal_snapshot(study["id"])
    assert len(snap.completed) == 2 and len(snap.stopped) == 1 and len(snap.failed) == 0
    assert all(metric == 0.85 for _, metric, _ in snap.completed)
    listed = client.get(f"/api/v1/studies/{study['id']}/trials").json()["data"]
    small_x = next(t for t in listed if t["id"] == small["id"])
    assert small_x["in_space"]


def test_the_proposer_hands_stopped_points_to_the_optimiser_like_failed_ones(client, study_body, engine, db_url):
    """A stopped configuration is excluded exactly as a failed one is (same proposals), not ignored."""
    from dataclasses import replace

    from autopeft.api.proposer import Proposer
    from autopeft.api.storage import Storage
    from autopeft.api.study_spec import StudyContexts
    from tests.api.conftest import test_settings

    study = with_peers(client, study_body, max_trials=5)
    storage = Storage(engine)
    proposer = Proposer(storage, StudyContexts(), test_settings(db_url))
    try:
        snap = storage.proposal_snapshot(study["id"])
        first = proposer._proposals(snap, 1)[0]
        as_failed = proposer._proposals(replace(snap, failed=(first.x,)), 1)[0]
        as_stopped = proposer._proposals(replace(snap, stopped=(first.x,)), 1)[0]
    finally:
        proposer._pool.shutdown()
    assert as_stopped.config_key == as_failed.config_key != first.config_key
