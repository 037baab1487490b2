"""How every autopeft process reaches the database: the URL, and engines tuned for it.

The server (:mod:`autopeft.api.startup`), ``autopeft serve | db`` and Alembic's ``env.py`` all open the
database here, so that the ``alembic`` command needs nothing from the app.

SQLite (the default) runs in WAL mode with a busy timeout; a connection whose execution
options carry :data:`WRITE_OPTION` opens its transaction with ``BEGIN IMMEDIATE``, so that
two writers queue on the lock instead of failing when a read transaction tries to upgrade.
PostgreSQL is reached through psycopg 3.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from autopeft.errors import AutoPeftError

#: Execution option a connection carries when its transaction will write (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "autopeft_write"
#: The environment variable that names the database (``autopeft serve --db`` sets it for its processes).
DATABASE_URL_ENV = "AUTOPEFT_DATABASE_URL"


class DatabaseError(AutoPeftError):
    """The database URL is wrong, or the database cannot be reached or migrated."""


def default_database_url() -> str:
    """``autopeft.db`` in the current directory (SQLite)."""
    return f"sqlite:///{Path.cwd() / 'autopeft.db'}"


def configured_url() -> str:
    """``$AUTOPEFT_DATABASE_URL``, else :func:`default_database_url` (as the server's settings read it)."""
    return os.environ.get(DATABASE_URL_ENV) or default_database_url()


def normalize_url(url: str) -> str:
    """A SQLAlchemy URL: ``postgresql://`` and ``postgres://`` go through psycopg 3, a bare path is SQLite."""
    url = url.strip()
    if not url:
        raise DatabaseError("the database URL is empty")
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(
    url: str,
    *,
    pool_size: int = 20,
    max_overflow: int = 10,
    busy_timeout_ms: int = 30_000,
) -> Engine:
    """An engine for ``url`` (see :func:`normalize_url`), tuned for many short transactions."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise DatabaseError(f"cannot parse database URL {url!r}: {err}") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout_ms, pool_size, max_overflow)
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseError(f"unsupported database {parsed.get_backend_name()!r} in {url!r}: use sqlite or postgresql")
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=30,
        pool_recycle=1800,
        connect_args={"connect_timeout": 10, "application_name": "autopeft"},
    )


def _sqlite_engine(url: str, busy_timeout_ms: int, pool_size: int, max_overflow: int) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=60,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
