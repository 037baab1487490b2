"""Fixtures of the server tests: one suite, run on SQLite and on PostgreSQL.

PostgreSQL: a fresh database ``autopeft_test_<random>`` per test session on the server
at ``AUTOPEFT_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
dropped at the end; its schema is reset before each test. Tests skip (with the reason)
when that server cannot be reached.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import pytest

# Import transformers here, before any app starts: the app warms it up in a thread, and
# transformers' lazy module is not safe to import from two threads at once.
import transformers  # noqa: F401
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, select, text
from transformers import BertConfig  # noqa: F401

from autopeft.api.main import create_app
from autopeft.api.settings import Settings
from autopeft.migrations.engine import make_engine

PG_ADMIN_URL = os.environ.get("AUTOPEFT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_connect(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL database made for this test session (skips if there is no server)."""
    try:
        admin = _pg_connect(PG_ADMIN_URL)
    except Exception as err:  # noqa: BLE001 - any failure to connect means: no PostgreSQL here
        pytest.skip(
            f"PostgreSQL unreachable at {PG_ADMIN_URL} ({type(err).__name__}: {err}); set AUTOPEFT_TEST_POSTGRES_URL"
        )
    name = f"autopeft_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_connect(PG_ADMIN_URL) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])])
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request) -> str:
    """An empty database of the backend under test."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'autopeft.db'}"
    url = request.getfixturevalue("pg_url")
    with _pg_connect(url) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def test_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "log_level": "WARNING",
        "access_log": False,
        "claim_wait_s": 3.0,
        "proposer_tick_s": 0.1,
        "sweep_interval_s": 0.2,
        "pool_size": 8,
        "max_overflow": 40,
        "allowed_hosts": ["testserver"],  # the Host that TestClient sends
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_client(db_url: str) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**settings)``: a started app on the test database, behind a TestClient."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(test_settings(db_url, **overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture(scope="session")
def tiny_hf_config() -> dict[str, Any]:
    """The config.json of a 3-layer, hidden-32 BERT (no weights anywhere)."""
    from tests.conftest import tiny_config

    return tiny_config("bert").to_dict()


@pytest.fixture
def study_body(tiny_hf_config) -> Callable[..., dict[str, Any]]:
    """``study_body(**fields)``: a small valid study whose model only the workers can read."""

    def make(**fields: Any) -> dict[str, Any]:
        body = {
            "name": "test study",
            "task": "rte",
            "model": "/models/on/the/workers/tiny-bert",
            "model_config": tiny_hf_config,
            "space": "autopeft",
            "optimizer": {"method": "sobol"},
            "max_trials": 6,
            "training": {"max_steps": 2, "batch_size": 4},
            "seed": 7,
        }
        body.update(fields)
        return body

    return make


@functools.lru_cache(maxsize=1)
def tiny_shape():
    """Shape of the ``study_body`` model: a result must carry what a configuration trains on it."""
    from autopeft.api.study_spec import shape_from_hf_config
    from tests.conftest import tiny_config

    return shape_from_hf_config(tiny_config("bert").to_dict(), 2)


def tiny_backbone() -> int:
    return tiny_shape().backbone_params


def counts(config: dict[str, Any], shape: Any = None) -> dict[str, Any]:
    """``peft_params`` and ``param_fraction`` of ``config`` on the ``study_body`` model (or ``shape``): what the
    server checks a report against."""
    from autopeft.accounting import estimate

    count = estimate(config, shape or tiny_shape())
    return {"peft_params": count.peft_params, "param_fraction": count.param_fraction}


def report(
    trial: dict[str, Any], metric: float = 0.6, *, token: str | None = None, shape: Any = None, **extra: Any
) -> dict[str, Any]:
    """A truthful result for a claimed ``trial`` (its assignment: config and lease), under its lease token
    or ``token``; ``shape``: the study's model when it is not the ``study_body`` one."""
    body = {"lease_token": token or trial["lease"]["token"], "metric": metric, **counts(trial["config"], shape)}
    return {**body, **extra}


def claim(client: Any, worker: str = "w1", study_id: int | None = None, patience: float = 30.0, **kw: Any):
    """Claim as a worker does: while the answer is 204 'proposing', ask again (bounded by ``patience``)."""
    body: dict[str, Any] = {"worker_id": worker}
    if study_id is not None:
        body["study_id"] = study_id
    deadline = time.monotonic() + patience
    while True:
        r = client.post("/api/v1/trials/claim", json=body, **kw)
        if r.status_code != 204 or r.headers.get("x-autopeft-idle") != "proposing" or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


_reflected: dict[int, MetaData] = {}


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every table, to check that a refused request changed nothing."""
    meta = _reflected.get(id(engine))
    if meta is None:
        meta = _reflected[id(engine)] = MetaData()
        meta.reflect(engine)
    with engine.connect() as conn:
        return {
            name: sorted(tuple(map(repr, row)) for row in conn.execute(select(table)))
            for name, table in meta.tables.items()
        }


class LiveServer:
    """A real uvicorn server for an app, in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app: FastAPI) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


@contextmanager
def live_server(db_url: str, **overrides: Any) -> Iterator[LiveServer]:
    with LiveServer(create_app(test_settings(db_url, **overrides))) as server:
        yield server


def count_rows(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())
