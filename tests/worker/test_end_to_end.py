"""The loop a user runs, as real processes: `autopeft serve`, two `autopeft worker`s, a study.

CPU, a tiny random BERT with a real tokenizer, a few dozen fixture examples, a few steps
per trial. Covers: every trial runs exactly once on SQLite and PostgreSQL; a worker killed
with SIGKILL loses its trial to the other worker after the lease expires, and its stale
report is refused; the server restarted mid-study loses nothing; a worker without the API
key stops with a clear error.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from autopeft.shape import model_shape
from tests.api.conftest import counts

pytestmark = pytest.mark.slow

AUTOPEFT = [sys.executable, "-m", "autopeft"]
_spec = importlib.util.spec_from_file_location(
    "autopeft_tiny_encoder", Path(__file__).parents[1] / "train" / "tiny_encoder.py"
)
tiny_encoder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_encoder)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return tiny_encoder.build_tiny_encoder(tmp_path_factory.mktemp("e2e-tiny-bert"))


@pytest.fixture
def env(tmp_path, tmp_path_factory) -> dict[str, str]:
    return {
        **os.environ,
        "AUTOPEFT_MODEL_ROOTS": str(tmp_path_factory.getbasetemp()),  # the server reads the tiny models' configs
        "AUTOPEFT_CACHE_DIR": str(tmp_path / "cache"),
        "AUTOPEFT_SWEEP_INTERVAL_S": "0.5",
        "AUTOPEFT_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
    }


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db: str, env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.db, self.env, self.log = db, env, log
        self.port = port or _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        cmd = [*AUTOPEFT, "serve", "--db", self.db, "--port", str(self.port), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log.open("a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()  # a server that never answered is not left behind (SIGTERM takes its children along)
        raise AssertionError(f"server did not start: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)


@contextmanager
def server(db: str, env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    s = Server(db, env, tmp_path / "server.log").start()
    try:
        yield s
    finally:
        s.stop()


def worker(url: str, name: str, env: dict[str, str], tmp_path: Path, *extra: str, models: Path) -> subprocess.Popen:
    """A worker process that reads the fixture GLUE files and the models under ``models``."""
    cmd = [*AUTOPEFT, "worker", "--server", url, "--device", "cpu", "--worker-id", name, "--no-progress", "--poll", "0.5"]
    cmd += ["--data", str(tiny_encoder.FIXTURE_GLUE), "--models", str(models), *extra]
    return subprocess.Popen(cmd, env=env, stdout=(tmp_path / f"{name}.log").open("w"), stderr=subprocess.STDOUT)


def study_body(tiny_dir: Path, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "e2e",
        "task": "rte",
        "model": str(tiny_dir),
        "space": "autopeft",
        "optimizer": {"method": "sobol"},
        "max_trials": 8,
        "training": {"max_steps": 3, "batch_size": 8, "max_length": 64, "learning_rate": 0.01},
        "seed": 1,
    }
    body.update(fields)
    return body


def wait_until(predicate, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def trials(api: httpx.Client, study_id: int) -> list[dict[str, Any]]:
    return api.get(f"/studies/{study_id}/trials?limit=500").json()["data"]


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> None:
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            raise


def _db_url(backend: str, tmp_path: Path, request) -> str:
    if backend == "sqlite":
        return str(tmp_path / "e2e.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def pg_url(request) -> Iterator[str]:
    from tests.api.conftest import PG_ADMIN_URL, _pg_connect

    try:
        admin = _pg_connect(PG_ADMIN_URL)
    except Exception as err:
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {err}")
    name = f"autopeft_e2e_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        with _pg_connect(PG_ADMIN_URL) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_workers_run_every_trial_of_a_study_exactly_once(backend, tiny_dir, env, tmp_path, request):
    with server(_db_url(backend, tmp_path, request), env, tmp_path) as srv:
        api = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=30)
        body = study_body(tiny_dir, optimizer={"method": "gp", "n_initial": 4})
        study = api.post("/studies", json=body).json()
        workers = [worker(srv.url, f"w{i}", env, tmp_path, "--study", str(study["id"]), models=tiny_dir) for i in (1, 2)]
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


@pytest.mark.parametrize("kind", ["deberta-v2", "modernbert", "llama"])
def test_a_study_on_another_architecture_completes_through_the_server_and_a_worker(kind, env, tmp_path):
    """Issues 18 and 29: 4 short trials of the full space on a tiny random DeBERTa-v2 (v3 settings), ModernBERT
    or Llama (a decoder: its MLP's gate, up and down among the LoRA targets, no biases for BitFit)."""
    from autopeft.support import support_matrix

    model_dir = tiny_encoder.build_tiny_encoder(tmp_path / f"tiny-{kind}", kind=kind)
    with server(str(tmp_path / "arch.db"), env, tmp_path) as srv:
        api = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=30)
        training = {"max_steps": 3, "batch_size": 8, "max_length": 64, "learning_rate": 0.01}
        created = api.post("/studies", json=study_body(model_dir, space="full", max_trials=4, training=training))
        assert created.status_code == 201, created.text
        study = created.json()
        w = worker(srv.url, f"w-{kind}", env, tmp_path, "--study", str(study["id"]), models=model_dir)
        try:
            finish([w], timeout=600)
        finally:
            log = (tmp_path / f"w-{kind}.log").read_text()
            print(log[-4000:])  # shown by pytest when the test fails
        assert w.returncode == 0, log

        done = trials(api, study["id"])
        assert len(done) == 4 and all(t["state"] == "completed" for t in done), (done, log)
        view = api.get(f"/studies/{study['id']}").json()
        assert view["model_shape"]["model_type"] == kind and view["state"] == "done"
        refused = {f for f, reason in support_matrix()[kind].items() if reason is not None}
        assert refused and not refused & set(view["space"]["families"])
        assert all(not refused & set(t["config"]) for t in done)


def test_a_killed_workers_trial_is_taken_over_and_its_late_report_refused(tiny_dir, env, tmp_path):
    db = str(tmp_path / "kill.db")
    with server(db, env, tmp_path) as srv:
        api = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=30)
        slow = {"max_steps": 150, "batch_size": 8, "max_length": 64, "eval_every": 150}
        study = api.post("/studies", json=study_body(tiny_dir, max_trials=1, lease_seconds=3, training=slow)).json()
        victim = worker(srv.url, "victim", env, tmp_path, models=tiny_dir)
        running = wait_until(
            lambda: next((t for t in trials(api, study["id"]) if t["state"] == "running"), None), 90, "a running trial"
        )
        wait_until(lambda: "trial" in (tmp_path / "victim.log").read_text(), 30, "training to start")
        with create_engine(f"sqlite:///{db}").connect() as conn:
            stale_token = conn.execute(text("SELECT lease_token FROM trials WHERE id = :i"), {"i": running["id"]}).scalar()
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)

        fast = worker(srv.url, "rescuer", env, tmp_path, "--study", str(study["id"]), models=tiny_dir)
        finish([fast], timeout=300)
        (trial,) = trials(api, study["id"])
        assert trial["state"] == "completed" and trial["worker_id"] == "rescuer", trial
        assert trial["attempts"] == 2 and trial["expiries"] == 1

        late = {"lease_token": stale_token, "metric": 0.99, **counts(trial["config"], model_shape(tiny_dir))}
        refused = api.post(f"/trials/{trial['id']}/complete", json=late)  # a valid result, under a void lease
        assert refused.status_code == 409
        assert api.get(f"/trials/{trial['id']}").json()["metric"] == trial["metric"]


def test_a_server_restart_mid_study_loses_and_repeats_nothing(tiny_dir, env, tmp_path):
    db = str(tmp_path / "restart.db")
    srv = Server(db, env, tmp_path / "server.log").start()
    try:
        api = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=30)
        training = {"max_steps": 8, "batch_size": 8, "max_length": 64}
        study = api.post("/studies", json=study_body(tiny_dir, max_trials=6, training=training)).json()
        workers = [worker(srv.url, f"r{i}", env, tmp_path, "--study", str(study["id"]), models=tiny_dir) for i in (1, 2)]
        wait_until(lambda: sum(t["state"] == "completed" for t in trials(api, study["id"])) >= 1, 180, "a first result")
        srv.stop(signal.SIGKILL)  # the server dies; the workers keep training and retry their reports
        time.sleep(3)
        srv.start()
        finish(workers, timeout=300)
        done = trials(api, study["id"])
        assert len(done) == 6 and all(t["state"] == "completed" for t in done), done
        assert all(t["attempts"] == 1 for t in done)
        logs = "".join((tmp_path / f"r{i}.log").read_text() for i in (1, 2))
        assert sum(logs.count(f"trial {t['id']} (study") for t in done) == 2 * 6
    finally:
        srv.stop()


def test_a_worker_without_the_api_key_exits_with_a_clear_error(env, tmp_path, capsys, monkeypatch):
    from autopeft.cli import main

    keyed = {**env, "AUTOPEFT_API_KEY": "the-key"}
    with server(str(tmp_path / "auth.db"), keyed, tmp_path) as srv:
        no_key = {k: v for k, v in env.items() if k != "AUTOPEFT_API_KEY"}
        result = subprocess.run(
            [*AUTOPEFT, "worker", "--server", srv.url, "--device", "cpu"],
            env=no_key,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2
        assert "refused the API key" in result.stderr and "Traceback" not in result.stderr
        monkeypatch.delenv("AUTOPEFT_API_KEY", raising=False)
        code = main(["worker", "--server", srv.url, "--device", "cpu", "--api-key", "wrong", "--no-progress"])
        assert code == 2 and "refused the API key" in capsys.readouterr().err


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


def test_a_result_retried_after_an_outage_longer_than_the_lease_is_kept(tiny_dir, env, tmp_path):
    """Issue 13, item 3: the server dies mid-trial; the worker finishes and retries its report with
    backoff; the restarted server requeues the expired lease (after a grace period of one lease)
    before the retry arrives, and still keeps the result: a report under the expired lease lands
    while nobody else has claimed the trial. Before the fix it was refused and the trial trained again."""
    import re

    db = str(tmp_path / "outage.db")
    srv = Server(db, env, tmp_path / "server.log").start()
    log = tmp_path / "cut-off.log"
    w = None
    try:
        api = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=30)
        training = {"max_steps": 300, "batch_size": 8, "max_length": 64, "eval_every": 300}
        body = study_body(tiny_dir, max_trials=1, lease_seconds=2, max_retries=1, training=training)
        study = api.post("/studies", json=body).json()
        w = worker(srv.url, "cut-off", env, tmp_path, "--study", str(study["id"]), models=tiny_dir)
        started = wait_until(lambda: re.search(r"trial (\d+) \(study", log.read_text()), 120, "training to start")
        trial_id = int(started.group(1))
        srv.stop(signal.SIGKILL)
        retrying = f"retrying POST /api/v1/trials/{trial_id}/complete"
        wait_until(lambda: retrying in log.read_text(), 240, "the finished trial's report to be retried")
        w.send_signal(signal.SIGSTOP)  # its next retry comes only once the restarted server has swept
        try:
            srv.start()
            requeued = lambda: api.get(f"/trials/{trial_id}").json()["state"] == "queued"
            wait_until(requeued, 60, "the restarted server to requeue the expired lease")
        finally:
            w.send_signal(signal.SIGCONT)
        finish([w], timeout=240)
        text = log.read_text()
        assert w.returncode == 0, text
        (trial,) = trials(api, study["id"])
        assert trial["state"] == "completed" and trial["attempts"] == 1, (trial, text)
        assert trial["extra"]["worker_id"] == "cut-off"
        assert "report refused" not in text and text.count(f"trial {trial_id} (study") == 2, text
    finally:
        if w is not None and w.poll() is None:
            w.kill()
            w.wait(10)
        srv.stop()


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
