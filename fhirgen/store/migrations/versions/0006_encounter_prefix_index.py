"""jobs: on PostgreSQL, index encounter ids with varchar_pattern_ops (prefix search)

The console's encounter search is ``encounter_id LIKE 'prefix%'``; PostgreSQL's B-tree in the
database's collation cannot serve it (51 ms at 100k jobs). The same index serves equality.
SQLite: nothing to do (the console searches a byte range there).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_jobs_encounter", table_name="jobs")
    op.create_index(
        "ix_jobs_encounter",
        "jobs",
        ["encounter_id", "created_at"],
        postgresql_ops={"encounter_id": "varchar_pattern_ops"},
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_jobs_encounter", table_name="jobs")
    op.create_index("ix_jobs_encounter", "jobs", ["encounter_id", "created_at"])
