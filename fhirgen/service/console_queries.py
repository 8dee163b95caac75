"""Read-only queries behind the console's pages, built to stay fast with 100,000+ jobs.

Every list is paged by keyset (newest first; a cursor names the last row shown), every count
and histogram is an aggregate in SQL served by an index (see ``fhirgen.store.console_models``),
and no page runs a query per row. Latency percentiles are computed by PostgreSQL itself
(``percentile_cont``); on SQLite, which has no such aggregate, over the latencies of at most
``LATENCY_SAMPLE`` jobs finished in the window, read in one query.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import ColumnElement, Select, Table, and_, extract, func, or_, select, true
from sqlalchemy.engine import Connection, Row

from fhirgen.store import JOB_STATES, Store, as_utc, utcnow
from fhirgen.store.console_models import WorkerHeartbeat
from fhirgen.store.models import AuditEntry, Job, JobArtifact, NotificationEvent, Subscription

__all__ = [
    "LATENCY_SAMPLE",
    "MAX_ROW_ID",
    "AuditFilter",
    "AuditPage",
    "HourPoint",
    "JobDetail",
    "JobFilter",
    "JobPage",
    "Overview",
    "SettingRow",
    "SubscriptionSummary",
    "TimelineEntry",
    "audit_csv",
    "audit_page",
    "effective_settings",
    "job_detail",
    "list_jobs",
    "overview",
    "percentile",
    "subscriptions",
    "workers_alive",
]

LATENCY_SAMPLE = 20_000
MAX_ROW_ID = 2**63 - 1  # the largest id a row can have (BIGINT on PostgreSQL, SQLite's INTEGER)
AnyRow = Row[*tuple[Any, ...]]  # a result row of any columns
_JOBS = cast(Table, Job.__table__)
_AUDIT = cast(Table, AuditEntry.__table__)
_EVENTS = cast(Table, NotificationEvent.__table__)
_SUBS = cast(Table, Subscription.__table__)
_ARTIFACTS = cast(Table, JobArtifact.__table__)
_WORKERS = cast(Table, WorkerHeartbeat.__table__)
# The columns a list of jobs shows: never the JSON blobs (timings, verification, usage).
_LIST_COLUMNS = (
    _JOBS.c.id,
    _JOBS.c.encounter_id,
    _JOBS.c.state,
    _JOBS.c.source,
    _JOBS.c.subscription_id,
    _JOBS.c.backend,
    _JOBS.c.regeneration,
    _JOBS.c.attempts,
    _JOBS.c.reason,
    _JOBS.c.created_at,
    _JOBS.c.finished_at,
)


# -- overview ---------------------------------------------------------------------------------


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
            connection.execute(select(_JOBS.c.state, func.count()).group_by(_JOBS.c.state)).all()
        )
        states_24h: dict[str, int] = dict(
            connection.execute(
                select(_JOBS.c.state, func.count())
                .where(_JOBS.c.created_at >= since)
                .group_by(_JOBS.c.state)
            ).all()
        )
        finished = _hourly_finished(connection, first_hour)
        hourly, overall, sampled = _latency(connection, first_hour, since)
        failures = [
            (str(reason or "(no reason recorded)"), int(count))
            for reason, count in connection.execute(
                select(_JOBS.c.reason, func.count().label("n"))
                .where(_JOBS.c.state == "failed")
                .group_by(_JOBS.c.reason)
                .order_by(func.count().desc(), _JOBS.c.reason)
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
    hour = _hour_of(connection, _JOBS.c.finished_at).label("hour")
    rows = connection.execute(
        select(hour, _JOBS.c.state, func.count())
        .where(_JOBS.c.finished_at >= first_hour, _JOBS.c.state.in_(("done", "failed")))
        .group_by(hour, _JOBS.c.state)
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
    start = func.coalesce(_JOBS.c.discharged_at, _JOBS.c.created_at)
    window = and_(_JOBS.c.state == "done", _JOBS.c.finished_at >= first_hour)
    seconds: ColumnElement[Any]
    if connection.dialect.name == "postgresql":
        seconds = func.greatest(extract("epoch", _JOBS.c.finished_at - start), 0)
        hour = _hour_of(connection, _JOBS.c.finished_at).label("hour")
        p50 = func.percentile_cont(0.5).within_group(seconds)
        p95 = func.percentile_cont(0.95).within_group(seconds)
        hourly = {
            key: (_float(a), _float(b))
            for key, a, b in connection.execute(
                select(hour, p50, p95).where(window).group_by(hour)
            ).all()
        }
        a, b = connection.execute(
            select(p50, p95).where(window, _JOBS.c.finished_at >= since)
        ).one()
        return hourly, (_float(a), _float(b)), False
    seconds = (func.julianday(_JOBS.c.finished_at) - func.julianday(start)) * 86400.0
    rows = connection.execute(
        select(_hour_of(connection, _JOBS.c.finished_at), _JOBS.c.finished_at, seconds)
        .where(window)
        .order_by(_JOBS.c.finished_at.desc())
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


# -- jobs -------------------------------------------------------------------------------------


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
            found.append(_JOBS.c.state == self.state)
        if self.since:
            found.append(_JOBS.c.created_at >= self.since)
        if self.until:
            found.append(_JOBS.c.created_at < self.until)
        if self.subscription_id:
            found.append(_JOBS.c.subscription_id == self.subscription_id)
        if self.backend:
            found.append(_JOBS.c.backend == self.backend)
        if self.encounter:
            found.append(_prefix(connection, _JOBS.c.encounter_id, self.encounter))
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
            select(func.count()).select_from(_JOBS).where(*conditions)
        ).scalar_one()
        query = select(*_LIST_COLUMNS).where(*conditions)
        newest_first = True
        cursor = _parse_cursor(after)
        if cursor is not None:
            query = query.where(_after(cursor)).order_by(_JOBS.c.created_at, _JOBS.c.id)
            newest_first = False
        else:
            cursor = _parse_cursor(before)
            if cursor is not None:
                query = query.where(_before(cursor))
            query = query.order_by(_JOBS.c.created_at.desc(), _JOBS.c.id.desc())
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
    return or_(_JOBS.c.created_at < moment, and_(_JOBS.c.created_at == moment, _JOBS.c.id < job_id))


def _after(cursor: tuple[datetime, str]) -> ColumnElement[bool]:
    moment, job_id = cursor
    return or_(_JOBS.c.created_at > moment, and_(_JOBS.c.created_at == moment, _JOBS.c.id > job_id))


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to a job."""

    at: datetime | None
    what: str
    detail: str = ""
    actor: str = ""


@dataclass(frozen=True)
class JobDetail:
    """Everything the job page shows: the job, how it came to be, what it wrote."""

    job: AnyRow
    events: Sequence[AnyRow]  # the notification events that named it
    audit: Sequence[AnyRow]  # retries and console actions (page views left out)
    timeline: Sequence[TimelineEntry]
    steps: Sequence[tuple[str, float]]  # (step, milliseconds), in pipeline order
    related: Sequence[AnyRow]  # the Encounter's other jobs (earlier drafts, regenerations)
    facts: Sequence[Mapping[str, Any]] | None = None
    drafts: Mapping[str, Any] | None = None
    bundle: Mapping[str, Any] | None = None
    facts_by_id: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


_STEP_ORDER = ("read", "generate", "write")
VIEW_ACTION = "view-job"


def job_detail(store: Store, job_id: str, *, history: int = 200) -> JobDetail | None:
    """A job with its events, audit trail, timeline and artifacts (decoded); None if unknown."""
    with store.engine.connect() as connection:
        job = connection.execute(select(_JOBS).where(_JOBS.c.id == job_id)).first()
        if job is None:
            return None
        events = list(
            connection.execute(
                select(_EVENTS)
                .where(_EVENTS.c.job_id == job_id)
                .order_by(_EVENTS.c.received_at, _EVENTS.c.id)
                .limit(history)
            ).all()
        )
        audit = list(
            connection.execute(
                select(_AUDIT)
                .where(_AUDIT.c.job_id == job_id, _AUDIT.c.action != VIEW_ACTION)
                .order_by(_AUDIT.c.at, _AUDIT.c.id)
                .limit(history)
            ).all()
        )
        related = list(
            connection.execute(
                select(*_LIST_COLUMNS)
                .where(_JOBS.c.encounter_id == job.encounter_id, _JOBS.c.id != job_id)
                .order_by(_JOBS.c.created_at.desc())
                .limit(50)
            ).all()
        )
        artifacts = {
            name: body
            for name, body in connection.execute(
                select(_ARTIFACTS.c.name, _ARTIFACTS.c.body).where(
                    _ARTIFACTS.c.job_id == job_id,
                    _ARTIFACTS.c.name.in_(("facts", "drafts", "bundle")),
                )
            ).all()
        }
    facts = _decode(artifacts.get("facts"))
    timings = dict(job.timings or {})
    steps = [(s, float(timings[s])) for s in _STEP_ORDER if s in timings]
    steps += [(s, float(v)) for s, v in sorted(timings.items()) if s not in _STEP_ORDER]
    return JobDetail(
        job=job,
        events=events,
        audit=audit,
        timeline=_timeline(job, events, audit),
        steps=steps,
        related=related,
        facts=facts,
        drafts=_decode(artifacts.get("drafts")),
        bundle=_decode(artifacts.get("bundle")),
        facts_by_id={str(f.get("id")): f for f in facts or [] if isinstance(f, dict)},
    )


def _decode(body: bytes | None) -> Any:
    if body is None:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _timeline(
    job: AnyRow, events: Sequence[AnyRow], audit: Sequence[AnyRow]
) -> list[TimelineEntry]:
    entries = [
        TimelineEntry(
            as_utc(e.received_at),
            f"notification ({e.kind})",
            ", ".join(
                part
                for part in (
                    f"subscription {e.subscription_id}",
                    f"event {e.event_number}" if e.event_number is not None else "",
                    e.note or "",
                )
                if part
            ),
        )
        for e in events
    ]
    entries.append(TimelineEntry(as_utc(job.created_at), "job created", f"source: {job.source}"))
    if job.enqueued_at is not None:
        entries.append(TimelineEntry(as_utc(job.enqueued_at), "sent to the io queue"))
    entries.extend(TimelineEntry(as_utc(a.at), a.action, a.detail or "", a.actor) for a in audit)
    if job.finished_at is not None:
        entries.append(TimelineEntry(as_utc(job.finished_at), job.state, job.reason or ""))
    epoch = datetime.min.replace(tzinfo=as_utc(job.created_at).tzinfo)  # type: ignore[union-attr]
    return sorted(entries, key=lambda e: e.at or epoch)


# -- subscriptions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionSummary:
    """A subscription with what it delivered: events stored and jobs made."""

    subscription: AnyRow
    events: int
    jobs: int
    last_event_at: datetime | None


def subscriptions(store: Store) -> list[SubscriptionSummary]:
    """Every subscription with its counts (two grouped queries, however many there are)."""
    with store.engine.connect() as connection:
        rows = connection.execute(select(_SUBS).order_by(_SUBS.c.created_at)).all()
        events = {
            sid: (count, last)
            for sid, count, last in connection.execute(
                select(
                    _EVENTS.c.subscription_id, func.count(), func.max(_EVENTS.c.received_at)
                ).group_by(_EVENTS.c.subscription_id)
            ).all()
        }
        jobs: dict[str, int] = dict(
            connection.execute(
                select(_JOBS.c.subscription_id, func.count())
                .where(_JOBS.c.subscription_id.is_not(None))
                .group_by(_JOBS.c.subscription_id)
            ).all()
        )
    return [
        SubscriptionSummary(
            row,
            int(events.get(row.id, (0, None))[0]),
            int(jobs.get(row.id, 0)),
            as_utc(events.get(row.id, (0, None))[1]),
        )
        for row in rows
    ]


def subscription_ids(store: Store) -> list[str]:
    with store.engine.connect() as connection:
        return [r.id for r in connection.execute(select(_SUBS.c.id).order_by(_SUBS.c.id)).all()]


# -- audit log --------------------------------------------------------------------------------


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
            found.append(_AUDIT.c.actor == self.actor)
        if self.action:
            found.append(_AUDIT.c.action == self.action)
        if self.job_id:
            found.append(_AUDIT.c.job_id == self.job_id)
        if self.since:
            found.append(_AUDIT.c.at >= self.since)
        if self.until:
            found.append(_AUDIT.c.at < self.until)
        return found or [true()]


@dataclass(frozen=True)
class AuditPage:
    """One page of audit entries, newest first."""

    rows: Sequence[AnyRow]
    older: int | None  # pass as ``before`` for the next page


def _audit_query(filters: AuditFilter, before: int | None) -> Select[Any]:
    query = select(_AUDIT).where(*filters.conditions())
    if before is not None and before <= MAX_ROW_ID:  # above it: every row is older
        query = query.where(_AUDIT.c.id < before)
    return query.order_by(_AUDIT.c.id.desc())


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


# -- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingRow:
    """One effective setting as the console shows it (secrets masked)."""

    name: str
    env: str
    value: str
    description: str
    masked: bool = False


MASK = "••••••••"


def effective_settings(settings: Any) -> list[SettingRow]:
    """Every setting with its value; secrets and passwords inside URLs are masked."""
    from pydantic import SecretStr

    rows = []
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        masked = False
        if isinstance(value, SecretStr):
            shown, masked = (MASK, True) if value.get_secret_value() else ("(unset)", False)
        elif value is None:
            shown = "(unset)"
        elif isinstance(value, tuple | list):
            shown = ", ".join(str(v) for v in value)
        else:
            shown = str(value)
            if "://" in shown:
                shown, masked = _mask_url(shown)
        rows.append(
            SettingRow(name, f"FHIRGEN_{name.upper()}", shown, info.description or "", masked)
        )
    return rows


def _mask_url(url: str) -> tuple[str, bool]:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url, False
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}")), True
