"""Warm start: a study may name the earlier studies it starts from (``studies.warm_start``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding a nullable column needs no table copy on SQLite either; never recreate ``studies``
    # there (dropping the old table would cascade to every trial).
    with op.batch_alter_table("studies", recreate="never") as batch:
        batch.add_column(sa.Column("warm_start", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    # The trials a warm start queued keep their source ("warm_start" is a plain string there); the
    # study forgets which studies it started from. SQLite >= 3.35 drops a column in place.
    with op.batch_alter_table("studies", recreate="never") as batch:
        batch.drop_column("warm_start")
