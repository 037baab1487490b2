"""A study whose trials keep failing the same way pauses, shows why, and resumes on request."""

from __future__ import annotations

from typing import Any

from autopeft.api.failures import PAUSE_STREAK, FailedTrial, cause, group_failures, one_line, pause_reason
from tests.api.conftest import claim, report

SIZE_ERROR = "Traceback (most recent call last):\n  ...\nRuntimeError: The size of tensor a ({}) must match the size of tensor b ({})"


def _fail(client, study_id: int, error: str, worker: str = "w1") -> dict[str, Any]:
    trial = claim(client, worker, study_id).json()
    r = client.post(f"/api/v1/trials/{trial['id']}/fail", json={"lease_token": trial["lease"]["token"], "error": error})
    assert r.status_code == 200, r.text
    return trial


def test_the_same_error_five_times_pauses_the_study_and_stops_handing_out_trials(client, study_body):
    study = client.post("/api/v1/studies", json=study_body(max_trials=20)).json()
    for k in range(PAUSE_STREAK - 1):
        _fail(client, study["id"], SIZE_ERROR.format(128, 128 + k))
    assert client.get(f"/api/v1/studies/{study['id']}").json()["state"] == "running"
    _fail(client, study["id"], SIZE_ERROR.format(64, 72), worker="w2")

    view = client.get(f"/api/v1/studies/{study['id']}").json()
    assert view["state"] == "paused"
    assert view["pause_reason"] == "the last 5 trials failed with: " + SIZE_ERROR.format(64, 72).splitlines()[-1]
    [group] = view["failures"]
    assert group["count"] == 5 and group["first_trial_number"] == 0 and group["worker_id"] == "w1"
    assert group["error"] == "RuntimeError: The size of tensor a (128) must match the size of tensor b (128)"
    # nothing is handed out while paused, and the worker is told why; queued trials wait
    r = client.post("/api/v1/trials/claim", json={"worker_id": "w1", "study_id": study["id"]})
    assert r.status_code == 204 and r.headers["x-autopeft-idle"] == "study paused"
    assert view["counts"]["queued"] >= 0 and view["n_trials"] < 20

    resumed = client.post(f"/api/v1/studies/{study['id']}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["state"] == "running" and resumed.json()["pause_reason"] is None
    # failures before the resume no longer count: one more failure does not pause it again
    trial = _fail(client, study["id"], SIZE_ERROR.format(1, 2))
    assert client.get(f"/api/v1/studies/{study['id']}").json()["state"] == "running"
    assert trial["number"] >= PAUSE_STREAK


def test_successes_in_between_keep_a_study_running(client, study_body):
    study = client.post("/api/v1/studies", json=study_body(max_trials=12)).json()
    for k in range(8):
        if k % 2:
            trial = claim(client, "w1", study["id"]).json()
            client.post(f"/api/v1/trials/{trial['id']}/complete", json=report(trial))
        else:
            _fail(client, study["id"], f"TaskError: row {k} is ragged")
    view = client.get(f"/api/v1/studies/{study['id']}").json()
    assert view["state"] == "running"  # 4 of 8 failed: not more than half of the last 10, no streak
    assert view["failures"][0]["count"] == 4 and view["failures"][0]["error"] == "TaskError: row 0 is ragged"


def test_a_stop_keeps_the_queued_trials_and_resume_undoes_it(client, study_body):
    """Issue 27: a stop (a click, or a page of another site before the Origin check) deleted the queued
    trials for good. Now they wait, no worker gets them, and resume hands them out again."""
    baselines = [{"bitfit": {}}, {"serial_adapter": {"size": 8}}, {"prefix": {"length": 4}}]
    study = client.post("/api/v1/studies", json=study_body(max_trials=3, baselines=baselines)).json()
    running = claim(client, "w1", study["id"]).json()

    stopped = client.post(f"/api/v1/studies/{study['id']}/stop").json()
    assert stopped["state"] == "stopped" and stopped["counts"]["queued"] == 2 and stopped["n_trials"] == 3
    r = client.post("/api/v1/trials/claim", json={"worker_id": "w2", "study_id": study["id"]})
    assert r.status_code == 204 and r.headers["x-autopeft-idle"] == "study stopped"
    assert client.post("/api/v1/trials/claim", json={"worker_id": "w2"}).status_code == 204  # not to any-study claims
    assert client.post(f"/api/v1/trials/{running['id']}/complete", json=report(running)).status_code == 200

    resumed = client.post(f"/api/v1/studies/{study['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["state"] == "running" and resumed.json()["stopped_at"] is None
    assert resumed.json()["counts"]["queued"] == 2
    numbers = [claim(client, "w2", study["id"]).json()["number"] for _ in range(2)]
    assert numbers == [1, 2]
    assert client.post("/api/v1/studies/999/resume").status_code == 404


def test_failures_are_grouped_by_their_last_line_with_numbers_masked():
    tb = "Traceback (most recent call last):\n  File 'x.py', line 3\nValueError: bad value 17\n\n"
    assert one_line(tb) == "ValueError: bad value 17"
    assert cause(tb) == cause("ValueError: bad value 4.5") != cause("KeyError: 'a'")
    groups = group_failures(
        [
            FailedTrial(3, 2, "KeyError: 'a'", "w2", None),
            FailedTrial(1, 0, tb, "w1", None),
            FailedTrial(2, 1, "ValueError: bad value 3", "w2", None),
        ]
    )
    assert [(g.error, g.count, g.first_trial_id, g.worker_id) for g in groups] == [
        ("ValueError: bad value 17", 2, 1, "w1"),
        ("KeyError: 'a'", 1, 3, "w2"),
    ]


def test_the_pause_rule():
    fail = ("failed", "OSError: no file 3")
    ok = ("completed", None)
    assert pause_reason([fail] * 4) is None
    assert pause_reason([fail] * 5).startswith("the last 5 trials failed with: OSError")
    assert pause_reason([fail] * 4 + [ok] * 5) is None
    # more than half of the last ten, not in a row
    assert pause_reason([fail, ok] * 3 + [fail] * 3 + [ok]).startswith("6 of the last 10 trials failed with")
    assert pause_reason([fail, ok] * 5) is None
    # different causes in a row do not pause
    assert pause_reason([("failed", f"{name}Error: x") for name in "ABCDE"]) is None
