"""Regression tests of issue 13's attack run: inputs that made the server loop, leak or misreport."""

from __future__ import annotations

import json
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
from api.main import create_app
from api.settings import Settings
settings = Settings(database_url=sys.argv[1], proposer_enabled=False, access_log=False, log_level="WARNING")
with TestClient(create_app(settings)) as client:
    r = client.post("/api/v1/studies", json=json.loads(sys.argv[2]))
    print(json.dumps({"status": r.status_code, "body": r.json()}))
"""


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
