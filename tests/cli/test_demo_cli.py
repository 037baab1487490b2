"""``autopeft demo``: the README's first command, run as a user runs it (with a tiny budget)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "glue"
TINY = '{"max_steps": 2, "batch_size": 4, "max_length": 64, "max_search_examples": 16, "eval_every": null}'


@pytest.mark.slow
def test_the_demo_runs_a_study_prints_the_front_and_stops_its_server(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    done = subprocess.run(
        [sys.executable, "-m", "autopeft", "demo", "--trials", "3", "--data", str(FIXTURES), "--db", str(db)]
        + ["--device", "cpu", "--training", TINY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Pareto front of study 1: 3 trials completed, 0 failed" in out
    assert "no GPU: each trial trains 2 steps of 4 examples" in out
    port = int(out.split("server: http://127.0.0.1:")[1].split()[0])
    assert f"dashboard: http://127.0.0.1:{port}/#/study/1" in out
    # The front table lists at least one trial, with its configuration in words.
    table = out.split("hypervolume")[1]
    assert "% params" in table and ("lora" in table or "serial_adapter" in table or "prefix" in table)
    # Every trial of the budget ran once and is stored; the server is gone afterwards.
    with sqlite3.connect(db) as con:
        states = [row[0] for row in con.execute("select state from trials")]
    assert sorted(states) == ["completed"] * 3
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_the_demo_refuses_a_budget_below_one_with_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "autopeft", "demo", "--trials", "0", "--data", str(FIXTURES), "--device", "cpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--trials must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing started, nothing written
