"""Alembic environment: runs on the connection the caller hands over (:func:`autopeft.migrations.upgrade`),
or, when the ``alembic`` command runs it, on ``sqlalchemy.url`` / ``AUTOPEFT_DATABASE_URL``.

It imports nothing of the app (:mod:`autopeft.api`): the tables are :mod:`autopeft.migrations.tables`."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from autopeft.migrations.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_standalone() -> None:
    """The ``alembic`` command: our own engine, one transaction, the same upgrade lock as the server."""
    from autopeft.migrations import upgrade_transaction
    from autopeft.migrations.engine import configured_url, make_engine

    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    engine = make_engine(config.get_main_option("sqlalchemy.url") or configured_url())
    try:
        with upgrade_transaction(engine) as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    _run_standalone()
