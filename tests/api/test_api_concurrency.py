"""32 workers over real HTTP against two server instances sharing one database (PostgreSQL, and SQLite too).

Two servers means two proposers competing for the study (the per-study lock holds across
them) and claims racing through ``FOR UPDATE SKIP LOCKED``. Every trial must be handed
out exactly once, no configuration twice, and the whole budget done.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import text

from tests.api.conftest import live_server, report

WORKERS = 32
BUDGET = 160


def _work(url: str, name: str, study_id: int, completed: list[int], errors: list[str], lock: threading.Lock) -> None:
    deadline = time.monotonic() + 90
    with httpx.Client(base_url=url, timeout=30) as http:
        while time.monotonic() < deadline:
            r = http.post("/api/v1/trials/claim", json={"worker_id": name, "study_id": study_id})
            if r.status_code == 204:
                if r.headers.get("x-autopeft-idle") == "study done":
                    return
                time.sleep(0.05)
                continue
            if r.status_code != 200:
                errors.append(f"claim {r.status_code}: {r.text}")
                return
            trial = r.json()
            body = report(trial, 0.5 + trial["number"] / 1000)
            done = http.post(f"/api/v1/trials/{trial['id']}/complete", json=body)
            if done.status_code != 200:
                errors.append(f"complete {done.status_code}: {done.text}")
                return
            with lock:
                completed.append(trial["id"])
    errors.append(f"{name} ran out of time")


@pytest.mark.slow
def test_32_workers_on_two_servers_get_every_trial_once(db_url, engine, study_body):
    with live_server(db_url) as one, live_server(db_url) as two:
        body = study_body(max_trials=BUDGET, space="grouped")
        study = httpx.post(f"{one.url}/api/v1/studies", json=body, timeout=60).json()
        completed: list[int] = []
        errors: list[str] = []
        lock = threading.Lock()
        threads = [
            threading.Thread(target=_work, args=((one, two)[i % 2].url, f"w{i}", study["id"], completed, errors, lock))
            for i in range(WORKERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:5]
        final = httpx.get(f"{two.url}/api/v1/studies/{study['id']}").json()

    assert len(completed) == BUDGET
    assert max(Counter(completed).values()) == 1  # nobody got a trial twice
    assert final["state"] == "done" and final["counts"]["completed"] == BUDGET and final["n_trials"] == BUDGET
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT count(*), count(DISTINCT config_key), max(attempts), min(attempts) FROM trials")
        ).one()
    assert tuple(rows) == (BUDGET, BUDGET, 1, 1)
