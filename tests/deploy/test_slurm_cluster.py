"""Workers through a real Slurm: a one-node cluster (munged, slurmctld, slurmd) started here.

A local ``autopeft serve`` (SQLite, with an API key) and tiny random BERT studies on the fixture
GLUE files. ``autopeft launch slurm`` submits two CPU workers that complete a 4-trial study and
end with it; the template deploy/slurm/autopeft-worker.sbatch, given to sbatch by hand, starts two
more on a second study, and ``scancel`` makes them give their running trials back (the workers'
SIGTERM path). The scripts ``--dry-run`` prints pass ``sbatch --test-only``. Every daemon, job
step and worker the cluster started is gone at the end (checked in the cluster fixture's teardown).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.worker import e2e  # its Server, study body and waits

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parents[1] / "deploy" / "slurm" / "autopeft-worker.sbatch"
AUTOPEFT = [sys.executable, "-m", "autopeft"]
API_KEY = "slurm-test-key"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slurm_cluster = _load("autopeft_slurm_cluster", HERE / "slurm_cluster.py")
FIXTURE_GLUE = e2e.tiny_encoder.FIXTURE_GLUE


@pytest.fixture(scope="module")
def cluster() -> Iterator:
    if os.geteuid() != 0:
        pytest.skip("the one-node Slurm cluster needs root (slurmd starts job steps as their user)")
    missing = slurm_cluster.missing_programs()
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge")
    c = slurm_cluster.SlurmCluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()
        left = c.leftovers()
        logs = c.logs()
        c.remove()
        assert not left, f"processes of the Slurm cluster still running after stop: {left}\n{logs}"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return e2e.tiny_encoder.build_tiny_encoder(tmp_path_factory.mktemp("slurm-tiny-bert"))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator:
    tmp = tmp_path_factory.mktemp("slurm-server")
    env = {**os.environ, "AUTOPEFT_API_KEY": API_KEY, "AUTOPEFT_LOG_LEVEL": "WARNING", "OMP_NUM_THREADS": "1"}
    env["AUTOPEFT_MODEL_ROOTS"] = str(tmp_path_factory.getbasetemp())  # the server reads the tiny model's config
    srv = e2e.Server(str(tmp / "slurm.db"), env, tmp / "server.log").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def api(server) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def job_env(cluster, tmp_path) -> dict[str, str]:
    """What sbatch is called with: the cluster, the key, this Python's environment (the job inherits it)."""
    return {
        **cluster.env,
        "AUTOPEFT_API_KEY": API_KEY,
        "AUTOPEFT_CACHE_DIR": str(tmp_path / "cache"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def launch(job_env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*AUTOPEFT, "launch", "slurm", *args],
        env=job_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def create_study(api: httpx.Client, tiny_dir: Path, **fields) -> int:
    created = api.post("/studies", json=e2e.study_body(tiny_dir, **fields))
    assert created.status_code == 201, created.text
    return created.json()["id"]


def worker_logs(tmp_path: Path, job_id: str) -> str:
    return "".join(p.read_text() for p in sorted(tmp_path.glob(f"autopeft-worker-{job_id}_*.log")))


def test_slurm_dry_run_scripts_and_the_template_pass_sbatch_test_only(cluster, tmp_path):
    """sbatch --test-only schedules without running: the directives are valid and fit the cluster."""
    base = ["--server", "http://127.0.0.1:8000", "--workers", "2", "--partition", "debug", "--time", "00:30:00"]
    cases = {
        "gpu": [],
        "cpu": ["--gpus-per-worker", "0"],
        "shared-gpu": ["--gpus-per-worker", "0", "--device", "cuda", "--", "--gres=shard:1"],
        "extra": ["--", "--cpus-per-task=1", "--comment", "a b"],
    }
    for name, extra in cases.items():
        printed = launch(cluster.env, tmp_path, *base, "--dry-run", *extra)
        assert printed.returncode == 0, printed.stderr
        script = tmp_path / f"{name}.sbatch"
        script.write_text(printed.stdout)
        tested = cluster.run("sbatch", "--test-only", str(script), check=False, cwd=tmp_path)
        assert tested.returncode == 0 and "to start at" in tested.stderr, (name, tested.stderr)
    tested = cluster.run("sbatch", "--test-only", str(TEMPLATE), check=False, cwd=tmp_path)
    assert tested.returncode == 0 and "to start at" in tested.stderr, tested.stderr

    # The check can fail: a script asking for more GPUs than the node has is refused.
    printed = launch(cluster.env, tmp_path, *base, "--dry-run", "--", "--gres=gpu:3")
    (tmp_path / "too-many.sbatch").write_text(printed.stdout)
    refused = cluster.run("sbatch", "--test-only", str(tmp_path / "too-many.sbatch"), check=False, cwd=tmp_path)
    assert refused.returncode != 0, refused.stderr
    assert not cluster.jobs()


def test_slurm_job_array_of_two_workers_completes_a_study_and_ends(cluster, server, api, tiny_dir, job_env, tmp_path):
    training = {"max_steps": 12, "batch_size": 8, "max_length": 64, "learning_rate": 0.01}
    study = create_study(api, tiny_dir, max_trials=4, training=training)
    args = ["--server", server.url, "--workers", "2", "--gpus-per-worker", "0", "--data", str(FIXTURE_GLUE)]
    launched = launch(job_env, tmp_path, *args, "--models", str(tiny_dir), "--study", str(study))
    assert launched.returncode == 0, launched.stderr
    job_id = launched.stdout.strip()
    assert job_id.isdigit() and f"job array {job_id}" in launched.stderr

    try:
        cluster.wait_until_no_jobs(timeout=420)
    finally:
        print(worker_logs(tmp_path, job_id)[-6000:])  # shown when the test fails
    tasks = cluster.job_records(job_id)
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1"]
    assert all(t["JobState"] == "COMPLETED" and t["ExitCode"] == "0:0" for t in tasks), tasks

    done = e2e.trials(api, study)
    assert len(done) == 4 and all(t["state"] == "completed" and t["attempts"] == 1 for t in done), done
    workers = {f"slurm-{job_id}_0", f"slurm-{job_id}_1"}
    assert {t["extra"]["worker_id"] for t in done} <= workers
    logs = worker_logs(tmp_path, job_id)
    for name in workers:  # each array task ran a worker on the CPU, bound to the study, and ended with it
        assert f"worker {name} on cpu, server {server.url}" in logs, logs
    assert logs.count(f"study {study}: study done") == 2, logs
    assert api.get(f"/studies/{study}").json()["state"] == "done"


def test_slurm_scancel_makes_the_template_workers_give_their_trials_back(
    cluster, server, api, tiny_dir, job_env, tmp_path
):
    long = {"max_steps": 100000, "eval_every": 100000, "batch_size": 8, "max_length": 64}
    study = create_study(api, tiny_dir, max_trials=2, lease_seconds=600, training=long)
    env = {**job_env, "AUTOPEFT_SERVER": server.url, "AUTOPEFT_STUDY": str(study), "AUTOPEFT_DEVICE": "cpu"}
    env |= {"AUTOPEFT_DATA_DIR": str(FIXTURE_GLUE), "AUTOPEFT_MODELS": str(tiny_dir)}
    submitted = cluster.run("sbatch", "--parsable", "--array=0-1", str(TEMPLATE), env=env, cwd=tmp_path)
    job_id = submitted.stdout.strip().split(";")[0]

    def both_training() -> bool:
        running = [t for t in e2e.trials(api, study) if t["state"] == "running"]
        logs = worker_logs(tmp_path, job_id)
        return len(running) == 2 and all(f"trial {t['id']} (study {study}" in logs for t in running)

    try:
        e2e.wait_until(both_training, 300, "both array tasks to train a trial")
        tasks = cluster.job_records(job_id)  # each task was given its own (stand-in) GPU
        assert sorted(t["GRES"] for t in tasks) == ["gpu:1(IDX:0)", "gpu:1(IDX:1)"], tasks
        workers = _worker_processes(f"slurm-{job_id}_")
        assert {re.search(r"--worker-id (\S+)", cmdline)[1] for cmdline, _ in workers} == {
            f"slurm-{job_id}_0",
            f"slurm-{job_id}_1",
        }
        for cmdline, environ in workers:  # the key travels in the environment, not on a command line
            assert API_KEY not in cmdline and f"AUTOPEFT_API_KEY={API_KEY}" in environ
        script = cluster.run("scontrol", "write", "batch_script", job_id, "-").stdout
        assert "exec python3 -m autopeft" in script and API_KEY not in script

        cluster.run("scancel", job_id)
        cluster.wait_until_no_jobs(timeout=90)
    finally:
        print(worker_logs(tmp_path, job_id)[-6000:])
    logs = worker_logs(tmp_path, job_id)
    assert logs.count("received SIGTERM: giving the running trial back and stopping") == 2, logs
    given_back = e2e.trials(api, study)
    assert [t["state"] for t in given_back] == ["queued", "queued"], given_back
    assert all(t["expiries"] == 0 and t["worker_id"] is None for t in given_back)  # released, not expired
    for t in given_back:
        assert f"trial {t['id']}: given back to the queue" in logs
    assert {t["JobState"] for t in cluster.job_records(job_id)} == {"CANCELLED"}
    assert api.post(f"/studies/{study}/stop").status_code == 200


def _worker_processes(marker: str) -> list[tuple[str, str]]:
    """Command line and environment of each running process whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if entry.name.isdigit() and marker in cmdline and "autopeft" in cmdline:
                found.append((cmdline, (entry / "environ").read_bytes().replace(b"\0", b"\n").decode()))
        except OSError:
            continue
    return found
