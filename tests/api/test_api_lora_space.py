"""A study over ``"space": "lora"`` (issue 30): created like any other, and every trial it hands out is one peft
method (LoRA/DoRA or (IA)³), never empty."""

from __future__ import annotations

from tests.api.conftest import claim


def test_a_lora_study_is_created_and_proposes_one_peft_method_per_trial(client, study_body):
    r = client.post("/api/v1/studies", json=study_body(space="lora", max_trials=8))
    assert r.status_code == 201, r.text
    study = client.get(f"/api/v1/studies/{r.json()['id']}").json()
    assert study["space_name"] == "lora"
    configs = []
    for i in range(8):
        got = claim(client, worker=f"w{i}")
        assert got.status_code == 200, got.text
        configs.append(got.json()["config"])
    assert all(len(c) == 1 and next(iter(c)) in ("lora", "ia3") for c in configs), configs
