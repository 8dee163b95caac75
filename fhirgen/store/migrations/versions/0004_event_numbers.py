"""events: look up an event number per subscription (late events fill gaps, duplicates do not)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_subscription_number",
        "notification_events",
        ["subscription_id", "event_number"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_events_subscription_number", table_name="notification_events")
