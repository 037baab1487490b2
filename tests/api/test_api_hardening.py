"""Regression tests of issue 13's attack run: inputs that made the server loop, leak or misreport."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

#: The request that made the server double 0 forever (an integer log range whose min is below 1).
DOS_STUDY = {
    "name": "dos",
    "task": "rte",
    "max_trials": 1,
    "space": {"families": {"serial_adapter": {"size": {"min": 0.5, "max": 64, "log": True}}}},
}

_PROBE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))  # a regression fails on memory, not the machine
from fastapi.testclient import TestClient
from autopeft.api.main import create_app
from autopeft.api.settings import Settings
settings = Settings(
    database_url=sys.argv[1], proposer_enabled=False, access_log=False, log_level="WARNING",
    allowed_hosts=["testserver"],
)
with TestClient(create_app(settings)) as client:
    r = client.post("/api/v1/studies", json=json.loads(sys.argv[2]))
    print(json.dumps({"status": r.status_code, "body": r.json()}))
"""


@pytest.mark.slow
def test_a_space_that_would_never_finish_enumerating_is_refused_at_once(tmp_path: Path):
    """Run in a process of its own, with a memory cap and a time limit: before the fix this
    request never answered and grew the server by ~140 MB/s."""
    url = f"sqlite:///{tmp_path / 'dos.db'}"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, url, json.dumps(DOS_STUDY)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["status"] == 422 and "1 <= min" in answer["body"]["detail"], answer


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("space", {"families": {"lora": {"rank": {"choices": list(range(5000))}}}}, ("at most 256",)),
        ("baselines", [{"serial_adapter": {"size": 8, "layers": [0] * 100_000}}], ("at most 1024",)),
        ("task", {"name": "t", "text_columns": [0], "label_column": 1, "labels": ["x"] * 20_000}, ("labels",)),
        ("training", {"patience": 10**30}, ("patience",)),
    ],
)
def test_lists_and_numbers_of_a_study_are_bounded(make_client, study_body, engine, field, value, words):
    from tests.api.conftest import snapshot

    client = make_client(proposer_enabled=False)
    before = snapshot(engine)
    r = client.post("/api/v1/studies", json=study_body(**{field: value}))
    assert r.status_code == 422 and all(w in r.json()["detail"] for w in words), r.text[:500]
    assert snapshot(engine) == before


COLA_LIKE = {
    "name": "cola-like",
    "header": False,
    "text_columns": [3],
    "label_column": 1,
    "labels": ["0", "1"],
    "metric": "matthews",
}


def test_a_correlation_study_measures_its_hypervolume_from_minus_one(make_client, study_body):
    """Matthews (and Pearson, Spearman) go to -1: a front of negative correlations still has volume,
    the reference says so, and the pareto answer names the metric (issue 13, items 4 and 8)."""
    from tests.api.conftest import claim, report

    client = make_client(proposer_enabled=False)
    body = study_body(task=COLA_LIKE, max_trials=2, baselines=[{"bitfit": {}}, {"serial_adapter": {"size": 8}}])
    study = client.post("/api/v1/studies", json=body).json()
    assert study["reference"] == {"metric": -1.0, "param_fraction": 1.0}
    decades = []
    for metric in (-0.5, -0.2):  # bitfit (fewer parameters), then the serial adapter (more, and better)
        trial = claim(client, "w", study["id"]).json()
        r = client.post(f"/api/v1/trials/{trial['id']}/complete", json=report(trial, metric))
        assert r.status_code == 200, r.text
        decades.append(-math.log10(r.json()["param_fraction"]))
    pareto = client.get(f"/api/v1/studies/{study['id']}/pareto").json()
    assert pareto["metric_name"] == "matthews" and pareto["reference"]["metric"] == -1.0
    # both points are above metric -1: (0.8 x the adapter's decades) + (0.5 x the decades bitfit has beyond it)
    volume = 0.8 * decades[1] + 0.5 * (decades[0] - decades[1])
    assert decades[0] > decades[1] > 0 and pareto["hypervolume"] == pytest.approx(volume)
    assert client.get(f"/api/v1/studies/{study['id']}").json()["hypervolume"] == pytest.approx(volume)


def test_results_stored_before_reports_were_checked_keep_every_number_finite(make_client, study_body, engine):
    from sqlalchemy import text

    from tests.api.conftest import claim, report

    client = make_client(proposer_enabled=False)
    study = client.post("/api/v1/studies", json=study_body(max_trials=1, baselines=[{"bitfit": {}}])).json()
    trial = claim(client, "w", study["id"]).json()
    assert (
        client.post(f"/api/v1/trials/{trial['id']}/complete", json=report(trial)).status_code == 200
    )
    with engine.begin() as conn:  # what a server before the fix accepted
        conn.execute(text("UPDATE trials SET metric = 1e308 WHERE id = :i"), {"i": trial["id"]})
    shown = client.get(f"/api/v1/studies/{study['id']}").json()
    assert isinstance(shown["hypervolume"], float) and shown["hypervolume"] == 0.0
    assert client.get(f"/api/v1/studies/{study['id']}/pareto").json()["count"] == 0
