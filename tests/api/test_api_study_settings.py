"""A study's settings (issue 28): each method takes its own fields, the parameter budget is the study's own
field and never the optimizer's, and the GP's hyperparameter reuse has its new name (the old one still works)."""

from __future__ import annotations

import pytest

#: The issue's body: a budget nothing meets, given inside the optimizer (a server before the fix accepted it).
UNMEETABLE = {"max_param_fraction": 1e-9, "min_param_fraction": 5e-10}


def test_a_budget_inside_the_optimizer_is_a_422_that_points_to_the_study_field(client, study_body):
    r = client.post("/api/v1/studies", json=study_body(optimizer={"constraints": UNMEETABLE}))
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("optimizer.constraints: the parameter budget is the study's own field")
    top = client.post("/api/v1/studies", json=study_body(constraints=UNMEETABLE))
    assert top.status_code == 422 and "no configuration of space 'autopeft'" in top.json()["detail"], top.text
    assert client.get("/api/v1/studies").json()["count"] == 0


@pytest.mark.parametrize(
    "optimizer, message",
    [
        (
            {"method": "gp", "saas_warmup": 16},
            "optimizer.saas_warmup: does not apply to method gp (it is a setting of saas)",
        ),
        (
            {"method": "sobol", "kernel": "rbf"},
            "optimizer.kernel: does not apply to method sobol (it is a setting of gp)",
        ),
        ({"method": "magic"}, "optimizer.method: unknown optimizer method; one of gp, "),
        ({"method": "saas", "saas_warmup": 2}, "optimizer.saas_warmup: Input should be greater than or equal to 4"),
    ],
)
def test_a_field_the_method_does_not_take_is_a_422_naming_it(client, study_body, optimizer, message):
    r = client.post("/api/v1/studies", json=study_body(optimizer=optimizer))
    assert r.status_code == 422 and r.json()["detail"].startswith(message), r.text


def test_the_study_shows_its_method_s_settings_and_its_budget_as_given(client, study_body):
    budget = {"max_param_fraction": 0.2, "min_param_fraction": None}
    old_saas = {"method": "saas", "saas_warmup": 24, "saas_samples": 12, "warm_start": False}
    created = client.post("/api/v1/studies", json=study_body(optimizer=old_saas, constraints=budget))
    assert created.status_code == 201, created.text
    study = client.get(f"/api/v1/studies/{created.json()['id']}").json()
    assert study["constraints"] == budget
    optimizer = study["optimizer"]
    assert optimizer["method"] == "saas" and optimizer["saas_samples"] == 12
    assert (
        optimizer["reuse_hyperparameters"] is False and "warm_start" not in optimizer and "constraints" not in optimizer
    )
    assert "kernel" not in optimizer, "a gp field is not a saas study's setting"
    listed = client.get("/api/v1/studies").json()["data"][0]
    assert listed["optimizer"] == optimizer and listed["constraints"] == budget
    plain = client.post("/api/v1/studies", json=study_body(optimizer={})).json()
    assert plain["optimizer"]["method"] == "gp" and plain["constraints"] is None
