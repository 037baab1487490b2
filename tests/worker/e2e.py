"""What the end-to-end tests share: `autopeft serve` and `autopeft worker` as real processes, a study body on
the tiny random BERT, and waits. Its fixtures (``tiny_dir``, ``env``, ``pg_url``) reach
this folder's tests through its conftest; a test elsewhere imports them."""

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

AUTOPEFT = [sys.executable, "-m", "autopeft"]
_spec = importlib.util.spec_from_file_location(
    "autopeft_tiny_encoder", Path(__file__).parents[1] / "train" / "tiny_encoder.py"
)
tiny_encoder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_encoder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db: str, env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.db, self.env, self.log = db, env, log
        self.port = port or free_port()
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
    cmd = [
        *AUTOPEFT,
        "worker",
        "--server",
        url,
        "--device",
        "cpu",
        "--worker-id",
        name,
        "--no-progress",
        "--poll",
        "0.5",
    ]
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


def db_url(backend: str, tmp_path: Path, request) -> str:
    if backend == "sqlite":
        return str(tmp_path / "e2e.db")
    return request.getfixturevalue("pg_url")


# -- fixtures ---------------------------------------------------------------------------------------------------


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
