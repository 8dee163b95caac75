"""What the console's queries share: the tables they read and the columns a job list shows."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.engine import Row

from fhirgen.store.models import AuditEntry, Job, NotificationEvent

AnyRow = Row[*tuple[Any, ...]]  # a result row of any columns
JOBS = cast(Table, Job.__table__)
AUDIT = cast(Table, AuditEntry.__table__)
EVENTS = cast(Table, NotificationEvent.__table__)
# The columns a list of jobs shows: never the JSON blobs (timings, verification, usage).
LIST_COLUMNS = (
    JOBS.c.id,
    JOBS.c.encounter_id,
    JOBS.c.state,
    JOBS.c.source,
    JOBS.c.subscription_id,
    JOBS.c.backend,
    JOBS.c.regeneration,
    JOBS.c.attempts,
    JOBS.c.reason,
    JOBS.c.created_at,
    JOBS.c.finished_at,
)
