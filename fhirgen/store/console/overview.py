"""The overview page: jobs per state, hourly throughput and latency, top failures, live workers.

Latency percentiles are computed by PostgreSQL itself (``percentile_cont``); on SQLite, which has
no such aggregate, over the latencies of at most ``LATENCY_SAMPLE`` jobs finished in the window,
read in one query.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, extract, func, select
from sqlalchemy.engine import Connection

from fhirgen.store import JOB_STATES, Store, utcnow
from fhirgen.store.console._common import JOBS, AnyRow
from fhirgen.store.console_models import WorkerHeartbeat

__all__ = ["LATENCY_SAMPLE", "HourPoint", "Overview", "overview", "percentile", "workers_alive"]

LATENCY_SAMPLE = 20_000
_WORKERS = cast(Table, WorkerHeartbeat.__table__)


@dataclass(frozen=True)
class HourPoint:
    """One hour of the last day: jobs finished (done, failed) and the done jobs' latency."""

    hour: datetime
    done: int = 0
    failed: int = 0
    p50: float | None = None  # seconds from discharge (or receipt) to draft written
    p95: float | None = None


@dataclass(frozen=True)
class Overview:
    """The overview page's numbers."""

    generated_at: datetime
    states: Mapping[str, int]  # every job in the store, by state
    states_24h: Mapping[str, int]  # jobs received in the last 24 hours, by state
    hours: Sequence[HourPoint]  # 24 points, oldest first
    p50: float | None  # over the last 24 hours
    p95: float | None
    failures: Sequence[tuple[str, int]]  # most common reasons of failed jobs
    sampled: bool = False  # the latency sample was capped at LATENCY_SAMPLE jobs

    @property
    def total(self) -> int:
        return sum(self.states.values())


def overview(store: Store, *, now: datetime | None = None, reasons: int = 5) -> Overview:
    """Jobs per state (all time and last 24 h), hourly throughput and latency, top failures."""
    now = now or utcnow()
    since = now - timedelta(hours=24)
    first_hour = _floor_hour(since)
    with store.engine.connect() as connection:
        states: dict[str, int] = dict(
            connection.execute(select(JOBS.c.state, func.count()).group_by(JOBS.c.state)).all()
        )
        states_24h: dict[str, int] = dict(
            connection.execute(
                select(JOBS.c.state, func.count())
                .where(JOBS.c.created_at >= since)
                .group_by(JOBS.c.state)
            ).all()
        )
        finished = _hourly_finished(connection, first_hour)
        hourly, overall, sampled = _latency(connection, first_hour, since)
        failures = [
            (str(reason or "(no reason recorded)"), int(count))
            for reason, count in connection.execute(
                select(JOBS.c.reason, func.count().label("n"))
                .where(JOBS.c.state == "failed")
                .group_by(JOBS.c.reason)
                .order_by(func.count().desc(), JOBS.c.reason)
                .limit(reasons)
            ).all()
        ]
    hours = []
    for index in range(25):
        hour = first_hour + timedelta(hours=index)
        if hour > now:
            break
        key = _hour_key(hour)
        done, failed = finished.get(key, (0, 0))
        p50, p95 = hourly.get(key, (None, None))
        hours.append(HourPoint(hour, done, failed, p50, p95))
    return Overview(
        generated_at=now,
        states={state: int(states.get(state, 0)) for state in JOB_STATES},
        states_24h={state: int(states_24h.get(state, 0)) for state in JOB_STATES},
        hours=hours[-24:],
        p50=overall[0],
        p95=overall[1],
        failures=failures,
        sampled=sampled,
    )


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _hour_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H")


def _hour_of(connection: Connection, column: Any) -> Any:
    """``YYYY-MM-DD HH`` (UTC) of a timestamp column, in SQL."""
    if connection.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.substr(column, 1, 13)  # SQLite keeps UTC timestamps as ISO text


def _hourly_finished(connection: Connection, first_hour: datetime) -> dict[str, tuple[int, int]]:
    hour = _hour_of(connection, JOBS.c.finished_at).label("hour")
    rows = connection.execute(
        select(hour, JOBS.c.state, func.count())
        .where(JOBS.c.finished_at >= first_hour, JOBS.c.state.in_(("done", "failed")))
        .group_by(hour, JOBS.c.state)
    ).all()
    out: dict[str, tuple[int, int]] = {}
    for key, state, count in rows:
        done, failed = out.get(key, (0, 0))
        out[key] = (done + count, failed) if state == "done" else (done, failed + count)
    return out


def _latency(
    connection: Connection, first_hour: datetime, since: datetime
) -> tuple[dict[str, tuple[float | None, float | None]], tuple[float | None, float | None], bool]:
    """Latency percentiles per hour and over the window: (hourly, overall, sampled)."""
    start = func.coalesce(JOBS.c.discharged_at, JOBS.c.created_at)
    window = and_(JOBS.c.state == "done", JOBS.c.finished_at >= first_hour)
    seconds: ColumnElement[Any]
    if connection.dialect.name == "postgresql":
        seconds = func.greatest(extract("epoch", JOBS.c.finished_at - start), 0)
        hour = _hour_of(connection, JOBS.c.finished_at).label("hour")
        p50 = func.percentile_cont(0.5).within_group(seconds)
        p95 = func.percentile_cont(0.95).within_group(seconds)
        hourly = {
            key: (_float(a), _float(b))
            for key, a, b in connection.execute(
                select(hour, p50, p95).where(window).group_by(hour)
            ).all()
        }
        a, b = connection.execute(select(p50, p95).where(window, JOBS.c.finished_at >= since)).one()
        return hourly, (_float(a), _float(b)), False
    seconds = (func.julianday(JOBS.c.finished_at) - func.julianday(start)) * 86400.0
    rows = connection.execute(
        select(_hour_of(connection, JOBS.c.finished_at), JOBS.c.finished_at, seconds)
        .where(window)
        .order_by(JOBS.c.finished_at.desc())
        .limit(LATENCY_SAMPLE + 1)
    ).all()
    sampled = len(rows) > LATENCY_SAMPLE
    by_hour: dict[str, list[float]] = {}
    day: list[float] = []
    since_key = since.replace(tzinfo=None)
    for key, finished_at, value in rows[:LATENCY_SAMPLE]:
        value = max(float(value or 0.0), 0.0)
        by_hour.setdefault(key, []).append(value)
        finished = finished_at if isinstance(finished_at, datetime) else None
        if finished is None or finished.replace(tzinfo=None) >= since_key:
            day.append(value)
    hourly = {}
    for key, values in by_hour.items():
        values.sort()
        hourly[key] = (percentile(values, 0.5), percentile(values, 0.95))
    day.sort()
    return hourly, (percentile(day, 0.5), percentile(day, 0.95)), sampled


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values, interpolated as PostgreSQL's ``percentile_cont``."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def workers_alive(
    store: Store, *, within: float = 60.0, now: datetime | None = None
) -> list[AnyRow]:
    """Workers whose last heartbeat is at most ``within`` seconds old, by name."""
    since = (now or utcnow()) - timedelta(seconds=within)
    with store.engine.connect() as connection:
        return list(
            connection.execute(
                select(_WORKERS).where(_WORKERS.c.last_seen >= since).order_by(_WORKERS.c.name)
            ).all()
        )
