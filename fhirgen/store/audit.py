"""The audit log and the small values (the settings key-value table)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, insert, select, update

from fhirgen.store.common import utcnow
from fhirgen.store.engine import Database
from fhirgen.store.models import AuditEntry, Setting


class AuditMixin(Database):
    """The ``Store``'s audit log and small values."""

    def audit(
        self, actor: str, action: str, *, job_id: str | None = None, detail: str | None = None
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(AuditEntry).values(
                    at=utcnow(), actor=actor, action=action, job_id=job_id, detail=detail
                )
            )

    def audit_entries(self, limit: int = 100) -> Sequence[Row]:
        with self.engine.connect() as connection:
            return connection.execute(
                select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
            ).all()

    def get_value(self, key: str) -> str | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(Setting.value).where(Setting.key == key)).first()
        return row.value if row else None

    def set_value(self, key: str, value: str) -> None:
        with self.engine.begin() as connection:
            updated = connection.execute(
                update(Setting).where(Setting.key == key).values(value=value, updated_at=utcnow())
            )
            if not updated.rowcount:
                connection.execute(
                    insert(Setting).values(key=key, value=value, updated_at=utcnow())
                )
