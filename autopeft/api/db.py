"""The one transaction scope every storage call goes through.

Engines come from :mod:`autopeft.migrations.engine` (shared with the ``alembic`` command).
:func:`transaction` commits or rolls back and turns database errors into :mod:`autopeft.api.errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from autopeft.api.errors import ConflictError, StorageError, StorageUnavailableError
from autopeft.migrations.engine import WRITE_OPTION

log = logging.getLogger("autopeft.api.db")


@contextmanager
def transaction(engine: Engine, *, write: bool = False) -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back when it raises.

    ``write=True`` takes SQLite's write lock at the start. Database errors leave as
    :class:`~autopeft.api.errors.ConflictError` (a constraint), :class:`~autopeft.api.errors.StorageUnavailableError`
    (connection, lock timeout) or :class:`~autopeft.api.errors.StorageError`.
    """
    try:
        with engine.connect() as conn:
            if write:
                conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn
    except IntegrityError as err:
        raise ConflictError(f"the change conflicts with stored data: {_first_line(err)}") from err
    except OperationalError as err:
        log.warning("database unavailable: %s", _first_line(err))
        raise StorageUnavailableError(f"the database is unavailable: {_first_line(err)}") from err
    except (DBAPIError, SQLAlchemyError) as err:
        log.error("database error: %s", _first_line(err))
        raise StorageError(f"database error: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
