"""The webhook's hot path into the store: notifications recorded, jobs made, in few statements.

``record`` works out a group of notifications in Python (event numbers, gaps, duplicates,
which Encounters need a job) around a handful of prepared statements run straight on the
driver's cursor (``Transaction``): SQLAlchemy's per-execution work cost more than SQLite's own.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import DateTime, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError

from fhirgen.store.models import Job, NotificationEvent, Subscription

# The intake's statements, built once: Core (not ORM-enabled) statements on the tables with
# bound parameters, compiled once per dialect (``Prepared``) and run on the driver's cursor,
# whose statement cache prepares each of them once per connection.
_SUBSCRIPTIONS = Subscription.__table__
_JOBS = Job.__table__
_TOUCH = (
    update(_SUBSCRIPTIONS)
    .where(_SUBSCRIPTIONS.c.id == bindparam("sid"))
    .values(
        notifications=_SUBSCRIPTIONS.c.notifications + bindparam("count"),
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
_SET_STATUS = (
    update(_SUBSCRIPTIONS)
    .where(_SUBSCRIPTIONS.c.id == bindparam("sid"))
    .values(status=bindparam("status"), error=bindparam("error"))
)
_STATUS_ERRORS = {"active": None, "error": "EHR reports an error"}
# By encounter only, state filtered here: with ``state = 'received'`` in the WHERE clause SQLite
# picked the (state, created_at) index and scanned every waiting job, so intake slowed down as
# the backlog grew (1.2 ms at 2,000 waiting jobs). An encounter has few jobs.
_LOOKUP_CHUNK = 32  # encounters per lookup: at most this many variants of it get compiled


@cache
def _jobs_of_encounters(count: int) -> Any:
    """The jobs of ``count`` encounters (parameters e0, e1, …)."""
    wanted = [bindparam(f"e{i}") for i in range(count)]
    return select(_JOBS.c.id, _JOBS.c.state, _JOBS.c.encounter_id).where(
        _JOBS.c.encounter_id.in_(wanted)
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


def time_ordered_id() -> str:
    """A new job id: 32 hex digits like ``uuid4().hex``, laid out as a UUIDv7 (48-bit
    millisecond time, then 74 random bits), so new ids land at the end of the jobs' primary-key
    index instead of on a random page of it: one page written per insert, not a new one each
    time, in SQLite's WAL and in PostgreSQL's B-tree alike."""
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | secrets.randbits(76)
    value = value & ~(0xC << 60) | 0x8 << 60  # the RFC 9562 variant bits
    return f"{value:032x}"


class Received(NamedTuple):
    """One notification as the store records it: which subscription, what kind, its events
    as (event number, focus ``Type/id``) pairs, the count it reports, if any, and the status
    it gives the subscription, if any (``active`` after a handshake, ``error``)."""

    subscription_id: str
    kind: str
    events: tuple[tuple[int | None, str | None], ...] = ()
    events_since: int | None = None
    status: str | None = None


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


def record(
    transaction: Transaction, notifications: Sequence[Received], now: datetime
) -> list[IntakeResult]:
    """Record ``notifications`` in ``transaction``: each exactly as if recorded alone in this
    order (a test compares the two), in a handful of statements for the whole group: per
    subscription one update that locks its row and one that moves its event count, one lookup
    of the encounters' jobs, one insert of the new jobs and one of the events.

    Subscriptions are locked in id order (each one's notifications worked through in arrival
    order), waiting jobs claimed in id order: transactions that lock several rows lock them in
    the same order, so two groups on PostgreSQL cannot deadlock.
    """
    groups: dict[str, list[int]] = {}
    for index, received in enumerate(notifications):
        groups.setdefault(received.subscription_id, []).append(index)
    by_index: dict[int, _Planned] = {}
    for subscription_id in sorted(groups):
        indexes = groups[subscription_id]
        group = [notifications[i] for i in indexes]
        plans = _plan_subscription(transaction, subscription_id, group, now)
        by_index.update(zip(indexes, plans, strict=True))
    planned = [by_index[index] for index in range(len(notifications))]
    # Jobs and events in arrival order, as one at a time would have them.
    jobs = Jobs(transaction, now, "notification")
    jobs.look_up(
        row["focus"].removeprefix("Encounter/")
        for plan in planned
        for row, wanted in zip(plan.rows, plan.wants_job, strict=True)
        if wanted
    )
    sends: list[list[str]] = []
    for received, plan in zip(notifications, planned, strict=True):
        to_enqueue: list[str] = []
        for row, wanted in zip(plan.rows, plan.wants_job, strict=True):
            if wanted:
                row["job_id"] = jobs.job_for(
                    row["focus"].removeprefix("Encounter/"), received.subscription_id, to_enqueue
                )
        sends.append(to_enqueue)
    unsent = jobs.write()
    transaction.execute(_ADD_EVENT, [row for plan in planned for row in plan.rows])
    return [
        IntakeResult(
            len(plan.rows),
            tuple(dict.fromkeys(job for job in to_enqueue if job not in unsent)),
            plan.gap,
            plan.reconcile,
            plan.notes,
        )
        for plan, to_enqueue in zip(planned, sends, strict=True)
    ]


class _Planned(NamedTuple):
    """One notification worked out, all but its jobs: its event rows (job ids to come), for
    each whether it needs a job, the gap it shows, its notes."""

    rows: list[dict[str, Any]]
    wants_job: list[bool]
    gap: tuple[int, int] | None
    reconcile: bool
    notes: tuple[str, ...]


def _plan_subscription(
    transaction: Transaction, subscription_id: str, group: list[Received], now: datetime
) -> list[_Planned]:
    """One subscription's notifications, in order: counters, gaps, duplicates and late events.

    The update that counts them takes the subscription's write lock (SQLite) or row lock
    (PostgreSQL) before ``events_since`` is read, so concurrent groups see each other's event
    numbers."""
    heartbeat = any(received.kind == "heartbeat" for received in group)
    touch = _TOUCH_HEARTBEAT if heartbeat else _TOUCH
    row = transaction.execute(
        touch, {"sid": subscription_id, "now": now, "count": len(group)}
    ).first()
    first_seen = last_seen = (row.events_since or 0) if row else 0
    gaps = 0
    numbered: set[int] = set()  # event numbers recorded by this group so far
    planned = []
    for received in group:
        kind, events, since = received.kind, received.events, received.events_since
        numbers = sorted({n for n, _ in events if n is not None})
        gap = _missing(last_seen, numbers, since)
        highest = max([last_seen, *numbers, *([since] if since else [])])
        # Numbers at or below the high-water mark are duplicates, or late arrivals that fill
        # an earlier gap: only the recorded events can tell which.
        seen = {
            number
            for number in numbers
            if number <= last_seen
            and (
                number in numbered
                or transaction.execute(
                    _SEEN_EVENTS, {"sid": subscription_id, "number": number}
                ).first()
            )
        }
        rows: list[dict[str, Any]] = []
        wants: list[bool] = []
        notes: list[str] = []
        for index, (number, focus) in enumerate(events or [(None, None)]):
            wants_job = False
            note = f"gap: events {gap[0]}-{gap[1]} missing" if gap and index == 0 else None
            if number is not None and number in seen:
                note = f"event {number} already received"
            elif focus and focus.startswith("Encounter/"):
                if number is not None and number <= last_seen:
                    note = f"event {number} arrived late"
                wants_job = True
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
                    "job_id": None,
                    "note": note,
                }
            )
            wants.append(wants_job)
        numbered.update(n for n, _ in events if n is not None)
        if row is not None:  # an unknown subscription keeps no count
            gaps += 1 if gap else 0
            last_seen = highest
        reconcile = (
            bool(gap)
            or kind == "ping"
            or (kind == "event-notification" and any(focus is None for _, focus in events))
        )
        planned.append(_Planned(rows, wants, gap, reconcile, tuple(notes)))
    if row is not None and (last_seen != first_seen or gaps):
        transaction.execute(
            _COUNT_EVENTS, {"sid": subscription_id, "highest": last_seen, "gaps": gaps}
        )
    statuses = [received.status for received in group if received.status]
    if row is not None and statuses:  # the last one said is the one that holds
        status = statuses[-1]
        transaction.execute(
            _SET_STATUS,
            {"sid": subscription_id, "status": status, "error": _STATUS_ERRORS.get(status)},
        )
    return planned


class Jobs:
    """A group's jobs: an Encounter's waiting job is reused (and claimed for sending if no one
    has sent it yet), else a new one is made; all looked up at once, all new ones inserted
    at once."""

    def __init__(self, transaction: Any, now: datetime, source: str) -> None:
        """``transaction``: a ``Transaction``, or a SQLAlchemy connection in a transaction."""
        self.transaction = transaction
        self.now = now
        self.source = source
        self.waiting: dict[str, Any] = {}  # encounter -> its waiting job as looked up
        self.decided: dict[str, str] = {}  # encounter -> the job this group settled on
        self.new: list[dict[str, Any]] = []
        self.claims: list[str] = []  # waiting jobs to claim for sending

    def look_up(self, encounters: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(encounters))
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
            values = {f"e{i}": encounter for i, encounter in enumerate(chunk)}
            for job in self.transaction.execute(_jobs_of_encounters(len(chunk)), values).all():
                if job.state == "received":
                    self.waiting.setdefault(job.encounter_id, job)

    def job_for(self, encounter_id: str, subscription_id: str | None, to_enqueue: list[str]) -> str:
        """The Encounter's job (looked up first); adds it to ``to_enqueue`` if this caller
        must send it: new, or never successfully enqueued (``write`` tells which were)."""
        decided = self.decided.get(encounter_id)
        if decided is not None:  # an earlier notification of this group claimed or made it
            return decided
        waiting = self.waiting.get(encounter_id)
        if waiting is not None:
            job_id = waiting.id
            self.claims.append(job_id)
        else:
            job_id = time_ordered_id()
            self.new.append(new_job(job_id, encounter_id, self.source, subscription_id, self.now))
        to_enqueue.append(job_id)
        self.decided[encounter_id] = job_id
        return job_id

    def write(self) -> set[str]:
        """Insert the new jobs and claim the waiting ones for sending; returns the waiting
        jobs someone has already sent (their callers must not send them again).

        Claims run in job id order: two groups claiming the same jobs lock their rows in the
        same order (PostgreSQL), so they cannot deadlock."""
        if self.new:
            self.transaction.execute(_ADD_JOB, self.new)
        unsent = set()
        for job_id in sorted(self.claims):
            claimed = self.transaction.execute(_CLAIM_JOB, {"job": job_id, "now": self.now})
            if not claimed.rowcount:
                unsent.add(job_id)
        return unsent


def new_job(
    job_id: str, encounter_id: str, source: str, subscription_id: str | None, now: datetime
) -> dict[str, Any]:
    """The row of a new job, waiting and claimed for sending."""
    return {
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
    }


class Prepared:
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
                self.processors[name] = _shared(processor, bind.type, dialect)
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


_NOTHING = object()
_INSTANT_PROCESSORS: dict[tuple[str, type, str], Any] = {}


def _shared(processor: Any, type_: Any, dialect: Any) -> Any:
    """For a datetime type, one processor per dialect and type (``_same_instant_once``), which
    every statement binding it shares: a group binds its ``now`` in five parameters of four
    statements, and the UTC conversion and SQLite's text cost ~4 µs each time."""
    if not isinstance(getattr(type_, "impl_instance", type_), DateTime):
        return processor
    key = (dialect.name, type(type_), repr(type_))  # the repr names the type's options
    return _INSTANT_PROCESSORS.setdefault(key, _same_instant_once(processor))


def _same_instant_once(processor: Any) -> Any:
    """``processor``, remembering its last datetime and what it gave for it."""
    last: tuple[Any, Any] = (_NOTHING, None)  # replaced whole: no thread sees half of it

    def process(value: Any) -> Any:
        nonlocal last
        seen = last
        if seen[0] is value:
            return seen[1]
        result = processor(value)
        if type(value) is datetime:  # immutable: the same object always gives the same text
            last = (value, result)
        return result

    return process


class _Result:
    """What the intake reads back: rows with attribute access, and the rowcount."""

    def __init__(self, cursor: Any, prepared: Prepared) -> None:
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


class Transaction:
    """One transaction on a DBAPI connection, running prepared statements straight on the
    driver's cursor (whose statement cache prepares each SQL once per connection):
    SQLAlchemy's per-execution work (cache key, parameter processing, result objects) cost
    more than SQLite's own. Errors come out as SQLAlchemy's, like every other store call.

    ``connection``: one the caller keeps between transactions (committed or rolled back
    here, not closed); without it, one from the pool, returned at the end."""

    def __init__(self, store: Any, connection: Any = None) -> None:
        self.store = store
        self.dialect = store.engine.dialect
        self.kept = connection

    def __enter__(self) -> Transaction:
        self.connection = self.kept if self.kept is not None else self.store.engine.raw_connection()
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
                    with contextlib.suppress(Exception):
                        self.connection.rollback()
                    self._raise(error, "COMMIT", None)
            else:
                with contextlib.suppress(Exception):
                    self.connection.rollback()
        finally:
            with contextlib.suppress(Exception):
                self.cursor.close()
            if self.kept is None:
                self.connection.close()
