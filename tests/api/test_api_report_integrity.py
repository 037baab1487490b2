"""Issue 27: a result carries the counts its configuration trains on the study's model, or it is a 422 that
changes nothing. FISH (a mask fraction), full fine-tuning and the head-only configuration included."""

from __future__ import annotations

import pytest

from tests.api.conftest import claim, counts, report, tiny_backbone


def _complete(client, trial: dict, **body):
    return client.post(f"/api/v1/trials/{trial['id']}/complete", json={**report(trial), **body})


def test_zero_parameters_for_an_adapter_is_refused_and_the_front_does_not_move(make_client, study_body):
    """The reproduction: `peft_params: 0, param_fraction: 0` for adapters of size 128-256 was accepted, and
    moved the hypervolume from 2.61 to 6.0 and best_metric to 1.0."""
    client = make_client(proposer_enabled=False)
    adapters = [{"serial_adapter": {"size": 4}}, {"serial_adapter": {"size": 16}}, {"serial_adapter": {"size": 32}}]
    created = client.post("/api/v1/studies", json=study_body(max_trials=3, baselines=adapters))
    assert created.status_code == 201, created.text
    study = created.json()
    first = claim(client, "w", study["id"]).json()
    assert _complete(client, first, metric=0.7).status_code == 200
    before = client.get(f"/api/v1/studies/{study['id']}").json()
    for trial in (claim(client, "w", study["id"]).json(), claim(client, "w", study["id"]).json()):
        for forged in ({"peft_params": 0, "param_fraction": 0.0}, {"peft_params": 1, "param_fraction": 1e-300}):
            r = _complete(client, trial, metric=1.0, **forged)
            assert r.status_code == 422 and "is not what this trial's configuration trains" in r.json()["detail"]
        r = _complete(client, trial, metric=1.0, param_fraction=1e-300)
        assert r.status_code == 422 and "param_fraction 1e-300" in r.json()["detail"]
    after = client.get(f"/api/v1/studies/{study['id']}").json()
    assert (after["hypervolume"], after["best_metric"]) == (before["hypervolume"], before["best_metric"]) != (None, 1.0)
    assert after["counts"]["completed"] == 1


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"fish": {"fraction": 0.01, "samples": 8}}, round(0.01 * 30096)),  # the mask's size
        ({"full": {}}, 30096),  # the whole backbone
        ({}, 0),  # the head only: 0 parameters, fraction 0
    ],
    ids=["fish", "full", "head-only"],
)
def test_fish_full_and_head_only_report_their_exact_counts(make_client, study_body, config, expected):
    client = make_client(proposer_enabled=False)
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, baselines=[config])).json()
    trial = claim(client, "w", study["id"]).json()
    assert tiny_backbone() == 30096 and counts(trial["config"])["peft_params"] == expected
    off = {"peft_params": expected + 1, "param_fraction": (expected + 1) / 30096}
    assert _complete(client, trial, **off).status_code == 422  # one parameter more is another configuration
    if expected:
        assert _complete(client, trial, peft_params=0, param_fraction=0.0).status_code == 422
    rounded = float(f"{expected / 30096:.7g}")  # a fraction printed with 7 significant digits passes
    done = _complete(client, trial, peft_params=expected, param_fraction=rounded)
    assert done.status_code == 200 and done.json()["peft_params"] == expected, done.text
