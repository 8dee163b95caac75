"""jobs: drop the index on subscription_id alone (ix_jobs_subscription_created starts with it)

Every job insert at intake wrote one more B-tree for an index no query needed.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_jobs_subscription_id", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_subscription_id", "jobs", ["subscription_id"], unique=False)
