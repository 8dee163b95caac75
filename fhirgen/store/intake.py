"""Recording notifications: event numbers, gaps, duplicates, and which Encounters need a job.

``record`` works a group of notifications out in Python around a handful of SQLAlchemy Core
statements run on the caller's connection, inside the caller's transaction (one per request).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, insert, select, update

from fhirgen.errors import SubscriptionInactive
from fhirgen.store.models import Base

# The intake's statements: Core statements on the tables with bound parameters (named apart
# from the columns: an UPDATE reads a parameter named like a column as that column's value).
_SUBSCRIPTIONS = Base.metadata.tables["subscriptions"]
_JOBS = Base.metadata.tables["jobs"]
_TOUCH = (
    update(_SUBSCRIPTIONS)
    .where(_SUBSCRIPTIONS.c.id == bindparam("sid"))
    .values(
        notifications=_SUBSCRIPTIONS.c.notifications + bindparam("count"),
        last_notification_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(_SUBSCRIPTIONS.c.events_since, _SUBSCRIPTIONS.c.status)
)
# A notification for one of these is refused in the transaction that would record it.
INACTIVE = ("off", "paused")
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
    .values(status=bindparam("new_status"), error=bindparam("new_error"))
)
_STATUS_ERRORS = {"active": None, "error": "EHR reports an error"}
# By encounter only, state filtered here: with ``state = 'received'`` in the WHERE clause SQLite
# picked the (state, created_at) index and scanned every waiting job. An encounter has few jobs.
_JOBS_OF_ENCOUNTERS = select(_JOBS.c.id, _JOBS.c.state, _JOBS.c.encounter_id).where(
    _JOBS.c.encounter_id.in_(bindparam("encounters", expanding=True))
)
_EVENTS = Base.metadata.tables["notification_events"]
_SEEN_EVENTS = select(_EVENTS.c.id).where(
    _EVENTS.c.subscription_id == bindparam("sid"),
    _EVENTS.c.event_number == bindparam("number"),
)
# The (encounter, version) claims of fhirgen.service.jobs.read: a version with one is drafted or
# being drafted (a failed job gives its claim up). By the primary key's leading column.
_DRAFTS = Base.metadata.tables["drafts"]
_DRAFTED = select(_DRAFTS.c.encounter_id, _DRAFTS.c.encounter_version, _DRAFTS.c.job_id).where(
    _DRAFTS.c.encounter_id.in_(bindparam("encounters", expanding=True)),
    _DRAFTS.c.kind == "discharge",
)
_ADD_JOB = insert(_JOBS)
_ADD_EVENT = insert(_EVENTS)


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
    return None if first is None or last is None else (first, last)


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
    as (event number, focus ``Type/id``) pairs, the count it reports, if any, the status it
    gives the subscription, if any (``active`` after a handshake, ``error``), and the versions
    it names foci at, as (focus ``Type/id``, version) pairs (a payload's ``meta.versionId``)."""

    subscription_id: str
    kind: str
    events: tuple[tuple[int | None, str | None], ...] = ()
    events_since: int | None = None
    status: str | None = None
    versions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class IntakeResult:
    """What recording one notification did: events stored, jobs made, gaps seen.

    ``jobs`` are the jobs this notification made, committed unsent: its caller sends them
    after the commit. A notification for an Encounter that already has a waiting job attaches
    to it and makes none; a waiting job nobody sent is the outbox relay's to send. One that
    names an Encounter version already claimed (drafted or being drafted) makes none either.
    """

    events: int
    jobs: tuple[str, ...]
    gap: tuple[int, int] | None = None  # first and last missing event number
    reconcile: bool = False  # the notification says "something changed" without saying what
    notes: tuple[str, ...] = field(default_factory=tuple)


def record(
    connection: Connection, notifications: Sequence[Received], now: datetime
) -> list[IntakeResult]:
    """Record ``notifications`` on ``connection`` (in the caller's transaction): each exactly
    as if recorded alone in this order (a test compares the two). Per subscription one update
    that locks its row and one that moves its event count, one lookup of the encounters' jobs,
    one insert of the new jobs and one of the events; and one lookup of the claims when an
    event names its Encounter's version.

    Subscriptions are locked in id order (each one's notifications worked through in arrival
    order): transactions that lock several rows lock them in the same order, so two groups on
    PostgreSQL cannot deadlock.
    """
    groups: dict[str, list[int]] = {}
    for index, received in enumerate(notifications):
        groups.setdefault(received.subscription_id, []).append(index)
    by_index: dict[int, _Planned] = {}
    for subscription_id in sorted(groups):
        indexes = groups[subscription_id]
        group = [notifications[i] for i in indexes]
        plans = _plan_subscription(connection, subscription_id, group, now)
        by_index.update(zip(indexes, plans, strict=True))
    planned = [by_index[index] for index in range(len(notifications))]
    planned = _skip_drafted(connection, notifications, planned)
    # Jobs and events in arrival order, as one at a time would have them.
    jobs = Jobs(connection, now, "notification")
    jobs.look_up(
        row["focus"].removeprefix("Encounter/")
        for plan in planned
        for row, wanted in zip(plan.rows, plan.wants_job, strict=True)
        if wanted
    )
    made: list[list[str]] = []
    for received, plan in zip(notifications, planned, strict=True):
        to_send: list[str] = []
        for row, wanted in zip(plan.rows, plan.wants_job, strict=True):
            if wanted:
                row["job_id"] = jobs.job_for(
                    row["focus"].removeprefix("Encounter/"), received.subscription_id, to_send
                )
        made.append(to_send)
    jobs.write()
    connection.execute(_ADD_EVENT, [row for plan in planned for row in plan.rows])
    return [
        IntakeResult(
            len(plan.rows), tuple(dict.fromkeys(to_send)), plan.gap, plan.reconcile, plan.notes
        )
        for plan, to_send in zip(planned, made, strict=True)
    ]


def _skip_drafted(
    connection: Connection, notifications: Sequence[Received], planned: list[_Planned]
) -> list[_Planned]:
    """An event naming an Encounter at a version that is drafted or being drafted (its claim
    is taken) needs no job: the job would read the whole stay only to be skipped. The event
    is recorded, with the claiming job and a note. One look-up for the whole group; none when
    no event names a version."""
    wanted: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for index, (received, plan) in enumerate(zip(notifications, planned, strict=True)):
        versions = dict(received.versions)
        for position, (row, wants) in enumerate(zip(plan.rows, plan.wants_job, strict=True)):
            version = versions.get(row["focus"]) if wants else None
            if version is not None:
                encounter = row["focus"].removeprefix("Encounter/")
                wanted.setdefault((encounter, version), []).append((index, position))
    if not wanted:
        return planned
    encounters = list(dict.fromkeys(encounter for encounter, _ in wanted))
    holders: dict[tuple[str, str], str] = {}
    for claim in connection.execute(_DRAFTED, {"encounters": encounters}):
        holders.setdefault((claim.encounter_id, claim.encounter_version), claim.job_id)
    notes: dict[int, list[str]] = {}
    for key, places in wanted.items():
        holder = holders.get(key)
        if holder is None:
            continue
        for index, position in places:
            plan = planned[index]
            note = f"Encounter version {key[1]} already drafted (job {holder})"
            row = plan.rows[position]
            row["note"] = f"{row['note']}; {note}" if row["note"] else note
            row["job_id"] = holder
            plan.wants_job[position] = False
            notes.setdefault(index, []).append(note)
    return [
        plan._replace(notes=plan.notes + tuple(notes[index])) if index in notes else plan
        for index, plan in enumerate(planned)
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
    connection: Connection, subscription_id: str, group: list[Received], now: datetime
) -> list[_Planned]:
    """One subscription's notifications, in order: counters, gaps, duplicates and late events.

    The update that counts them takes the subscription's write lock (SQLite) or row lock
    (PostgreSQL) before ``events_since`` is read, so concurrent groups see each other's event
    numbers."""
    heartbeat = any(received.kind == "heartbeat" for received in group)
    touch = _TOUCH_HEARTBEAT if heartbeat else _TOUCH
    row = connection.execute(
        touch, {"sid": subscription_id, "now": now, "count": len(group)}
    ).first()
    if row is not None and row.status in INACTIVE:
        # Paused or off since the caller looked (a cached row): the caller's transaction
        # rolls back, so the count above is undone and nothing is recorded.
        raise SubscriptionInactive(subscription_id, row.status)
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
                or connection.execute(
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
            if number is not None:
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
        connection.execute(
            _COUNT_EVENTS, {"sid": subscription_id, "highest": last_seen, "gaps": gaps}
        )
    statuses = [received.status for received in group if received.status]
    if row is not None and statuses:  # the last one said is the one that holds
        status = statuses[-1]
        connection.execute(
            _SET_STATUS,
            {"sid": subscription_id, "new_status": status, "new_error": _STATUS_ERRORS.get(status)},
        )
    return planned


class Jobs:
    """A group's jobs: an Encounter's waiting job is reused, else a new one is made (unsent);
    all looked up at once, all new ones inserted at once."""

    def __init__(self, connection: Connection, now: datetime, source: str) -> None:
        self.connection = connection
        self.now = now
        self.source = source
        self.waiting: dict[str, Any] = {}  # encounter -> its waiting job as looked up
        self.decided: dict[str, str] = {}  # encounter -> the job this group settled on
        self.new: list[dict[str, Any]] = []

    def look_up(self, encounters: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(encounters))
        if not wanted:
            return
        for job in self.connection.execute(_JOBS_OF_ENCOUNTERS, {"encounters": wanted}):
            if job.state == "received":
                self.waiting.setdefault(job.encounter_id, job)

    def job_for(self, encounter_id: str, subscription_id: str | None, to_send: list[str]) -> str:
        """The Encounter's job (looked up first); a new one is added to ``to_send``."""
        decided = self.decided.get(encounter_id)
        if decided is not None:  # an earlier notification of this group found or made it
            return decided
        waiting = self.waiting.get(encounter_id)
        if waiting is not None:
            job_id = waiting.id
        else:
            job_id = time_ordered_id()
            self.new.append(new_job(job_id, encounter_id, self.source, subscription_id, self.now))
            to_send.append(job_id)
        self.decided[encounter_id] = job_id
        return job_id

    def write(self) -> None:
        """Insert the new jobs."""
        if self.new:
            self.connection.execute(_ADD_JOB, self.new)


def new_job(
    job_id: str, encounter_id: str, source: str, subscription_id: str | None, now: datetime
) -> dict[str, Any]:
    """The row of a new job: waiting, not yet sent (``enqueued_at`` is set once it is)."""
    return {
        "id": job_id,
        "encounter_id": encounter_id,
        "kind": "discharge",
        "state": "received",
        "source": source,
        "subscription_id": subscription_id,
        "created_at": now,
        "updated_at": now,
        "enqueued_at": None,
        "attempts": 0,
        "regeneration": 0,
        "timings": {},
    }
