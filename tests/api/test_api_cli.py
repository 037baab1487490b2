"""`autopeft study ...` against a live server, and `autopeft serve` as a user starts it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from autopeft.cli import main
from autopeft.cli.study import with_model_config
from tests.api.conftest import claim, live_server, report


@pytest.fixture
def backend() -> str:
    """The CLI talks HTTP; the database behind it does not matter here."""
    return "sqlite"


def test_study_commands_against_a_live_server(db_url, tmp_path, capsys, tiny_model_dir):
    study = {
        "name": "cli",
        "task": "mrpc",
        "model": str(tiny_model_dir),
        "max_trials": 3,
        "optimizer": {"method": "sobol"},
        "training": {"max_steps": 1},
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    with live_server(db_url) as server:
        args = ["--server", server.url]
        assert main(["study", "create", str(path), *args]) == 0
        assert "study 1 created" in capsys.readouterr().out
        assert main(["study", "list", *args]) == 0
        assert "mrpc" in capsys.readouterr().out

        trial = httpx.post(f"{server.url}/api/v1/trials/claim", json={"worker_id": "w"}, timeout=30).json()
        body = report(trial, 0.8)  # the counts of its configuration on the tiny BERT
        assert httpx.post(f"{server.url}/api/v1/trials/{trial['id']}/complete", json=body).status_code == 200

        assert main(["study", "show", "1", *args]) == 0
        assert "best metric 0.8000" in capsys.readouterr().out
        assert main(["study", "trials", "1", *args]) == 0
        assert "completed" in capsys.readouterr().out
        assert main(["study", "pareto", "1", "--json", *args]) == 0
        assert json.loads(capsys.readouterr().out)["count"] == 1
        assert main(["study", "pareto", "1", *args]) == 0
        printed = capsys.readouterr().out  # the metric is named, not just "metric" (issue 13, item 8)
        assert "by f1 and parameters" in printed and "f1" in printed.splitlines()[1].split()
        assert main(["study", "stop", "1", *args]) == 0
        assert "stopped" in capsys.readouterr().out
        assert main(["study", "show", "9", *args]) == 2
        assert "404 study 9 does not exist" in capsys.readouterr().err
        assert main(["study", "create", '{"name": "x", "task": "nope", "max_trials": 1}', *args]) == 2
        assert "unknown task 'nope'" in capsys.readouterr().err


def test_study_trials_and_show_print_stopped_trials(db_url, capsys, study_body):
    """Issue 16: a trial the early-stopping rule stopped shows as `stopped`, with the step it stopped at."""
    rule = {"enabled": True, "min_peers": 1, "grace": 0.25, "margin": 0.0}
    smallest_first = [{"bitfit": {}}, {"serial_adapter": {"size": 8}}]
    body = study_body(max_trials=3, training={"max_steps": 100}, early_stopping=rule, baselines=smallest_first)
    with live_server(db_url) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        args = ["--server", server.url]
        study = http.post("/api/v1/studies", json=body).json()
        first, second = (claim(http, "w", study["id"]).json() for _ in range(2))
        for trial, metric in ((first, 0.9), (second, 0.4)):
            progress = {"lease_token": trial["lease"]["token"], "step": 50, "metric": metric}
            answer = http.post(f"/api/v1/trials/{trial['id']}/progress", json=progress).json()
            assert answer["continue"] is (metric == 0.9), answer
            if metric == 0.9:  # the smaller peer (bitfit)
                assert http.post(f"/api/v1/trials/{trial['id']}/complete", json=report(trial, 0.9)).status_code == 200

        assert main(["study", "trials", str(study["id"]), *args]) == 0
        printed = capsys.readouterr().out
        row = next(line for line in printed.splitlines() if line.split()[:2] == [str(second["id"]), "1"])
        assert "stopped" in row.split() and "50" in row.split(), printed
        assert main(["study", "trials", str(study["id"]), "--state", "stopped", *args]) == 0
        rows = capsys.readouterr().out.splitlines()[2:]  # below the heads and their rule
        assert len(rows) == 1 and "stopped" in rows[0]
        assert main(["study", "show", str(study["id"]), *args]) == 0
        shown = capsys.readouterr().out
        assert "1 completed, 0 failed, 1 stopped early" in shown and "early stopping on" in shown
        assert main(["study", "list", *args]) == 0
        assert "stopped" in capsys.readouterr().out.splitlines()[0]


def test_create_sends_the_local_model_config(tiny_model_dir):
    body = with_model_config({"name": "x", "model": str(tiny_model_dir)})
    assert body["model_config"]["num_hidden_layers"] == 3
    unreadable = {"name": "x", "model": "/only/on/the/workers"}
    assert with_model_config(unreadable) == unreadable  # left to the server
    given = {"model": str(tiny_model_dir), "model_config": {"model_type": "bert"}}
    assert with_model_config(given) == given


def test_unreachable_server_is_a_clear_error(capsys):
    assert main(["study", "list", "--server", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the server" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_autopeft_serve_starts_migrates_and_stops(tmp_path, study_body):
    port = _free_port()
    env = {**os.environ, "AUTOPEFT_LOG_LEVEL": "WARNING", "AUTOPEFT_API_KEY": "k"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from autopeft.cli import main; sys.exit(main())",
            "serve",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)
        url, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer k"}
        assert httpx.get(f"{url}/api/v1/studies").status_code == 401
        assert httpx.get(f"{url}/api/v1/studies", headers=auth).json() == {"data": [], "count": 0}
        assert (tmp_path / "autopeft.db").is_file()  # SQLite next to where it runs
        created = httpx.post(f"{url}/api/v1/studies", json=study_body(max_trials=2), headers=auth, timeout=60)
        assert created.status_code == 201, created.text
        with httpx.Client(base_url=url, headers=auth, timeout=60) as http:  # proposals from the proposer process
            got = claim(http, "w", created.json()["id"], patience=90)
        assert got.status_code == 200 and got.json()["source"] == "sobol"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert "autopeft server on http://127.0.0.1" in out


def test_study_show_says_which_studies_it_started_from(db_url, capsys, study_body):
    """Issue 19: `study show` names the earlier studies; `study trials` shows the warm-start source."""

    with live_server(db_url) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        args = ["--server", server.url]
        earlier = http.post("/api/v1/studies", json=study_body(name="sst2 gp", max_trials=1)).json()
        trial = claim(http, "w", earlier["id"]).json()
        assert http.post(f"/api/v1/trials/{trial['id']}/complete", json=report(trial)).status_code == 200
        warm = http.post("/api/v1/studies", json=study_body(max_trials=2, warm_start={"studies": [earlier["id"]]})).json()
        assert claim(http, "w", warm["id"]).json()["source"] == "warm_start"
        assert main(["study", "show", str(warm["id"]), *args]) == 0
        shown = capsys.readouterr().out
        assert f"warm start from study {earlier['id']} 'sst2 gp' (rte, done): 1 earlier front" in shown, shown
        assert main(["study", "trials", str(warm["id"]), *args]) == 0
        assert "warm_start" in capsys.readouterr().out


def test_show_before_any_result_and_pareto_in_one_line_summaries(db_url, capsys, study_body):
    """Issue 30: `study show` says there is no result yet (not "(trial None)"); `study pareto` and `study trials` print
    each configuration as the dashboard's one-line summary, never JSON cut at 80 characters."""
    config = {"serial_adapter": {"size": 8, "layers": [0, 1]}, "prefix": {"length": 4, "layers": [2]},
              "lora": {"rank": 4, "targets": ["query", "key", "value", "attention_output"]}}  # fmt: skip
    body = study_body(max_trials=2, baselines=[config])
    with live_server(db_url) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        args = ["--server", server.url]
        study = http.post("/api/v1/studies", json=body).json()
        assert main(["study", "show", str(study["id"]), *args]) == 0
        shown = capsys.readouterr().out
        assert "None" not in shown and "no completed trial yet, hypervolume 0.0000" in shown, shown
        trial = claim(http, "w", study["id"]).json()
        assert trial["config"] == config
        assert http.post(f"/api/v1/trials/{trial['id']}/complete", json=report(trial, 0.7)).status_code == 200
        summary = http.get(f"/api/v1/studies/{study['id']}/pareto").json()["data"][0]["summary"]
        assert summary.startswith("serial_adapter 8 @0,1 + prefix") and len(summary) > 60
        for command in ("pareto", "trials"):
            assert main(["study", command, str(study["id"]), *args]) == 0
            printed = capsys.readouterr().out
            assert summary in printed and "{" not in printed, printed
