"""Issue 19: a study that starts from earlier studies, through the REST API, on SQLite and PostgreSQL.

The earlier studies' front configurations that the new space encodes are its first trials
(``source: "warm_start"``, trained again); what it reports (front, hypervolume, best) is its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from autopeft.api.study_spec import shape_from_hf_config
from tests.api.conftest import claim, report, snapshot
from tests.conftest import tiny_config

REGRESSION = {"name": "scores", "data_dir": "/data/scores", "text_columns": ["a", "b"], "label_column": "y"}
REGRESSION |= {"kind": "regression", "metric": "pearson"}


def _complete(client, trial: dict[str, Any], metric: float, shape: Any = None) -> None:
    body = report(trial, metric, shape=shape)
    r = client.post(f"/api/v1/trials/{trial['id']}/complete", json=body)
    assert r.status_code == 200, r.text


def _earlier(client, study_body, results: list[tuple[dict, float]], extra: int = 0, shape: Any = None, **fields) -> int:
    """A study whose baselines are ``results``' configurations, completed with their metrics (and the sizes they
    have on the model of ``shape``); ``extra`` more trials stay queued (a study that still runs)."""
    body = study_body(
        name="earlier", max_trials=len(results) + extra, baselines=[{"config": c} for c, _ in results], **fields
    )
    created = client.post("/api/v1/studies", json=body)
    assert created.status_code == 201, created.text
    study_id = created.json()["id"]
    for _, metric in results:
        _complete(client, claim(client, "earlier-worker", study_id).json(), metric, shape)
    return study_id


def _take_all(client, study_id: int) -> list[dict[str, Any]]:
    """Claim every trial of the study (completing each with a middling result)."""
    taken = []
    while (r := claim(client, "w", study_id, patience=60)).status_code == 200:
        taken.append(r.json())
        _complete(client, taken[-1], 0.5)
    return taken


FRONT = [
    ({"serial_adapter": {"size": 32}}, 0.90),  # front: best metric (6336 parameters)
    ({"serial_adapter": {"size": 4, "layers": [0, 1]}}, 0.80),  # front: few parameters (328)
    ({"prefix": {"length": 8}}, 0.60),  # dominated (1536)
]


def test_front_configurations_of_the_earlier_study_are_the_first_trials(client, study_body):
    earlier = _earlier(client, study_body, FRONT)
    created = client.post("/api/v1/studies", json=study_body(name="warm", max_trials=5, warm_start={"studies": [earlier]}))
    assert created.status_code == 201, created.text
    study = created.json()
    assert study["warm_start"]["studies"] == [earlier]
    # nothing of the earlier study counts here
    assert study["hypervolume"] == 0.0 and study["best_metric"] is None
    assert client.get(f"/api/v1/studies/{study['id']}/pareto").json()["count"] == 0

    first = claim(client, "w", study["id"]).json()
    second = claim(client, "w", study["id"]).json()
    assert [first["source"], second["source"]] == ["warm_start", "warm_start"]
    # the best metric first, then the other end of the front; the dominated configuration never
    assert first["config"]["serial_adapter"]["size"] == 32 and set(first["config"]) == {"serial_adapter"}
    assert second["config"]["serial_adapter"] == {**second["config"]["serial_adapter"], "size": 4, "layers": [0, 1]}
    _complete(client, first, 0.55)
    _complete(client, second, 0.52)
    rest = _take_all(client, study["id"])
    assert all(t["source"] == "sobol" for t in rest) and len(rest) == 3

    trials = client.get(f"/api/v1/studies/{study['id']}/trials").json()["data"]
    assert [t["source"] for t in trials[:2]] == ["warm_start", "warm_start"]
    assert trials[0]["metric"] == 0.55  # trained anew: its own result, not the earlier 0.90
    shown = client.get(f"/api/v1/studies/{study['id']}").json()
    assert shown["warm_start"]["configs"] == 2
    assert shown["warm_start"]["sources"] == [{"id": earlier, "name": "earlier", "task": "rte", "state": "done"}]
    assert shown["best_metric"] == 0.55  # the earlier study's 0.90 is not this study's
    listed = client.get("/api/v1/studies").json()["data"]
    assert [s["warm_start"] for s in listed if s["id"] == study["id"]][0]["studies"] == [earlier]
    cold = client.get(f"/api/v1/studies/{earlier}").json()
    assert cold["warm_start"] is None


def test_a_still_running_study_gives_what_it_has_completed(client, study_body):
    earlier = _earlier(client, study_body, FRONT[:1], extra=3)
    assert client.get(f"/api/v1/studies/{earlier}").json()["state"] == "running"
    study = client.post("/api/v1/studies", json=study_body(name="warm", max_trials=3, warm_start={"studies": [earlier]}))
    taken = _take_all(client, study.json()["id"])
    assert [t["source"] for t in taken] == ["warm_start", "sobol", "sobol"]


def test_configurations_outside_the_space_or_the_layers_are_skipped(client, study_body):
    """The earlier study ran on a 6-layer model with LoRA baselines: the new study (3 layers,
    autopeft space) can encode neither LoRA nor an adapter on layer 5."""
    six = tiny_config("bert", num_hidden_layers=6).to_dict()
    results = [
        ({"lora": {"rank": 8}}, 0.95),  # front (6144 parameters), not in the autopeft space
        ({"serial_adapter": {"size": 32, "layers": [4, 5]}}, 0.90),  # front (4224), layers 4-5 of 3
        ({"serial_adapter": {"size": 16, "layers": [0, 2]}}, 0.85),  # front (2144), fits
    ]
    earlier = _earlier(client, study_body, results, shape=shape_from_hf_config(six, 2), model_config=six)
    created = client.post("/api/v1/studies", json=study_body(name="warm", max_trials=3, warm_start={"studies": [earlier]}))
    assert created.status_code == 201, created.text
    taken = _take_all(client, created.json()["id"])
    assert [t["source"] for t in taken] == ["warm_start", "sobol", "sobol"]
    assert taken[0]["config"]["serial_adapter"]["size"] == 16


def test_max_configs_caps_the_warm_start_trials(client, study_body):
    earlier = _earlier(client, study_body, FRONT)
    body = study_body(name="warm", max_trials=3, warm_start={"studies": [earlier], "max_configs": 1})
    taken = _take_all(client, client.post("/api/v1/studies", json=body).json()["id"])
    assert [t["source"] for t in taken] == ["warm_start", "sobol", "sobol"]


@pytest.mark.parametrize(
    "warm_start, message",
    [
        ({"studies": [999]}, "warm_start.studies: study 999 does not exist"),
        ({"studies": []}, "warm_start.studies"),
        ({"studies": [1, 1]}, "study 1 is named twice"),
        ({"studies": [1], "unknown": True}, "warm_start.unknown"),
    ],
)
def test_an_unknown_or_malformed_warm_start_is_a_422_that_changes_nothing(client, study_body, engine, warm_start, message):
    _earlier(client, study_body, FRONT[:1])
    before = snapshot(engine)
    r = client.post("/api/v1/studies", json=study_body(warm_start=warm_start))
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert snapshot(engine) == before


def test_a_study_of_another_kind_of_task_is_refused(client, study_body, engine):
    regression = client.post("/api/v1/studies", json=study_body(name="scores", task=REGRESSION))
    assert regression.status_code == 201, regression.text
    before = snapshot(engine)
    r = client.post("/api/v1/studies", json=study_body(warm_start={"studies": [regression.json()["id"]]}))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "is a regression task" in detail and "classification" in detail and "'scores'" in detail, detail
    # nothing stored for the refused study (the earlier study's own proposer may be filling its queue meanwhile)
    assert [row[0] for row in snapshot(engine)["studies"]] == [row[0] for row in before["studies"]]
    assert [s["id"] for s in client.get("/api/v1/studies").json()["data"]] == [regression.json()["id"]]


def test_a_deleted_earlier_study_leaves_the_study_running_on_its_own(client, study_body):
    earlier = _earlier(client, study_body, FRONT[:1])
    study = client.post("/api/v1/studies", json=study_body(name="warm", max_trials=2, warm_start={"studies": [earlier]}))
    assert client.delete(f"/api/v1/studies/{earlier}").status_code == 204
    taken = _take_all(client, study.json()["id"])
    # the first trial may have been queued before the deletion; every later one is the study's own design
    assert len(taken) == 2 and taken[1]["source"] == "sobol"
    shown = client.get(f"/api/v1/studies/{study.json()['id']}").json()
    assert shown["proposal_error"] is None and shown["state"] == "done"
    assert shown["warm_start"]["sources"] == [{"id": earlier, "name": None, "task": None, "state": None}]
