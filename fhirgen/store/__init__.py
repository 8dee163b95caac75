"""The job store: subscriptions, notification events, jobs and their state machine, audit log.

SQLAlchemy over SQLite by default (WAL and a busy timeout, so the webhook and workers can share
one file) or PostgreSQL by URL. The schema is managed by Alembic; ``Store.migrate()`` brings a
database to the current revision and is safe to call from several processes at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    Row,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import SQLAlchemyError as StoreError

# The console's tables are part of the schema: Base.metadata must always hold them.
from fhirgen.store import console_models as _console_models  # noqa: F401
from fhirgen.store.intake import (
    IntakeResult,
    Jobs,
    Prepared,
    Received,
    Transaction,
    new_job,
    record,
)
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


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite lose their zone; everything we store is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


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
        self._intake_connection: Any = None  # SQLite: kept for intake, used under its lock
        self._intake_pid = 0
        self._statements: dict[tuple[int, tuple[str, ...]], Prepared] = {}
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
        if self._intake_lock is not None:
            with self._intake_lock:
                self._drop_kept_connection()
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

        This is the webhook's hot path: it records the notifications that arrive together as
        one group, in a handful of statements (``fhirgen.store.intake``).
        """
        now = now or utcnow()
        if self._checkpoints is not None:
            self._checkpoints.ensure_running()  # in this process (gunicorn forks after import)
        with self.intake_lock():
            try:
                with Transaction(self, self._kept_connection()) as transaction:
                    return record(transaction, notifications, now)
            except BaseException:
                self._drop_kept_connection()  # whatever broke, the next group starts afresh
                raise

    def _prepared(self, statement: Any, keys: Iterable[str]) -> Prepared:
        key = (id(statement), tuple(keys))
        prepared = self._statements.get(key)
        if prepared is None:
            prepared = self._statements[key] = Prepared(statement, key[1], self.engine.dialect)
        return prepared

    def _kept_connection(self) -> Any:
        """SQLite: the process's intake connection (held under the intake lock, so one thread
        at a time), which spares each group a pool checkout, checkin and reset (~20 % of its CPU).
        None for PostgreSQL, whose intake transactions run side by side on pooled ones."""
        if self._intake_lock is None:
            return None
        if self._intake_pid != os.getpid():
            if self._intake_connection is not None:
                # Made in another process (before a fork): never touched here, not even closed.
                _INHERITED.append(self._intake_connection)
                self._intake_connection = None
            self._intake_pid = os.getpid()
        if self._intake_connection is None:
            self._intake_connection = self.engine.raw_connection()
        return self._intake_connection

    def _drop_kept_connection(self) -> None:
        connection, self._intake_connection = self._intake_connection, None
        if connection is not None and self._intake_pid == os.getpid():
            with contextlib.suppress(Exception):
                connection.close()

    def intake_lock(self) -> contextlib.AbstractContextManager[Any]:
        """The lock intake transactions take (reentrant in a thread).

        SQLite: a file lock that hands over the moment it is released; SQLite's own busy
        handler polls with sleeps of 1, 2, 5, 10 ms and more, and with several gunicorn workers
        writing at once those sleeps were the latency. The webhook takes it before collecting
        a group, so that notifications arriving while another process commits join the group.
        PostgreSQL: none (it queues writers on the subscription's row lock already)."""
        return self._intake_lock or contextlib.nullcontext()

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

    def count_waiting_since(self, enqueued_before: datetime) -> int:
        """How many jobs ``waiting_since`` would return (counted in the database)."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.count()).where(
                    Job.state == "received", Job.enqueued_at < enqueued_before
                )
            ).scalar_one()

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
        now = utcnow()
        with self.engine.begin() as connection:
            if not regeneration:
                jobs = Jobs(connection, now, source)
                jobs.look_up([encounter_id])
                job_id = jobs.job_for(encounter_id, subscription_id, [])
                return job_id, job_id not in jobs.write()
            job_id = uuid.uuid4().hex
            row = new_job(job_id, encounter_id, source, subscription_id, now)
            connection.execute(insert(Job).values({**row, "regeneration": regeneration}))
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
    # A WAL file that grew past this (a reader held its frames) is cut back to it when the WAL
    # restarts; _Checkpoints restarts it at half this size, so that is rare.
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.close()


_INHERITED: list[Any] = []  # connections a forked child must leave alone


class _FileLock:
    """An exclusive lock shared by this machine's processes (flock) and a process's threads.
    Reentrant within a thread: the webhook holds it around a whole group (``intake_lock``)
    while the store takes it again to record the group.

    ``first()`` takes it ahead of this process's other threads: neither the RLock nor flock
    queues its waiters, and a thread that writes group after group took it back the moment it
    let it go, so the checkpointer waiting for it could wait as long as the writes went on."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.RLock()
        self._depth = 0  # how many times the owning thread holds it
        self._owner: int | None = None
        self._no_one_first = threading.Event()  # cleared while a thread takes it first
        self._no_one_first.set()
        self._fd = -1
        self._pid: int | None = None

    def __enter__(self) -> None:
        if self._owner != threading.get_ident():  # a holder taking it again never waits
            self._no_one_first.wait()
        self._acquire()

    @contextlib.contextmanager
    def first(self) -> Iterator[None]:
        """Hold it, taking it before threads of this process that wait for it too."""
        self._no_one_first.clear()
        try:
            self._acquire()
        finally:
            self._no_one_first.set()
        try:
            yield
        finally:
            self.__exit__()

    def _acquire(self) -> None:
        self._threads.acquire()
        if self._depth:
            self._depth += 1
            return
        try:
            if self._pid != os.getpid():  # a forked child opens its own (flock is per open file)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
                weakref.finalize(self, os.close, self._fd)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        self._depth = 1
        self._owner = threading.get_ident()

    def __exit__(self, *_exc: object) -> None:
        try:
            self._depth -= 1
            if not self._depth:
                self._owner = None
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class _Checkpoints:
    """A daemon thread per process that checkpoints a SQLite WAL every ``interval`` seconds.

    PASSIVE checkpoints wait for no reader or writer, and the fsync they end with happens here,
    off the request path (the sqlite3 module releases the GIL while SQLite works). Several
    processes may each run one: a checkpoint that finds another in progress returns at once.

    Under sustained load the WAL never gets back to its beginning (a writer restarts it only
    when it starts with every frame copied back, and new ones arrive during each checkpoint),
    so once the WAL holds ``restart_bytes`` of frames one checkpoint runs holding the intake
    lock: intake writers queue behind it for the frames of the last ``interval`` and its
    fsyncs (measured 1-14 ms), and the next one starts the WAL anew. The threshold is well
    under ``journal_size_limit``: a writer that restarts a WAL file longer than that limit
    truncates it inside its commit (160 ms for 256 MiB, measured). The WAL can still grow by
    what is written in one ``interval`` past the threshold, so that is short: one writer
    thread on a fast machine wrote 27 MiB of frames in 50 ms, a webhook under load 20 MiB in
    250 ms (bench/ingest.py). A check that finds little to do costs well under a millisecond.
    """

    def __init__(
        self,
        path: str,
        lock: _FileLock | None,
        interval: float = 0.05,
        restart_bytes: int = 32 * 2**20,
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
    try:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        while not stop.wait(interval):
            with contextlib.suppress(sqlite3.Error, OSError):
                # (busy, frames in the WAL, frames copied back): the frame count starts again
                # from 0 when a writer restarts the WAL, the file's size does not.
                _, frames, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if lock is not None and frames * page_size > restart_bytes:
                    with lock.first():
                        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        connection.close()


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached right now (answer 503)."""
    return isinstance(exc, OperationalError)


def mapping(row: Row | None) -> Mapping[str, Any] | None:
    return dict(row._mapping) if row is not None else None
