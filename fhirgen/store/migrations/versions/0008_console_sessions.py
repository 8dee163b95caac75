"""console sessions and sign-in throttling: a session epoch and a disabled mark per user, wrong
passwords counted per account and client

``users.session_epoch`` is part of every console session's id: raising it (sign-out, a new
password or role, disabling) ends every session of that user made before, on the server.
``sign_in_failures`` replaces the account-wide count (``users.failed_logins`` and
``users.locked_until``, no longer used): a client that guesses wrong is refused for that account,
others are not.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "sign_in_failures",
        sa.Column("username", sa.String(length=120), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username", "source"),
    )


def downgrade() -> None:
    op.drop_table("sign_in_failures")
    with op.batch_alter_table("users") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("disabled_at")
        batch.drop_column("session_epoch")
