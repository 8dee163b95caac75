"""The job store: subscriptions, notification events, jobs and their state machine, audit log.

SQLAlchemy over SQLite by default (WAL and a busy timeout, so the webhook and workers can share
one file) or PostgreSQL by URL. The schema is managed by Alembic; ``Store.migrate()`` brings a
database to the current revision and is safe to call from several processes at once.

``Store`` is composed of one part per aggregate: ``engine`` (engine, errors, migrations,
readiness), ``subscriptions``, ``outbox`` (intake and the relay's and sweeper's claims),
``jobs`` (the state machine and artifacts), ``drafts``, ``audit`` (and the small values).
"""

from __future__ import annotations

from fhirgen.errors import StoreUnavailable

# The console's tables are part of the schema: Base.metadata must always hold them.
from fhirgen.store import console_models as _console_models  # noqa: F401
from fhirgen.store.audit import AuditMixin
from fhirgen.store.common import as_utc, mapping, utcnow
from fhirgen.store.drafts import DraftsMixin, WrittenDraft
from fhirgen.store.engine import StoreError
from fhirgen.store.intake import INACTIVE, IntakeResult, Received
from fhirgen.store.jobs import ACTIVE_STATES, FINAL_STATES, JOB_STATES, JobsMixin
from fhirgen.store.outbox import OutboxMixin
from fhirgen.store.subscriptions import SubscriptionsMixin

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "INACTIVE",
    "JOB_STATES",
    "IntakeResult",
    "Received",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "WrittenDraft",
    "as_utc",
    "mapping",
    "utcnow",
]


class Store(SubscriptionsMixin, OutboxMixin, JobsMixin, DraftsMixin, AuditMixin):
    """All reads and writes of fhirgen's own state."""
