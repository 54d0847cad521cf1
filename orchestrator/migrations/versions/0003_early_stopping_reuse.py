"""Early stopping (grids.early_stopping, jobs.until_epoch, rung_decisions) and reuse of
finished runs (jobs.reuse_key, jobs.reused_from, grids.request for extending a grid)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("grids", schema=None) as batch_op:
        batch_op.add_column(sa.Column("early_stopping", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("request", sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("until_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reuse_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reused_from", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_jobs_reuse_key", ["reuse_key"], unique=False)
        batch_op.create_foreign_key("fk_jobs_reused_from", "jobs", ["reused_from"], ["id"])
    op.create_table(
        "rung_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("grid_id", sa.String(length=32), nullable=False),
        sa.Column("combination", sa.Integer(), nullable=False),
        sa.Column("rung", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("n_seeds", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("cohort", sa.Integer(), nullable=False),
        sa.Column("kept", sa.Integer(), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["grid_id"], ["grids.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("grid_id", "combination", "rung", name="uq_rung_decisions"),
    )
    op.create_index("ix_rung_decisions_grid_id", "rung_decisions", ["grid_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_rung_decisions_grid_id", table_name="rung_decisions")
    op.drop_table("rung_decisions")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_jobs_reused_from", type_="foreignkey")
        batch_op.drop_index("ix_jobs_reuse_key")
        batch_op.drop_column("reused_from")
        batch_op.drop_column("reuse_key")
        batch_op.drop_column("until_epoch")
    with op.batch_alter_table("grids", schema=None) as batch_op:
        batch_op.drop_column("request")
        batch_op.drop_column("early_stopping")
