"""The audit log page and its CSV export, paged by entry id (newest first)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select, true

from fhirgen.store import Store, as_utc
from fhirgen.store.console._common import AUDIT, AnyRow

__all__ = ["CSV_HEADER", "MAX_ROW_ID", "AuditFilter", "AuditPage", "audit_csv", "audit_page"]

MAX_ROW_ID = 2**63 - 1  # the largest id a row can have (BIGINT on PostgreSQL, SQLite's INTEGER)


@dataclass(frozen=True)
class AuditFilter:
    """The audit log's filters; empty ones are ignored."""

    actor: str | None = None
    action: str | None = None
    job_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.actor:
            found.append(AUDIT.c.actor == self.actor)
        if self.action:
            found.append(AUDIT.c.action == self.action)
        if self.job_id:
            found.append(AUDIT.c.job_id == self.job_id)
        if self.since:
            found.append(AUDIT.c.at >= self.since)
        if self.until:
            found.append(AUDIT.c.at < self.until)
        return found or [true()]


@dataclass(frozen=True)
class AuditPage:
    """One page of audit entries, newest first."""

    rows: Sequence[AnyRow]
    older: int | None  # pass as ``before`` for the next page


def _audit_query(filters: AuditFilter, before: int | None) -> Select[Any]:
    query = select(AUDIT).where(*filters.conditions())
    if before is not None and before <= MAX_ROW_ID:  # above it: every row is older
        query = query.where(AUDIT.c.id < before)
    return query.order_by(AUDIT.c.id.desc())


def audit_page(
    store: Store,
    filters: AuditFilter = AuditFilter(),
    *,
    before: int | None = None,
    limit: int = 100,
) -> AuditPage:
    """A page of audit entries matching ``filters``, older than entry id ``before``."""
    limit = max(1, min(limit, 1000))
    with store.engine.connect() as connection:
        rows = list(connection.execute(_audit_query(filters, before).limit(limit + 1)).all())
    older = rows[limit - 1].id if len(rows) > limit else None
    return AuditPage(rows[:limit], older)


CSV_HEADER = ("id", "at", "actor", "action", "job_id", "detail")


def audit_csv(
    store: Store,
    filters: AuditFilter = AuditFilter(),
    *,
    batch: int = 1000,
) -> Iterator[str]:
    """The matching audit entries as CSV text, header first, read in batches (streamable).

    Cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) get a leading
    apostrophe.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    yield _take(buffer)
    before: int | None = None
    while True:
        page = audit_page(store, filters, before=before, limit=batch)
        for row in page.rows:
            at = as_utc(row.at)
            writer.writerow(
                [
                    row.id,
                    at.isoformat() if at else "",
                    _cell(row.actor),
                    _cell(row.action),
                    _cell(row.job_id or ""),
                    _cell(row.detail or ""),
                ]
            )
        if page.rows:
            yield _take(buffer)
        if page.older is None:
            return
        before = page.older


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _cell(value: str) -> str:
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
