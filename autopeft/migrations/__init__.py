"""Alembic migrations of the autopeft server's database, shipped inside the package.

The script location is this package's directory, found from the installed package and
not from the working directory, so ``autopeft db upgrade`` and the server's start-up
upgrade work from anywhere. ``alembic -c <this dir>/alembic.ini ...`` works too
(the URL then comes from ``AUTOPEFT_DATABASE_URL``).

Nothing here imports the app (:mod:`autopeft.api`): the tables are :mod:`autopeft.migrations.tables` and
engines :mod:`autopeft.migrations.engine`. Alembic is imported when a function needs it, so that
opening an engine stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from autopeft.migrations.engine import WRITE_OPTION, DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_DIR = Path(__file__).resolve().parent
#: Key of the PostgreSQL advisory lock that serialises concurrent upgrades (several server processes).
UPGRADE_LOCK_KEY = 0x6175_746F_7065_66  # "autopef"


def alembic_config() -> Config:
    """An Alembic config pointing at this package (no .ini file needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_DIR))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/versions holds no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision`` in one transaction that holds out concurrent upgraders
    (:func:`upgrade_transaction`). Returns the revision afterwards."""
    from alembic import command

    try:
        with upgrade_transaction(engine) as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return current_revision(engine)
    except OperationalError as err:
        url = engine.url.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot migrate the database {url}: {str(err.orig or err).strip()}") from None


@contextmanager
def upgrade_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds out concurrent upgraders until it ends (several server processes start at
    once): PostgreSQL an advisory transaction lock, SQLite the write lock (``BEGIN IMMEDIATE``)."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": UPGRADE_LOCK_KEY})
            yield conn
