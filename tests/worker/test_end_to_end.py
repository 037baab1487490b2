"""The loop a user runs, as real processes: `autopeft serve`, two `autopeft worker`s, a study.

CPU, a tiny random BERT with a real tokenizer, a few dozen fixture examples, a few steps per trial. Every trial
runs exactly once on SQLite and PostgreSQL, with gp and with tpe; a worker without the API key stops with a clear
error. The other end-to-end files (split so that pytest-xdist spreads them over its workers): other
architectures, faults (a killed worker, a restarted server, an outage), and the rules that pause or stop."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.conftest import FAST_GP
from tests.worker.e2e import AUTOPEFT, db_url, finish, server, study_body, trials, worker

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_workers_run_every_trial_of_a_study_exactly_once(backend, tiny_dir, env, tmp_path, request):
    with server(db_url(backend, tmp_path, request), env, tmp_path) as srv:
        api = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=30)
        body = study_body(tiny_dir, optimizer={"method": "gp", "n_initial": 4, **FAST_GP})
        study = api.post("/studies", json=body).json()
        workers = [
            worker(srv.url, f"w{i}", env, tmp_path, "--study", str(study["id"]), models=tiny_dir) for i in (1, 2)
        ]
        finish(workers, timeout=240)
        assert [w.returncode for w in workers] == [0, 0], [(tmp_path / f"w{i}.log").read_text() for i in (1, 2)]

        done = trials(api, study["id"])
        assert len(done) == 8 and all(t["state"] == "completed" for t in done), done
        assert all(t["attempts"] == 1 for t in done)  # nobody ran a trial twice
        logs = "".join((tmp_path / f"w{i}.log").read_text() for i in (1, 2))
        for t in done:  # each trial was trained once: one line when claimed, one with its result
            assert logs.count(f"trial {t['id']} (study") == 2, logs
        assert len({t["config"].__repr__() for t in done}) == 8
        sources = [t["source"] for t in sorted(done, key=lambda t: t["number"])]
        assert sources[:4] == ["sobol"] * 4 and "gp" in sources, sources  # the design, then the model
        pareto = api.get(f"/studies/{study['id']}/pareto").json()
        assert pareto["count"] >= 1 and pareto["hypervolume"] > 0
        assert api.get(f"/studies/{study['id']}").json()["state"] == "done"


def test_a_tpe_study_runs_end_to_end(tiny_dir, env, tmp_path):
    """Issue 32: ``"method": "tpe"`` chosen by a user: the Sobol design, then Optuna's TPE, every trial once."""
    with server(str(tmp_path / "tpe.db"), env, tmp_path) as srv:
        api = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=30)
        created = api.post("/studies", json=study_body(tiny_dir, optimizer={"method": "tpe", "n_initial": 4}))
        assert created.status_code == 201, created.text
        study = created.json()
        assert study["optimizer"]["method"] == "tpe"
        workers = [
            worker(srv.url, f"w{i}", env, tmp_path, "--study", str(study["id"]), models=tiny_dir) for i in (1, 2)
        ]
        finish(workers, timeout=240)
        assert [w.returncode for w in workers] == [0, 0], [(tmp_path / f"w{i}.log").read_text() for i in (1, 2)]

        done = sorted(trials(api, study["id"]), key=lambda t: t["number"])
        assert len(done) == 8 and all(t["state"] == "completed" and t["attempts"] == 1 for t in done), done
        assert len({repr(t["config"]) for t in done}) == 8  # never a configuration twice
        sources = [t["source"] for t in done]
        # the design, then TPE (a proposal made before 4 results is still the design's)
        assert sources[:4] == ["sobol"] * 4 and set(sources) == {"sobol", "tpe"}, sources
        assert api.get(f"/studies/{study['id']}").json()["state"] == "done"
        assert api.get(f"/studies/{study['id']}/pareto").json()["hypervolume"] > 0


def test_a_worker_without_the_api_key_exits_with_a_clear_error(env, tmp_path, capsys, monkeypatch):
    from autopeft.cli import main

    keyed = {**env, "AUTOPEFT_API_KEY": "the-key"}
    with server(str(tmp_path / "auth.db"), keyed, tmp_path) as srv:
        no_key = {k: v for k, v in env.items() if k != "AUTOPEFT_API_KEY"}
        result = subprocess.run(
            [*AUTOPEFT, "worker", "--server", srv.url, "--device", "cpu", "--skip-check"],  # (checked elsewhere)
            env=no_key,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2
        assert "refused the API key" in result.stderr and "Traceback" not in result.stderr
        monkeypatch.delenv("AUTOPEFT_API_KEY", raising=False)
        code = main(
            ["worker", "--server", srv.url, "--device", "cpu", "--api-key", "wrong", "--no-progress", "--skip-check"]
        )
        assert code == 2 and "refused the API key" in capsys.readouterr().err
