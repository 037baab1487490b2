"""Early stopping: trials may be ``stopped`` and keep their learning curve; studies keep their ``early_stopping``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES_BEFORE = "state IN ('queued', 'running', 'completed', 'failed')"
STATES_AFTER = "state IN ('queued', 'running', 'completed', 'failed', 'stopped')"
#: What a stopped trial becomes on a downgrade: the older schema has no such state, and a stopped
#: trial's metric is partial, so it must neither be re-run (queued) nor count as a result (completed).
DOWNGRADED_ERROR = "stopped early by the study's early-stopping rule (kept as failed by a schema downgrade)"


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("early_stopping", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("curve", sa.JSON(none_as_null=True), nullable=True))
        batch.drop_constraint(op.f("ck_trials_state_known"), type_="check")
        batch.create_check_constraint(op.f("ck_trials_state_known"), STATES_AFTER)


def downgrade() -> None:
    trials = sa.table("trials", sa.column("state", sa.String), sa.column("error", sa.Text))
    op.execute(trials.update().where(trials.c.state == "stopped").values(state="failed", error=DOWNGRADED_ERROR))
    with op.batch_alter_table("trials") as batch:
        batch.drop_constraint(op.f("ck_trials_state_known"), type_="check")
        batch.create_check_constraint(op.f("ck_trials_state_known"), STATES_BEFORE)
        batch.drop_column("curve")
    # Never recreate ``studies`` on SQLite: dropping the old table would cascade to every trial (foreign keys
    # are on). SQLite >= 3.35 drops a column in place.
    with op.batch_alter_table("studies", recreate="never") as batch:
        batch.drop_column("early_stopping")
