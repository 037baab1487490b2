"""Migrations build the schema from empty on both backends, and agree with the models."""

from __future__ import annotations

import os
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import migrations
from autopeft.cli import main as cli_main
from migrations.tables import Base

TABLES = {"studies", "trials", "workers", "proposal_locks", "alembic_version"}


def test_upgrade_from_empty_creates_every_table(engine):
    assert migrations.current_revision(engine) is None
    assert migrations.upgrade(engine) == migrations.head_revision()
    assert TABLES <= set(inspect(engine).get_table_names())
    assert migrations.upgrade(engine) == migrations.head_revision()  # a second upgrade is a no-op


def test_models_and_migrations_agree(engine):
    migrations.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_downgrade_to_base_and_up_again(engine):
    from alembic import command

    migrations.upgrade(engine)
    cfg = migrations.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert migrations.upgrade(engine) == migrations.head_revision()


def test_db_upgrade_command(db_url, engine, capsys):
    assert cli_main(["db", "upgrade", "--db", db_url]) == 0
    assert "schema at revision" in capsys.readouterr().out
    assert migrations.current_revision(engine) == migrations.head_revision()
    assert cli_main(["db", "current", "--db", db_url]) == 0
    assert "up to date" in capsys.readouterr().out


def test_alembic_command_finds_the_installed_scripts(db_url, engine, tmp_path):
    """`alembic -c <package>/alembic.ini upgrade head` from any directory, URL from the environment."""
    env = {**os.environ, "AUTOPEFT_DATABASE_URL": db_url}
    ini = migrations.SCRIPT_DIR / "alembic.ini"
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert migrations.current_revision(engine) == migrations.head_revision()
