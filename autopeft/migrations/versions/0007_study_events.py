"""Study events: what the server did to a study on its own, with when and why (``study_events``).

The proposer writes one when it abandons a proposal that overran its time budget, falls back to a
space-filling method, or cancels a proposal because the study stopped (docs/server.md, "Fairness").

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "study_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_events_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_events")),
    )
    op.create_index(op.f("ix_study_events_study_id_id"), "study_events", ["study_id", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_study_events_study_id_id"), table_name="study_events")
    op.drop_table("study_events")
