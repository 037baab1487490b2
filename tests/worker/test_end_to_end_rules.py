"""The study's rules through real processes: a study whose workers all fail the same way pauses and
resumes; a trial the early-stopping rule stops ends early and is reported as stopped."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx
import pytest

from autopeft.shape import model_shape
from tests.api.conftest import counts
from tests.worker.e2e import AUTOPEFT, finish, server, study_body, trials, wait_until, worker

pytestmark = pytest.mark.slow


def test_a_study_whose_workers_all_fail_the_same_way_pauses_and_resumes(tiny_dir, env, tmp_path):
    """Every worker lacks the study's data: the study pauses after 5 failures instead of burning its budget."""
    with server(str(tmp_path / "pause.db"), env, tmp_path) as srv:
        api = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=30)
        missing = tmp_path / "glue-without-rte"  # the workers' data folder lacks the task
        missing.mkdir()
        study = api.post("/studies", json=study_body(tiny_dir, max_trials=20)).json()
        workers = [
            subprocess.Popen(
                [*AUTOPEFT, "worker", "--server", srv.url, "--device", "cpu", "--worker-id", f"p{i}", "--no-progress"]
                + ["--poll", "0.5", "--data", str(missing), "--models", str(tiny_dir), "--study", str(study["id"])],
                env={k: v for k, v in env.items() if k != "AUTOPEFT_DATA_DIR"},
                stdout=(tmp_path / f"p{i}.log").open("w"),
                stderr=subprocess.STDOUT,
            )
            for i in (1, 2)
        ]
        try:
            view = wait_until(
                lambda: (s := api.get(f"/studies/{study['id']}").json())["state"] == "paused" and s, 180, "a pause"
            )
            time.sleep(2)  # the workers keep asking, and get nothing
            after = api.get(f"/studies/{study['id']}").json()
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            finish(workers, timeout=60)
        assert view["pause_reason"].startswith("the last 5 trials failed with: TaskError:")
        assert str(missing) in view["pause_reason"]
        [group] = after["failures"]
        assert group["count"] == after["counts"]["failed"] <= 6  # a trial already running may still fail
        assert group["first_trial_number"] == 0 and group["worker_id"] in ("p1", "p2")
        assert after["counts"]["completed"] == 0 and after["n_trials"] < 20  # the budget was not burned
        logs = "".join((tmp_path / f"p{i}.log").read_text() for i in (1, 2))
        assert f"study {study['id']} is paused" in logs

        assert api.post(f"/studies/{study['id']}/resume").json()["state"] == "running"


def test_a_trial_the_rule_stops_ends_early_and_is_reported_as_stopped(tiny_dir, env, tmp_path):
    """Issue 16: a real worker reports each evaluation; the study's early-stopping rule stops its trial (a
    smaller peer scored better at the same step), training ends there with the best state, and the worker
    reports the trial as stopped: it is not re-run, and the study is done."""
    with server(str(tmp_path / "early.db"), env, tmp_path) as srv:
        api = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=30)
        training = {"max_steps": 40, "batch_size": 8, "max_length": 64, "eval_every": 4}
        rule = {"enabled": True, "grace": 0.1, "min_peers": 1, "quantile": 1.0, "margin": 0.0}
        baselines = [{"label": "peer", "config": {"bitfit": {}}}, {"label": "judged", "config": {"lora": {"rank": 8}}}]
        body = study_body(tiny_dir, max_trials=2, training=training, early_stopping=rule, baselines=baselines)
        study = api.post("/studies", json=body).json()
        peer = api.post("/trials/claim", json={"worker_id": "played-by-the-test", "study_id": study["id"]}).json()
        token = peer["lease"]["token"]  # a perfect, smaller peer (bitfit), at every evaluation step
        for step in range(4, 41, 4):
            assert api.post(f"/trials/{peer['id']}/progress", json={"lease_token": token, "step": step, "metric": 1.0})
        done = {"lease_token": token, "metric": 1.0, **counts(peer["config"], model_shape(tiny_dir))}
        assert api.post(f"/trials/{peer['id']}/complete", json=done).status_code == 200

        w = worker(srv.url, "judge", env, tmp_path, "--study", str(study["id"]), models=tiny_dir)
        finish([w], timeout=240)
        log = (tmp_path / "judge.log").read_text()
        assert w.returncode == 0, log
        judged = next(t for t in trials(api, study["id"]) if t["label"] == "judged")
        assert judged["state"] == "stopped" and judged["attempts"] == 1, (judged, log)
        assert judged["last_step"] == 4 and len(judged["curve"]) == 1, judged["curve"]
        assert judged["metric"] == judged["curve"][0][1] < 1.0  # the kept state's score, from the worker's report
        assert judged["extra"]["pruned"] is True and judged["extra"]["steps"] == 4
        assert judged["extra"]["worker_id"] == "judge"
        assert "stopped early at step 4" in log and log.count(f"trial {judged['id']} (study") == 2, log
        view = api.get(f"/studies/{study['id']}").json()
        assert view["state"] == "done" and view["counts"]["stopped"] == 1 and view["best_metric"] == 1.0
