"""the facts' fingerprint on each draft claim

``drafts.facts_fingerprint`` holds ``FactSet.fingerprint()`` of the stay as the claiming job read
it: a new version of an Encounter whose facts match the last written draft's is not drafted
again (issue 16). Claims made before have none, so their stays are drafted as before.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("drafts", sa.Column("facts_fingerprint", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("drafts") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("facts_fingerprint")
