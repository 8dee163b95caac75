"""The job store: subscriptions, notification events, jobs and their state machine, audit log.

SQLAlchemy over SQLite by default (WAL and a busy timeout, so the webhook and workers can share
one file) or PostgreSQL by URL. The schema is managed by Alembic; ``Store.migrate()`` brings a
database to the current revision and is safe to call from several processes at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import sqlite3
import threading
import time
import uuid
import weakref
from collections import namedtuple
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    Engine,
    Row,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import SQLAlchemyError as StoreError

# The console's tables are part of the schema: Base.metadata must always hold them.
from fhirgen.store import console_models as _console_models  # noqa: F401
from fhirgen.store.models import (
    AuditEntry,
    Draft,
    Job,
    JobArtifact,
    NotificationEvent,
    Setting,
    Subscription,
)

__all__ = ["JOB_STATES", "IntakeResult", "Received", "Store", "StoreError", "utcnow"]

JOB_STATES = (
    "received",
    "reading",
    "generating",
    "writing",
    "done",
    "skipped",
    "failed",
    "cancelled",
)
ACTIVE_STATES = ("received", "reading", "generating", "writing")
FINAL_STATES = ("done", "skipped", "failed", "cancelled")
_NEXT = {
    "received": {"reading", "skipped", "failed", "cancelled"},
    "reading": {"generating", "skipped", "failed", "cancelled", "reading"},
    "generating": {"writing", "failed", "cancelled", "generating"},
    "writing": {"done", "failed", "writing"},
    "failed": {"received"},  # retried from the console
    "done": set(),
    "skipped": set(),
    "cancelled": {"received"},
}
_MIGRATIONS = Path(__file__).with_name("migrations")

# The webhook's intake statements, built once: Core (not ORM-enabled) statements on the tables
# with bound parameters, compiled once per dialect (``_Prepared``) and run on the driver's
# cursor, whose statement cache prepares each of them once per connection.
_SUBSCRIPTIONS = Subscription.__table__
_JOBS = Job.__table__
_TOUCH = (
    update(_SUBSCRIPTIONS)
    .where(_SUBSCRIPTIONS.c.id == bindparam("sid"))
    .values(
        notifications=_SUBSCRIPTIONS.c.notifications + 1,
        last_notification_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(_SUBSCRIPTIONS.c.events_since)
)
_TOUCH_HEARTBEAT = _TOUCH.values(last_heartbeat_at=bindparam("now"))
_COUNT_EVENTS = (
    update(_SUBSCRIPTIONS)
    .where(_SUBSCRIPTIONS.c.id == bindparam("sid"))
    .values(
        events_since=bindparam("highest"),
        gaps_detected=_SUBSCRIPTIONS.c.gaps_detected + bindparam("gaps"),
    )
)
# By encounter only, state filtered here: with ``state = 'received'`` in the WHERE clause SQLite
# picked the (state, created_at) index and scanned every waiting job, so intake slowed down as
# the backlog grew (1.2 ms at 2,000 waiting jobs). An encounter has few jobs.
_JOBS_OF_ENCOUNTER = select(_JOBS.c.id, _JOBS.c.state).where(
    _JOBS.c.encounter_id == bindparam("encounter")
)
_CLAIM_JOB = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job"), _JOBS.c.enqueued_at.is_(None))
    .values(enqueued_at=bindparam("now"))
)
_EVENTS = NotificationEvent.__table__
_SEEN_EVENTS = select(_EVENTS.c.id).where(
    _EVENTS.c.subscription_id == bindparam("sid"),
    _EVENTS.c.event_number == bindparam("number"),
)
_ADD_JOB = insert(_JOBS)
_ADD_EVENT = insert(NotificationEvent.__table__)


def _missing(
    last_seen: int, numbers: Sequence[int], events_since: int | None
) -> tuple[int, int] | None:
    """The first and last event numbers missing after ``last_seen``: holes before and between
    the (sorted) ``numbers``, or, with none, up to the count a heartbeat or status reports."""
    if not numbers:
        if events_since is not None and events_since > last_seen:
            return (last_seen + 1, events_since)
        return None
    first = last = None
    previous = last_seen
    for number in numbers:
        if number > previous + 1:
            first = previous + 1 if first is None else first
            last = number - 1
        previous = max(previous, number)
    return None if first is None else (first, last)


def _time_ordered_id() -> str:
    """A new job id: 32 hex digits like ``uuid4().hex``, laid out as a UUIDv7 (48-bit
    millisecond time, then 74 random bits), so new ids land at the end of the jobs' primary-key
    index instead of on a random page of it: one page written per insert, not a new one each
    time, in SQLite's WAL and in PostgreSQL's B-tree alike."""
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | secrets.randbits(76)
    value = value & ~(0xC << 60) | 0x8 << 60  # the RFC 9562 variant bits
    return f"{value:032x}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite lose their zone; everything we store is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class Received(NamedTuple):
    """One notification as the store records it: which subscription, what kind, its events
    as (event number, focus ``Type/id``) pairs, and the count it reports, if any."""

    subscription_id: str
    kind: str
    events: tuple[tuple[int | None, str | None], ...] = ()
    events_since: int | None = None


@dataclass(frozen=True)
class IntakeResult:
    """What recording one notification did: events stored, jobs to enqueue, gaps seen.

    ``jobs`` are the jobs this caller must hand to the broker: new ones, and waiting ones whose
    earlier enqueue failed. A job is claimed for enqueueing once, so duplicates send nothing.
    """

    events: int
    jobs: tuple[str, ...]
    gap: tuple[int, int] | None = None  # first and last missing event number
    reconcile: bool = False  # the notification says "something changed" without saying what
    notes: tuple[str, ...] = field(default_factory=tuple)


class Store:
    """All reads and writes of fhirgen's own state."""

    def __init__(
        self, url: str, *, echo: bool = False, background_checkpoints: bool = False
    ) -> None:
        """``background_checkpoints`` (SQLite files; the webhook sets it): copy the WAL back into
        the database from a background thread instead of in whichever commit crosses 1,000
        pages, which then waits 30-50 ms for the checkpoint's fsync."""
        self.url = url
        self._checkpoints: _Checkpoints | None = None
        self._intake_lock: _FileLock | None = None
        self._statements: dict[tuple[int, tuple[str, ...]], _Prepared] = {}
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if url.startswith("sqlite"):
            # A file has no server to lose the connection to: no ping before each transaction.
            kwargs["pool_pre_ping"] = False
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            database = self.engine.url.database
            if database and database != ":memory:":
                self._intake_lock = _FileLock(f"{database}.intake.lock")
            if background_checkpoints and database and database != ":memory:":
                self._checkpoints = _Checkpoints(database, self._intake_lock)
                event.listen(self.engine, "connect", _no_commit_checkpoints)

    @classmethod
    def from_settings(cls, settings: Any, **options: Any) -> Store:
        return cls(settings.resolved_database_url, **options)

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision (serialised across processes)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._migration_lock(), self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(724001)"))
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(724001)"))
                    connection.commit()
            return
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate.lock", "w") as handle:  # noqa: PTH123
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.stop()
        self.engine.dispose()

    # -- subscriptions ----------------------------------------------------------------------

    def add_subscription(self, **values: Any) -> None:
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                insert(Subscription).values(created_at=now, updated_at=now, **values)
            )

    def subscription(self, subscription_id: str) -> Row | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(Subscription).where(Subscription.id == subscription_id)
            ).first()

    def subscriptions(self) -> Sequence[Row]:
        with self.engine.connect() as connection:
            return connection.execute(select(Subscription).order_by(Subscription.created_at)).all()

    def update_subscription(self, subscription_id: str, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(Subscription)
                .where(Subscription.id == subscription_id)
                .values(updated_at=utcnow(), **values)
            )

    def count_recovery(self, subscription_id: str) -> None:
        """A reconciliation ran for a gap this subscription had."""
        with self.engine.begin() as connection:
            connection.execute(
                update(Subscription)
                .where(Subscription.id == subscription_id)
                .values(gaps_recovered=Subscription.gaps_recovered + 1)
            )

    # -- intake: one transaction per notification -------------------------------------------

    def record_notification(
        self,
        subscription_id: str,
        kind: str,
        *,
        events: Iterable[tuple[int | None, str | None]] = (),
        events_since: int | None = None,
        now: datetime | None = None,
    ) -> IntakeResult:
        """Record a notification and create a job per Encounter it names (deduplicated).

        ``events`` are (event number, focus ``Type/id``) pairs; a rest-hook notification is one
        event without a number. An Encounter that already has a job waiting to start gets no
        second one: the waiting job re-reads the Encounter anyway.
        """
        (result,) = self.record_notifications(
            [Received(subscription_id, kind, tuple(events), events_since)], now=now
        )
        return result

    def record_notifications(
        self, notifications: Sequence[Received], *, now: datetime | None = None
    ) -> list[IntakeResult]:
        """Record several notifications in one transaction, each exactly as
        ``record_notification`` would in this order; one result per notification.

        This is the webhook's hot path (it commits the notifications that arrive together as
        one group): one short transaction of Core statements compiled once and run on the
        driver's cursor (``_Intake``). Each notification first updates its subscription's
        counters, which takes the subscription's write lock (SQLite) or row lock (PostgreSQL)
        before ``events_since`` is read, so concurrent notifications of one subscription see
        each other's event numbers.
        """
        now = now or utcnow()
        if self._checkpoints is not None:
            self._checkpoints.ensure_running()  # in this process (gunicorn forks after import)
        # Subscriptions in id order (each one's notifications in arrival order): transactions
        # that lock several subscriptions' rows then always lock them in the same order, so
        # two batches on PostgreSQL cannot deadlock.
        order = sorted(range(len(notifications)), key=lambda i: notifications[i].subscription_id)
        results: list[IntakeResult | None] = [None] * len(notifications)
        with self._intake(), _Intake(self) as connection:
            for index in order:
                results[index] = self._record(connection, notifications[index], now)
        return results  # type: ignore[return-value]  # every slot filled

    def _record(self, connection: _Intake, received: Received, now: datetime) -> IntakeResult:
        subscription_id, kind, events = received.subscription_id, received.kind, received.events
        new_jobs: list[str] = []
        notes: list[str] = []
        touch = _TOUCH_HEARTBEAT if kind == "heartbeat" else _TOUCH
        row = connection.execute(touch, {"sid": subscription_id, "now": now}).first()
        last_seen = (row.events_since or 0) if row else 0
        numbers = sorted({n for n, _ in events if n is not None})
        since = received.events_since
        gap = _missing(last_seen, numbers, since)
        highest = max([last_seen, *numbers, *([since] if since else [])])
        if row is not None and (highest != last_seen or gap):
            connection.execute(
                _COUNT_EVENTS,
                {"sid": subscription_id, "highest": highest, "gaps": 1 if gap else 0},
            )
        # Numbers at or below the high-water mark are duplicates, or late arrivals that fill
        # an earlier gap: only the event table can tell which.
        late = [n for n in numbers if n <= last_seen]
        seen = {
            number
            for number in late
            if connection.execute(_SEEN_EVENTS, {"sid": subscription_id, "number": number}).first()
        }
        rows: list[dict[str, Any]] = []
        for index, (number, focus) in enumerate(events or [(None, None)]):
            job_id = None
            note = f"gap: events {gap[0]}-{gap[1]} missing" if gap and index == 0 else None
            if number is not None and number in seen:
                note = f"event {number} already received"
            elif focus and focus.startswith("Encounter/"):
                if number is not None and number <= last_seen:
                    note = f"event {number} arrived late"
                job_id = self._job_for(
                    connection,
                    focus.removeprefix("Encounter/"),
                    "notification",
                    subscription_id,
                    now,
                    new_jobs,
                )
            seen.add(number)
            if note:
                notes.append(note)
            rows.append(
                {
                    "subscription_id": subscription_id,
                    "received_at": now,
                    "kind": kind,
                    "event_number": number,
                    "focus": focus,
                    "job_id": job_id,
                    "note": note,
                }
            )
        connection.execute(_ADD_EVENT, rows)
        reconcile = (
            bool(gap)
            or kind == "ping"
            or (kind == "event-notification" and any(focus is None for _, focus in events))
        )
        return IntakeResult(len(rows), tuple(dict.fromkeys(new_jobs)), gap, reconcile, tuple(notes))

    def _prepared(self, statement: Any, keys: Iterable[str]) -> _Prepared:
        key = (id(statement), tuple(keys))
        prepared = self._statements.get(key)
        if prepared is None:
            prepared = self._statements[key] = _Prepared(statement, key[1], self.engine.dialect)
        return prepared

    def _intake(self) -> contextlib.AbstractContextManager[Any]:
        """SQLite: intake transactions queue on a file lock, which hands over the moment it is
        released; SQLite's own busy handler polls with sleeps of 1, 2, 5, 10 ms and more, and
        with several gunicorn workers writing at once those sleeps were the latency.
        PostgreSQL queues writers on the subscription's row lock already."""
        return self._intake_lock or contextlib.nullcontext()

    def _job_for(
        self,
        connection: Any,
        encounter_id: str,
        source: str,
        subscription_id: str | None,
        now: datetime,
        to_enqueue: list[str],
    ) -> str:
        """The Encounter's waiting job, or a new one; adds it to ``to_enqueue`` if this caller
        must send it (new, or never successfully enqueued)."""
        waiting = next(
            (
                job
                for job in connection.execute(_JOBS_OF_ENCOUNTER, {"encounter": encounter_id}).all()
                if job.state == "received"
            ),
            None,
        )
        if waiting:
            claimed = connection.execute(_CLAIM_JOB, {"job": waiting.id, "now": now})
            if claimed.rowcount:
                to_enqueue.append(waiting.id)
            return waiting.id
        job_id = _time_ordered_id()
        connection.execute(
            _ADD_JOB,
            {
                "id": job_id,
                "encounter_id": encounter_id,
                "kind": "discharge",
                "state": "received",
                "source": source,
                "subscription_id": subscription_id,
                "created_at": now,
                "updated_at": now,
                "enqueued_at": now,
                "attempts": 0,
                "regeneration": 0,
                "timings": {},
            },
        )
        to_enqueue.append(job_id)
        return job_id

    def unclaim_enqueue(self, job_ids: Sequence[str]) -> None:
        """The broker refused these jobs: let the next delivery (or the sweeper) send them."""
        if job_ids:
            with self.engine.begin() as connection:
                connection.execute(
                    update(Job)
                    .where(Job.id.in_(list(job_ids)), Job.state == "received")
                    .values(enqueued_at=None)
                )

    def stalled_jobs(self, older_than: datetime) -> list[str]:
        """Waiting jobs nobody enqueued (a crash between commit and send): claim them."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(Job.id, Job.enqueued_at).where(
                    Job.state == "received", Job.enqueued_at.is_(None), Job.updated_at < older_than
                )
            ).all()
        return self.reclaim_enqueue([(row.id, row.enqueued_at) for row in rows], utcnow())

    def waiting_since(self, enqueued_before: datetime) -> list[tuple[str, datetime]]:
        """Jobs handed to the broker before ``enqueued_before`` that have not started yet."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(Job.id, Job.enqueued_at)
                .where(Job.state == "received", Job.enqueued_at < enqueued_before)
                .order_by(Job.enqueued_at)
            ).all()
        return [(row.id, row.enqueued_at) for row in rows]

    def reclaim_enqueue(
        self, jobs: Sequence[tuple[str, datetime | None]], now: datetime
    ) -> list[str]:
        """Claim jobs (id, the ``enqueued_at`` seen, None for never) for sending; a job another
        sweeper claimed meanwhile, or that started, is left out."""
        claimed = []
        with self.engine.begin() as connection:
            for job_id, seen in jobs:
                result = connection.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == "received", Job.enqueued_at == seen)
                    .values(enqueued_at=now)
                )
                if result.rowcount:
                    claimed.append(job_id)
        return claimed

    # -- jobs -------------------------------------------------------------------------------

    def create_job(
        self,
        encounter_id: str,
        *,
        source: str,
        subscription_id: str | None = None,
        regeneration: int = 0,
    ) -> tuple[str, bool]:
        """A job for an Encounter: (job id, whether the caller must enqueue it)."""
        to_enqueue: list[str] = []
        now = utcnow()
        with self.engine.begin() as connection:
            if not regeneration:
                job_id = self._job_for(
                    connection, encounter_id, source, subscription_id, now, to_enqueue
                )
                return job_id, bool(to_enqueue)
            job_id = uuid.uuid4().hex
            connection.execute(
                insert(Job).values(
                    id=job_id,
                    encounter_id=encounter_id,
                    kind="discharge",
                    state="received",
                    source=source,
                    subscription_id=subscription_id,
                    created_at=now,
                    updated_at=now,
                    enqueued_at=now,
                    attempts=0,
                    regeneration=regeneration,
                    timings={},
                )
            )
        return job_id, True

    def job(self, job_id: str) -> Row | None:
        with self.engine.connect() as connection:
            return connection.execute(select(Job).where(Job.id == job_id)).first()

    def jobs(
        self, *, state: str | None = None, encounter_id: str | None = None, limit: int = 100
    ) -> Sequence[Row]:
        query = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if state:
            query = query.where(Job.state == state)
        if encounter_id:
            query = query.where(Job.encounter_id == encounter_id)
        with self.engine.connect() as connection:
            return connection.execute(query).all()

    def transition(self, job_id: str, state: str, **values: Any) -> Row:
        """Move a job to ``state`` (checked against the state machine) and set fields."""
        now = utcnow()
        with self.engine.begin() as connection:
            current = connection.execute(select(Job).where(Job.id == job_id)).first()
            if current is None:
                raise KeyError(f"no job {job_id}")
            if state != current.state and state not in _NEXT[current.state]:
                raise ValueError(f"job {job_id}: {current.state} -> {state} is not allowed")
            if state in FINAL_STATES:
                values.setdefault("finished_at", now)
            connection.execute(
                update(Job).where(Job.id == job_id).values(state=state, updated_at=now, **values)
            )
            return connection.execute(select(Job).where(Job.id == job_id)).one()

    def advance(self, job_id: str, expected: Sequence[str], state: str, **values: Any) -> bool:
        """Move a job from one of ``expected`` to ``state`` atomically; False if it was not there.

        Two deliveries of the same message race safely: only one of them advances the job.
        """
        for current in expected:
            if state != current and state not in _NEXT[current]:
                raise ValueError(f"job {job_id}: {current} -> {state} is not allowed")
        now = utcnow()
        if state in FINAL_STATES:
            values.setdefault("finished_at", now)
        with self.engine.begin() as connection:
            result = connection.execute(
                update(Job)
                .where(Job.id == job_id, Job.state.in_(list(expected)))
                .values(state=state, updated_at=now, **values)
            )
            return bool(result.rowcount)

    def add_timing(self, job_id: str, step: str, milliseconds: float) -> None:
        with self.engine.begin() as connection:
            row = connection.execute(select(Job.timings).where(Job.id == job_id)).one()
            timings = dict(row.timings or {})
            timings[step] = round(timings.get(step, 0.0) + milliseconds, 3)
            connection.execute(update(Job).where(Job.id == job_id).values(timings=timings))

    def count_attempt(self, job_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(Job).where(Job.id == job_id).values(attempts=Job.attempts + 1)
            )

    def claim_draft(
        self, job_id: str, encounter_id: str, version: str, regeneration: int = 0
    ) -> str | None:
        """Claim (encounter, version) for a job: None if granted, else the holding job id."""
        with self.engine.begin() as connection:
            try:
                with connection.begin_nested():
                    connection.execute(
                        insert(Draft).values(
                            encounter_id=encounter_id,
                            encounter_version=version,
                            kind="discharge",
                            regeneration=regeneration,
                            job_id=job_id,
                            created_at=utcnow(),
                        )
                    )
            except IntegrityError:
                holder = connection.execute(
                    select(Draft.job_id).where(
                        Draft.encounter_id == encounter_id,
                        Draft.encounter_version == version,
                        Draft.kind == "discharge",
                        Draft.regeneration == regeneration,
                    )
                ).one()
                return None if holder.job_id == job_id else holder.job_id
        return None

    def release_draft(self, job_id: str) -> None:
        """Give up a claim (the job failed): a later job may draft this version."""
        with self.engine.begin() as connection:
            connection.execute(
                delete(Draft).where(Draft.job_id == job_id, Draft.document_reference.is_(None))
            )

    def record_written(self, job_id: str, document_reference: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(Draft)
                .where(Draft.job_id == job_id)
                .values(document_reference=document_reference)
            )

    def latest_written(self, encounter_id: str, *, other_than: str) -> str | None:
        """The newest DocumentReference we wrote for an Encounter (for ``relatesTo.replaces``)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(Draft.document_reference)
                .where(
                    Draft.encounter_id == encounter_id,
                    Draft.document_reference.is_not(None),
                    Draft.job_id != other_than,
                )
                .order_by(Draft.created_at.desc())
                .limit(1)
            ).first()
        return row.document_reference if row else None

    def drafted_versions(self, encounter_ids: Iterable[str]) -> dict[str, set[str]]:
        """Versions already claimed per Encounter (reconciliation skips those)."""
        ids = list(encounter_ids)
        found: dict[str, set[str]] = {}
        if not ids:
            return found
        with self.engine.connect() as connection:
            for row in connection.execute(
                select(Draft.encounter_id, Draft.encounter_version).where(
                    Draft.encounter_id.in_(ids)
                )
            ):
                found.setdefault(row.encounter_id, set()).add(row.encounter_version)
        return found

    def active_job_encounters(self, encounter_ids: Iterable[str]) -> set[str]:
        ids = list(encounter_ids)
        if not ids:
            return set()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(Job.encounter_id).where(
                    Job.encounter_id.in_(ids), Job.state.in_(ACTIVE_STATES)
                )
            )
            return {row.encounter_id for row in rows}

    def state_counts(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(Job.state, func.count()).group_by(Job.state))
            return {state: count for state, count in rows}

    # -- artifacts --------------------------------------------------------------------------

    def put_artifact(self, job_id: str, name: str, body: bytes) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                delete(JobArtifact).where(JobArtifact.job_id == job_id, JobArtifact.name == name)
            )
            connection.execute(
                insert(JobArtifact).values(job_id=job_id, name=name, body=body, created_at=utcnow())
            )

    def artifact(self, job_id: str, name: str) -> bytes | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(JobArtifact.body).where(
                    JobArtifact.job_id == job_id, JobArtifact.name == name
                )
            ).first()
        return row.body if row else None

    def drop_artifacts(self, job_id: str, names: Sequence[str]) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                delete(JobArtifact).where(JobArtifact.job_id == job_id, JobArtifact.name.in_(names))
            )

    # -- audit and small values -------------------------------------------------------------

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

    def events(self, subscription_id: str | None = None, limit: int = 100) -> Sequence[Row]:
        query = select(NotificationEvent).order_by(NotificationEvent.id.desc()).limit(limit)
        if subscription_id:
            query = query.where(NotificationEvent.subscription_id == subscription_id)
        with self.engine.connect() as connection:
            return connection.execute(query).all()

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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Several processes share the file: WAL lets readers and one writer work at once, and the
    # busy timeout waits for a lock instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _no_commit_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # _Checkpoints does it
    # Under load without a pause the WAL cannot restart from its beginning; once it can, the
    # file is cut back to this size.
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.close()


class _Prepared:
    """A Core statement compiled once for a dialect: its SQL, the order of its parameters and
    the type processors SQLAlchemy would apply to them (dates for SQLite, JSON).

    ``parameters`` gives what ``compiled.construct_params`` would (a test compares them), from
    a plan made here: which parameters come from the caller's values and which are fixed
    (``notifications + 1``); construct_params works that out again on every call."""

    def __init__(self, statement: Any, keys: tuple[str, ...], dialect: Any) -> None:
        self.compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)
        self.sql: str = self.compiled.string
        self.order = self.compiled.positiontup if self.compiled.positional else None
        self.processors: dict[str, Any] = {}
        for name, bind in self.compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor
        self.row: Any = None  # a namedtuple of the columns it returns, made on first use
        binds = self.compiled.binds
        probe = self.compiled.construct_params({}, _check=False)
        self.given = [name for name in probe if binds[name].required]
        self.fixed = {name: value for name, value in probe.items() if name not in self.given}
        self.planned = all(binds[name].key == name for name in self.given) and not any(
            binds[name].callable for name in probe
        )

    def parameters(self, values: Mapping[str, Any]) -> Any:
        if self.planned:
            params = dict(self.fixed)
            for name in self.given:
                params[name] = values[name]
        else:
            params = self.compiled.construct_params(values)
        for name, processor in self.processors.items():
            params[name] = processor(params[name])
        return params if self.order is None else tuple(params[name] for name in self.order)


class _Result:
    """What the intake reads back: rows with attribute access, and the rowcount."""

    def __init__(self, cursor: Any, prepared: _Prepared) -> None:
        self.rowcount = cursor.rowcount
        self._rows: list[Any] = []
        if cursor.description:
            if prepared.row is None:
                prepared.row = namedtuple("Row", [c[0] for c in cursor.description])
            self._rows = [prepared.row._make(r) for r in cursor.fetchall()]

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def all(self) -> list[Any]:
        return self._rows


class _Intake:
    """One transaction on a pooled DBAPI connection, running prepared statements straight on
    the driver's cursor (whose statement cache prepares each SQL once per connection):
    SQLAlchemy's per-execution work (cache key, parameter processing, result objects) cost
    more than SQLite's own. Errors come out as SQLAlchemy's, like every other store call."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dialect = store.engine.dialect

    def __enter__(self) -> _Intake:
        self.connection = self.store.engine.raw_connection()
        self.cursor = self.connection.cursor()
        return self

    def execute(self, statement: Any, values: Mapping[str, Any] | list[dict[str, Any]]) -> Any:
        rows = values if isinstance(values, list) else [values]
        keys = rows[0] if getattr(statement, "is_insert", False) else ()
        prepared = self.store._prepared(statement, keys)
        try:
            if len(rows) == 1:
                self.cursor.execute(prepared.sql, prepared.parameters(rows[0]))
                return _Result(self.cursor, prepared)
            self.cursor.executemany(prepared.sql, [prepared.parameters(r) for r in rows])
            return _Result(self.cursor, prepared)
        except self.dialect.loaded_dbapi.Error as exc:
            self._raise(exc, prepared.sql, rows)
            raise

    def _raise(self, exc: BaseException, sql: str, rows: Any) -> None:
        if self.dialect.is_disconnect(exc, self.connection.dbapi_connection, self.cursor):
            self.connection.invalidate(exc)
        raise DBAPIError.instance(
            sql, rows, exc, self.dialect.loaded_dbapi.Error, hide_parameters=True,
            dialect=self.dialect,
        ) from exc  # fmt: skip

    def __exit__(self, exc_type: Any, exc: Any, _tb: Any) -> None:
        try:
            if exc_type is None:
                try:
                    self.connection.commit()
                except self.dialect.loaded_dbapi.Error as error:
                    self._raise(error, "COMMIT", None)
            else:
                with contextlib.suppress(Exception):
                    self.connection.rollback()
        finally:
            with contextlib.suppress(Exception):
                self.cursor.close()
            self.connection.close()


class _FileLock:
    """An exclusive lock shared by this machine's processes (flock) and a process's threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd = -1
        self._pid: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._pid != os.getpid():  # a forked child opens its own (flock is per open file)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
                weakref.finalize(self, os.close, self._fd)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class _Checkpoints:
    """A daemon thread per process that checkpoints a SQLite WAL every ``interval`` seconds.

    PASSIVE checkpoints wait for no reader or writer, and the fsync they end with happens here,
    off the request path (the sqlite3 module releases the GIL while SQLite works). Several
    processes may each run one: a checkpoint that finds another in progress returns at once.

    Under sustained load the WAL never gets back to its beginning (a writer restarts it only
    when every frame has been copied back, and new ones arrive during each checkpoint's fsync),
    so once it passes ``restart_bytes`` one checkpoint runs holding the intake lock: intake
    writers queue behind it for one short checkpoint, and the next one starts the WAL anew
    (``journal_size_limit`` then cuts the file back).
    """

    def __init__(
        self,
        path: str,
        lock: _FileLock | None,
        interval: float = 0.25,
        restart_bytes: int = 256 * 2**20,
    ) -> None:
        self.path = path
        self.lock = lock
        self.interval = interval
        self.restart_bytes = restart_bytes
        self._pid: int | None = None
        self._stop = threading.Event()
        self._mutex = threading.Lock()

    def ensure_running(self) -> None:
        if self._pid == os.getpid():
            return
        with self._mutex:
            if self._pid != os.getpid():
                self._stop = threading.Event()
                thread = threading.Thread(  # holds no reference to self: stops when it goes
                    target=_checkpoint_loop,
                    args=(self.path, self.lock, self.interval, self.restart_bytes, self._stop),
                    name="fhirgen-sqlite-checkpoints",
                    daemon=True,
                )
                thread.start()
                weakref.finalize(self, self._stop.set)
                self._pid = os.getpid()

    def stop(self) -> None:
        self._stop.set()
        self._pid = None


def _checkpoint_loop(
    path: str, lock: _FileLock | None, interval: float, restart_bytes: int, stop: threading.Event
) -> None:
    connection = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    wal = Path(f"{path}-wal")
    try:
        while not stop.wait(interval):
            with contextlib.suppress(sqlite3.Error, OSError):
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if lock is not None and wal.stat().st_size > restart_bytes:
                    with lock:
                        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        connection.close()


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached right now (answer 503)."""
    return isinstance(exc, OperationalError)


def mapping(row: Row | None) -> Mapping[str, Any] | None:
    return dict(row._mapping) if row is not None else None
