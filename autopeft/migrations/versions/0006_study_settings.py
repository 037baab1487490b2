"""Study settings: the parameter budget gets its own column (``studies.constraints``), and ``optimizer``
holds the fields of its method only, with ``warm_start`` renamed ``reuse_hyperparameters``.

Before, ``optimizer`` was one flat object of every method's fields (what the server stored was the whole
dump, defaults included) and the study's budget was copied into it as ``optimizer.constraints``. Since
each method has its own settings model, a field of another method is refused, so the stored objects are
rewritten here to their method's fields (the others never had an effect). The downgrade puts the budget
back into ``optimizer`` and the old name back; the older server fills in the fields left out with their
defaults.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Each method's fields at this revision (written out: a migration never follows the code that comes later).
_COMMON = {"method", "n_initial"}
_BAYESIAN = _COMMON | {
    "reference", "outcome_transform", "mc_samples", "raw_samples", "num_restarts", "local_search_steps",
    "max_baseline", "reuse_hyperparameters", "refit_growth", "threads",
}  # fmt: skip
FIELDS = {
    "gp": _BAYESIAN | {"kernel", "fit_points", "nehvi", "lazy_refit_from"},
    "saas": _BAYESIAN | {"saas_warmup", "saas_samples", "saas_thinning", "saas_max_tree_depth"},
    "sobol": _COMMON,
    "random": _COMMON,
}
OLD_NAME, NEW_NAME = "warm_start", "reuse_hyperparameters"

_studies = sa.table(
    "studies",
    sa.column("id", sa.Integer),
    sa.column("optimizer", sa.JSON),
    sa.column("constraints", sa.JSON(none_as_null=True)),
)


def split(optimizer: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """An optimizer object as stored before, as ``(its method's fields, the budget or None)``."""
    rest = dict(optimizer)
    budget = rest.pop("constraints", None)
    if OLD_NAME in rest:
        value = rest.pop(OLD_NAME)
        rest.setdefault(NEW_NAME, value)
    keep = FIELDS.get(str(rest.get("method", "gp")))
    if keep is not None:
        rest = {k: v for k, v in rest.items() if k in keep}
    active = isinstance(budget, dict) and any(v is not None for v in budget.values())
    return rest, budget if active else None


def join(optimizer: dict[str, Any], budget: dict[str, Any] | None) -> dict[str, Any]:
    """The inverse of :func:`split`, as the older server reads it."""
    old = dict(optimizer)
    if NEW_NAME in old:
        old[OLD_NAME] = old.pop(NEW_NAME)
    if budget is not None:
        old["constraints"] = budget
    return old


def upgrade() -> None:
    # A nullable column needs no table copy on SQLite either; never recreate ``studies`` there
    # (dropping the old table would cascade to every trial).
    with op.batch_alter_table("studies", recreate="never") as batch:
        batch.add_column(sa.Column("constraints", sa.JSON(none_as_null=True), nullable=True))
    conn = op.get_bind()
    for study_id, optimizer in conn.execute(sa.select(_studies.c.id, _studies.c.optimizer)).all():
        rest, budget = split(optimizer or {})
        conn.execute(_studies.update().where(_studies.c.id == study_id).values(optimizer=rest, constraints=budget))


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_studies.c.id, _studies.c.optimizer, _studies.c.constraints)).all()
    for study_id, optimizer, budget in rows:
        conn.execute(_studies.update().where(_studies.c.id == study_id).values(optimizer=join(optimizer or {}, budget)))
    # SQLite >= 3.35 drops a column in place.
    with op.batch_alter_table("studies", recreate="never") as batch:
        batch.drop_column("constraints")
