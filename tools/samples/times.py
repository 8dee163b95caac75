"""Local times with US daylight saving time applied, and moving them on."""

from __future__ import annotations

from datetime import date, datetime, timedelta


def us_utc_offset(day: date, standard_hours: int) -> int:
    """UTC offset on ``day`` in a US time zone that observes daylight saving time."""
    march = date(day.year, 3, 8)
    november = date(day.year, 11, 1)
    dst_start = march + timedelta(days=(6 - march.weekday()) % 7)  # second Sunday in March
    dst_end = november + timedelta(days=(6 - november.weekday()) % 7)  # first Sunday in Nov.
    return standard_hours + 1 if dst_start <= day < dst_end else standard_hours


def later(when: str, *, minutes: int = 0, hours: int = 0) -> str:
    """An ISO 8601 dateTime with offset, moved on (keeps the offset)."""
    moved = datetime.fromisoformat(when) + timedelta(minutes=minutes, hours=hours)
    return moved.isoformat()
