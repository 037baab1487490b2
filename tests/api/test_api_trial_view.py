"""What the API tells a display about a trial's configuration, so that no client needs to know
the PEFT families: a one-line summary and where each family sits (issue 15)."""

from __future__ import annotations

import re
from pathlib import Path

from autopeft.modules.registry import FAMILIES
from tests.api.conftest import claim, report

DASHBOARD = Path(__file__).resolve().parents[2] / "autopeft" / "api" / "static" / "dashboard.js"


def test_trials_carry_their_summary_and_placement(client, study_body) -> None:
    baselines = [
        {"label": "per-layer LoRA", "config": {"lora": {"rank": {"0": 4, "2": 8}, "targets": ["query", "value"]}}},
        {"label": "two families", "config": {"prefix": {"length": 8, "layers": [1]}, "bitfit": {}}},
        {"label": "whole model", "config": {"fish": {"fraction": 0.01}}},
    ]
    study = client.post("/api/v1/studies", json=study_body(baselines=baselines, max_trials=3)).json()
    trials = client.get(f"/api/v1/studies/{study['id']}/trials").json()["data"]
    by_label = {t["label"]: t for t in trials}
    lora = by_label["per-layer LoRA"]
    assert lora["summary"] == "lora r4/8 @0,2 q,v"
    assert lora["placement"] == {"lora": {"layers": {"0": 4, "2": 8}, "size_field": "rank"}}
    both = by_label["two families"]
    assert both["placement"]["prefix"] == {"layers": {"1": 8}, "size_field": "length"}
    assert both["placement"]["bitfit"] == {"layers": {"0": True, "1": True, "2": True}, "size_field": None}
    assert by_label["whole model"]["placement"] == {"fish": {"layers": None, "size_field": None}}
    assert both["summary"].startswith("prefix len 8 @1") and "bitfit" in both["summary"]

    # the front lists the same view
    got = claim(client, study_id=study["id"]).json()
    client.post(f"/api/v1/trials/{got['id']}/complete", json=report(got, 0.7))
    front = client.get(f"/api/v1/studies/{study['id']}/pareto").json()["data"]
    assert front[0]["summary"] and front[0]["placement"] == by_label[front[0]["label"]]["placement"]


def test_the_dashboard_knows_no_family() -> None:
    """Adding a family must not need the page: it shows what the API says."""
    js = DASHBOARD.read_text()
    named = [name for name in FAMILIES if re.search(rf"['\"`]{re.escape(name)}['\"`]", js)]
    assert named == []
