"""Studies can be paused: the server stops proposing after repeated identical failures.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("paused_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("pause_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("resumed_at", UTC_TIME, nullable=True))


def downgrade() -> None:
    # Never recreate ``studies`` on SQLite: dropping the old table would cascade to every trial.
    with op.batch_alter_table("studies", recreate="never") as batch:
        batch.drop_column("resumed_at")
        batch.drop_column("pause_reason")
        batch.drop_column("paused_at")
