"""indexes a new notification does not write: partial where the intake leaves the column empty

The webhook writes every index of ``jobs`` and ``notification_events`` in each intake
transaction. A new job has no backend and no finish time yet, and a rest-hook event no event
number, so those indexes now leave such rows out (queries on them compare the column, which
excludes NULL, so both SQLite and PostgreSQL still use them). ``received_at`` alone served no
query; the console's job page looks events up by job, which had no index.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# name, table, columns, the column the partial index requires
_PARTIAL = (
    ("ix_jobs_backend_created", "jobs", ["backend", "created_at"], "backend"),
    ("ix_jobs_finished", "jobs", ["finished_at"], "finished_at"),
    (
        "ix_events_subscription_number",
        "notification_events",
        ["subscription_id", "event_number"],
        "event_number",
    ),
)


def _where(column: str) -> dict[str, Any]:
    condition = sa.text(f"{column} IS NOT NULL")
    return {"sqlite_where": condition, "postgresql_where": condition}


def upgrade() -> None:
    for name, table, columns, required in _PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns, **_where(required))
    op.drop_index("ix_notification_events_received_at", table_name="notification_events")
    op.create_index("ix_events_job", "notification_events", ["job_id"], **_where("job_id"))


def downgrade() -> None:
    op.drop_index("ix_events_job", table_name="notification_events")
    op.create_index("ix_notification_events_received_at", "notification_events", ["received_at"])
    for name, table, columns, _required in _PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
