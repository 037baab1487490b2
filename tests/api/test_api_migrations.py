"""Migrations build the schema from empty on both backends, and agree with the models."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from autopeft import migrations
from autopeft.cli import main as cli_main
from autopeft.migrations.tables import Base

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


def _at_0003_with_a_trial(engine) -> None:
    """A database at revision 0003 holding one study with a completed trial."""
    from datetime import UTC, datetime

    from sqlalchemy import MetaData, insert

    migrations.upgrade(engine, "0003")
    meta = MetaData()
    meta.reflect(engine)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    study = {
        "name": "old", "task": {"name": "rte"}, "model": None, "hf_config": {}, "num_labels": 2,
        "space_name": "autopeft", "space": {}, "optimizer": {}, "training": {}, "seed": 0, "max_trials": 5,
        "max_retries": 2, "lease_seconds": 60.0, "n_trials": 1, "created_at": now,
    }  # fmt: skip
    trial = {
        "study_id": 1, "number": 0, "config": {}, "config_key": "k0", "source": "sobol", "state": "completed",
        "attempts": 1, "expiries": 0, "created_at": now, "metric": 0.7, "param_fraction": 0.01, "peft_params": 10,
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(meta.tables["studies"]).values(id=1, **study))
        conn.execute(insert(meta.tables["trials"]).values(id=1, **trial))


def _insert_trial(engine, trial_id: int, state: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trials (id, study_id, number, config, config_key, source, state, attempts, expiries, "
                "created_at) VALUES (:id, 1, :id, '{}', :key, 'sobol', :state, 1, 0, CURRENT_TIMESTAMP)"
            ),
            {"id": trial_id, "key": f"k{trial_id}", "state": state},
        )


def test_0004_adds_the_curve_and_the_stopped_state_keeping_data(engine):
    """Issue 16: from 0003 with data, to head (stopped allowed, curve and early_stopping added), and back."""
    from alembic import command

    _at_0003_with_a_trial(engine)
    with pytest.raises(IntegrityError):
        _insert_trial(engine, 9, "stopped")  # 0003 refuses the state
    assert migrations.upgrade(engine) == migrations.head_revision()
    columns = {c["name"] for c in inspect(engine).get_columns("trials")}
    assert "curve" in columns and "early_stopping" in {c["name"] for c in inspect(engine).get_columns("studies")}
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT state, metric, curve FROM trials WHERE id = 1")).one()
    assert tuple(kept) == ("completed", 0.7, None)
    _insert_trial(engine, 2, "stopped")
    with pytest.raises(IntegrityError):
        _insert_trial(engine, 3, "bogus")  # the check constraint is still there
    with engine.begin() as conn:
        conn.execute(text("UPDATE trials SET curve = :c WHERE id = 2"), {"c": "[[10, 0.5], [20, 0.55]]"})

    cfg = migrations.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, state, error FROM trials ORDER BY id")).all()
    assert [(i, s) for i, s, _ in rows] == [(1, "completed"), (2, "failed")]  # no state the old schema refuses
    assert "stopped early" in rows[1][2]
    assert "curve" not in {c["name"] for c in inspect(engine).get_columns("trials")}
    with pytest.raises(IntegrityError):
        _insert_trial(engine, 4, "stopped")


def test_downgrades_keep_the_trials(engine):
    """Going back revision by revision keeps every trial (on SQLite, recreating ``studies`` would
    cascade its deletion to the trials)."""
    from alembic import command

    _at_0003_with_a_trial(engine)
    cfg = migrations.alembic_config()
    for target in ("0002", "0001"):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, target)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id, state FROM trials")).all() == [(1, "completed")], target


def test_0005_adds_the_warm_start_of_a_study_keeping_data(engine):
    """Issue 19: from 0004 with a study and a trial, to head (``studies.warm_start``), and back to 0004."""
    from alembic import command

    _at_0003_with_a_trial(engine)
    migrations.upgrade(engine, "0004")
    assert "warm_start" not in {c["name"] for c in inspect(engine).get_columns("studies")}
    assert migrations.upgrade(engine) == migrations.head_revision()
    assert "warm_start" in {c["name"] for c in inspect(engine).get_columns("studies")}
    with engine.begin() as conn:
        assert conn.execute(text("SELECT warm_start FROM studies WHERE id = 1")).scalar() is None
        conn.execute(text("UPDATE studies SET warm_start = :w WHERE id = 1"), {"w": '{"studies": [7]}'})
    _insert_trial(engine, 2, "queued")
    cfg = migrations.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    assert "warm_start" not in {c["name"] for c in inspect(engine).get_columns("studies")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, state FROM trials ORDER BY id")).all() == [(1, "completed"), (2, "queued")]
        assert conn.execute(text("SELECT name FROM studies")).all() == [("old",)]
    assert migrations.upgrade(engine) == migrations.head_revision()


#: An optimizer object as servers before migration 0006 stored it: every method's field, defaults included,
#: and the study's budget copied in as ``constraints``.
OLD_OPTIMIZER = {
    "method": "gp", "n_initial": None, "reference": None, "constraints": None, "outcome_transform": "copula",
    "kernel": "rbf+additive", "fit_points": 256, "nehvi": "cached", "mc_samples": 64, "raw_samples": 256,
    "num_restarts": 3, "local_search_steps": 5, "max_baseline": 96, "warm_start": True, "refit_growth": 0.1,
    "lazy_refit_from": 100, "threads": 1, "saas_warmup": 24, "saas_samples": 24, "saas_thinning": 3,
    "saas_max_tree_depth": 4,
}  # fmt: skip


def test_0006_gives_the_budget_its_own_column_and_each_method_its_own_fields(engine):
    """Issue 28: studies stored with the flat optimizer object (and their budget inside it) load after the
    upgrade as their method's settings and a budget of their own; the downgrade gives the old form back."""
    import json

    from alembic import command

    from autopeft.api.storage import Storage
    from autopeft.optimize import GpSettings, SaasSettings, SobolSettings

    _at_0003_with_a_trial(engine)
    migrations.upgrade(engine, "0005")
    budget = {"max_param_fraction": 0.005, "min_param_fraction": None}
    stored = {
        1: {**OLD_OPTIMIZER, "constraints": budget, "warm_start": False, "n_initial": 6},
        2: {**OLD_OPTIMIZER, "method": "saas", "saas_warmup": 32},
        3: {**OLD_OPTIMIZER, "method": "sobol", "kernel": "rbf"},
    }
    with engine.begin() as conn:
        for study_id in (2, 3):
            conn.execute(text(
                "INSERT INTO studies (id, name, task, model, hf_config, num_labels, space_name, space, optimizer, "
                "training, seed, max_trials, max_retries, lease_seconds, n_trials, created_at) SELECT :id, name, "
                "task, model, hf_config, num_labels, space_name, space, optimizer, training, seed, max_trials, "
                "max_retries, lease_seconds, 0, created_at FROM studies WHERE id = 1"
            ), {"id": study_id})  # fmt: skip
        for study_id, optimizer in stored.items():
            conn.execute(
                text("UPDATE studies SET optimizer = :o WHERE id = :id"), {"o": json.dumps(optimizer), "id": study_id}
            )
    assert migrations.upgrade(engine) == migrations.head_revision()

    got = {s.id: s for s in Storage(engine).list_studies()}
    assert got[1].optimizer == GpSettings(reuse_hyperparameters=False, n_initial=6)
    assert got[1].constraints is not None and got[1].constraints.max_param_fraction == 0.005
    assert got[2].optimizer == SaasSettings(saas_warmup=32) and got[2].constraints is None
    assert got[3].optimizer == SobolSettings() and got[3].constraints is None
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, state FROM trials")).all() == [(1, "completed")]

    cfg = migrations.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    assert "constraints" not in {c["name"] for c in inspect(engine).get_columns("studies")}
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, optimizer FROM studies ORDER BY id")).all())
    old = {i: json.loads(o) if isinstance(o, str) else o for i, o in rows.items()}
    assert old[1]["constraints"] == budget and old[1]["warm_start"] is False and old[1]["n_initial"] == 6
    assert "reuse_hyperparameters" not in old[1] and "constraints" not in old[2]
    assert old[2]["saas_warmup"] == 32 and old[3] == {"method": "sobol", "n_initial": None}
    assert set(old[1]) <= set(OLD_OPTIMIZER), "the older server refuses fields it does not know"
    assert migrations.upgrade(engine) == migrations.head_revision()
