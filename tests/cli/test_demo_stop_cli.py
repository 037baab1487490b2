"""``autopeft demo`` stopped early, as users stop it: Ctrl-C in the middle of a trial, and its time limit.
(Apart from test_demo_cli.py so that pytest-xdist runs the two files side by side.)"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_demo_cli import FIXTURES, TINY


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_cleanly_and_takes_its_server_along(tmp_path: Path) -> None:

    db = tmp_path / "demo.db"
    slow = '{"max_steps": 400, "batch_size": 4, "max_length": 64, "max_search_examples": 16}'
    proc = subprocess.Popen(
        [sys.executable, "-m", "autopeft", "demo", "--trials", "50", "--data", str(FIXTURES), "--db", str(db)]
        + ["--device", "cpu", "--training", slow],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "trial 1 (study 1" in line:
            break
    time.sleep(3)  # inside the first trial's training
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    out = "".join(lines) + out
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    assert "received SIGINT" in out and "Pareto front of study 1: 0 trials completed" in out
    assert "Traceback" not in err
    port = int(out.split("server: http://127.0.0.1:")[1].split()[0])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    with sqlite3.connect(db) as con:
        states = {row[0] for row in con.execute("select state from trials")}
    assert "running" not in states  # the trial was given back, not left leased


@pytest.mark.slow
def test_the_time_limit_ends_the_demo_with_the_front_so_far(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autopeft",
            "demo",
            "--trials",
            "6",
            "--data",
            str(FIXTURES),
            "--db",
            str(tmp_path / "d.db"),
        ]
        + ["--device", "cpu", "--training", TINY, "--minutes", "0.01"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no trial starts after 0.01 min" in done.stdout
    assert "time budget used: no new trials" in done.stdout
    ran = int(done.stdout.split("the time limit ended the study after ")[1].split()[0])
    assert ran <= 1 and f"after {ran} of its 6 trials" in done.stdout  # at most the trial running at the limit
    with sqlite3.connect(tmp_path / "d.db") as con:
        states = sorted(row[0] for row in con.execute("select state from trials"))
    assert states.count("completed") == ran and set(states) <= {"completed", "queued"}  # the rest wait for a resume
