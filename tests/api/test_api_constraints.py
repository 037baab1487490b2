"""A study's parameter budget (``constraints``): kept by every proposal, shown, and refused when unmeetable."""

from __future__ import annotations

import pytest

from tests.api.conftest import claim, report


def _shape(study_body):
    from autopeft.api.study_spec import shape_from_hf_config

    return shape_from_hf_config(study_body()["model_config"], 2)


def _fractions(study_body) -> list[float]:
    """Every param_fraction the autopeft space of the test model reaches."""
    from autopeft.accounting import estimate
    from autopeft.api.study_spec import build_study_space
    from autopeft.optimize.budget import _points

    space = build_study_space("autopeft", _shape(study_body))
    return sorted({estimate(space.decode(list(x)), space.shape).param_fraction for x in _points(space, 0)[0]})


@pytest.mark.slow
def test_every_trial_of_a_budgeted_study_is_within_it(client, study_body):
    fractions = _fractions(study_body)
    budget = {"max_param_fraction": fractions[len(fractions) // 2], "min_param_fraction": fractions[1]}
    created = client.post("/api/v1/studies", json=study_body(max_trials=8, constraints=budget))
    assert created.status_code == 201, created.text
    study = client.get(f"/api/v1/studies/{created.json()['id']}").json()
    assert study["constraints"] == budget
    size = study["space_size"]
    assert size["exact"] and 0 < size["within_budget"] < size["size"]
    while (r := claim(client, "w1", study["id"], patience=120)).status_code == 200:
        trial = r.json()
        done = client.post(f"/api/v1/trials/{trial['id']}/complete", json=report(trial, 0.6))
        assert done.status_code == 200
    trials = client.get(f"/api/v1/studies/{study['id']}/trials").json()["data"]
    assert len(trials) == 8
    from autopeft.accounting import estimate

    got = [estimate(t["config"], _shape(study_body)).param_fraction for t in trials]
    assert all(budget["min_param_fraction"] <= f <= budget["max_param_fraction"] for f in got), got
    plain = client.get(f"/api/v1/studies/{client.post('/api/v1/studies', json=study_body()).json()['id']}").json()
    assert plain["constraints"] is None and plain["space_size"]["within_budget"] == plain["space_size"]["size"]


@pytest.mark.parametrize(
    "budget, message",
    [
        ({"min_param_fraction": 0.99}, "no configuration of space 'autopeft' has 99% <= param_fraction"),
        ({"max_param_fraction": 0.001, "min_param_fraction": 0.01}, "min_param_fraction 0.01 is above"),
        ({"max_param_fraction": -1}, "max_param_fraction"),
        ({"max_fraction": 0.1}, "max_fraction"),
    ],
)
def test_a_budget_nothing_meets_is_a_422_that_says_why(client, study_body, budget, message):
    r = client.post("/api/v1/studies", json=study_body(constraints=budget))
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert client.get("/api/v1/studies").json()["count"] == 0
