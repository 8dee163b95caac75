"""What the store's modules share: the clock (everything stored is UTC) and a row helper."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite lose their zone; everything we store is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def mapping(row: Row | None) -> Mapping[str, Any] | None:
    return dict(row._mapping) if row is not None else None
