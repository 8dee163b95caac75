"""The jobs list: filters and keyset pages (newest first; a cursor names the last row shown)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.engine import Connection

from fhirgen.store import Store, as_utc
from fhirgen.store.console._common import JOBS, LIST_COLUMNS, AnyRow

__all__ = ["JobFilter", "JobPage", "list_jobs"]


@dataclass(frozen=True)
class JobFilter:
    """The job list's filters; empty ones are ignored."""

    state: str | None = None
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    subscription_id: str | None = None
    backend: str | None = None
    encounter: str | None = None  # an Encounter id, or the start of one

    def conditions(self, connection: Connection) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.state:
            found.append(JOBS.c.state == self.state)
        if self.since:
            found.append(JOBS.c.created_at >= self.since)
        if self.until:
            found.append(JOBS.c.created_at < self.until)
        if self.subscription_id:
            found.append(JOBS.c.subscription_id == self.subscription_id)
        if self.backend:
            found.append(JOBS.c.backend == self.backend)
        if self.encounter:
            found.append(_prefix(connection, JOBS.c.encounter_id, self.encounter))
        return found


def _prefix(connection: Connection, column: Any, text: str) -> ColumnElement[bool]:
    """``column`` starts with ``text``, as a range the (encounter, created) index serves.

    FHIR ids are ASCII letters, digits, ``-`` and ``.``, all below U+FFFF: on SQLite's byte
    order the range is exact. PostgreSQL's collations do not order by code point, so there a
    LIKE (escaped) does it.
    """
    if connection.dialect.name == "sqlite":
        return and_(column >= text, column < text + "\uffff")
    return column.startswith(text, autoescape=True)


@dataclass(frozen=True)
class JobPage:
    """One page of jobs, newest first, and the cursors of the pages beside it."""

    rows: Sequence[AnyRow]
    total: int
    newer: str | None  # cursor for the page before (None: this is the newest page)
    older: str | None  # cursor for the page after (None: this is the last page)


def list_jobs(
    store: Store,
    filters: JobFilter = JobFilter(),
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> JobPage:
    """A page of jobs matching ``filters``: older than cursor ``before`` or newer than ``after``."""
    limit = max(1, min(limit, 500))
    with store.engine.connect() as connection:
        conditions = filters.conditions(connection)
        total = connection.execute(
            select(func.count()).select_from(JOBS).where(*conditions)
        ).scalar_one()
        query = select(*LIST_COLUMNS).where(*conditions)
        newest_first = True
        cursor = _parse_cursor(after)
        if cursor is not None:
            query = query.where(_after(cursor)).order_by(JOBS.c.created_at, JOBS.c.id)
            newest_first = False
        else:
            cursor = _parse_cursor(before)
            if cursor is not None:
                query = query.where(_before(cursor))
            query = query.order_by(JOBS.c.created_at.desc(), JOBS.c.id.desc())
        rows = list(connection.execute(query.limit(limit + 1)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        if not newest_first:
            rows.reverse()
        if not rows:
            return JobPage([], total, None, None)
        first, last = _cursor(rows[0]), _cursor(rows[-1])
    if newest_first:
        # Reached from a newer page (``before``): that page is still there to go back to.
        return JobPage(rows, int(total), first if before else None, last if more else None)
    return JobPage(rows, int(total), first if more else None, last)


def _cursor(row: AnyRow) -> str:
    created = as_utc(row.created_at)
    assert created is not None
    return f"{created.isoformat()}|{row.id}"


def _parse_cursor(value: str | None) -> tuple[datetime, str] | None:
    if not value or "|" not in value:
        return None
    moment, _, job_id = value.partition("|")
    try:
        parsed = datetime.fromisoformat(moment)
        # In UTC here, as the store compares it: a time at the edge of the calendar in another
        # zone (9999-12-31T23:00-05:00) has no UTC time, and is no cursor.
        utc = parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
    return utc, job_id


def _before(cursor: tuple[datetime, str]) -> ColumnElement[bool]:
    moment, job_id = cursor
    return or_(JOBS.c.created_at < moment, and_(JOBS.c.created_at == moment, JOBS.c.id < job_id))


def _after(cursor: tuple[datetime, str]) -> ColumnElement[bool]:
    moment, job_id = cursor
    return or_(JOBS.c.created_at > moment, and_(JOBS.c.created_at == moment, JOBS.c.id > job_id))
