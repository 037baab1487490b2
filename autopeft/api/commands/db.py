"""``autopeft db upgrade | current``: the server's database schema (Alembic migrations shipped in the package)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="create or upgrade the server's database schema")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, help_text in (
        ("upgrade", "bring the schema up to date (the server also does this when it starts)"),
        ("current", "print the schema revision of the database and the newest one"),
    ):
        v = verbs.add_parser(name, help=help_text)
        v.add_argument(
            "--db", metavar="URL", default=None, help="database URL or SQLite file (default: as for `autopeft serve`)"
        )
        v.set_defaults(run=run_upgrade if name == "upgrade" else run_current, extras=("server",))


@contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Engine]:
    from autopeft.migrations.engine import configured_url, make_engine

    engine = make_engine(args.db or configured_url())
    try:
        yield engine
    finally:
        engine.dispose()


def run_upgrade(args: argparse.Namespace) -> int:
    from autopeft.migrations import upgrade

    with _engine(args) as engine:
        revision = upgrade(engine)
    print(f"{engine.url.render_as_string(hide_password=True)}: schema at revision {revision}")
    return 0


def run_current(args: argparse.Namespace) -> int:
    from autopeft.migrations import current_revision, head_revision

    with _engine(args) as engine:
        current = current_revision(engine)
    head = head_revision()
    state = "up to date" if current == head else "needs `autopeft db upgrade`"
    print(f"{engine.url.render_as_string(hide_password=True)}: revision {current or 'none'} (newest {head}; {state})")
    return 0 if current == head else 1
