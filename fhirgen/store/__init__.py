"""The job store: subscriptions, notification events, jobs and their state machine, audit log.

SQLAlchemy over SQLite by default (WAL and a busy timeout, so the webhook and workers can share
one file) or PostgreSQL by URL. The schema is managed by Alembic; ``Store.migrate()`` brings a
database to the current revision and is safe to call from several processes at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import uuid
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
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import SQLAlchemyError as StoreError

from fhirgen.errors import StoreUnavailable
from fhirgen.files import private_file

# The console's tables are part of the schema: Base.metadata must always hold them.
from fhirgen.store import console_models as _console_models  # noqa: F401
from fhirgen.store.intake import INACTIVE, IntakeResult, Jobs, Received, new_job, record
from fhirgen.store.models import (
    AuditEntry,
    Draft,
    Job,
    JobArtifact,
    NotificationEvent,
    Setting,
    Subscription,
)

__all__ = [
    "INACTIVE",
    "JOB_STATES",
    "IntakeResult",
    "Received",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "utcnow",
]

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

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if url.startswith("sqlite"):
            # A file has no server to lose the connection to: no ping before each transaction.
            kwargs["pool_pre_ping"] = False
            path = make_url(url).database  # None or "" for an in-memory database
            if path and path != ":memory:" and not path.startswith("file:"):
                Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                private_file(path)  # drafts, facts and password hashes: 0600, as its WAL
                # SQLite has one writer. One connection per process: threads queue in
                # SQLAlchemy's pool, woken as it frees, instead of in SQLite's busy handler,
                # which sleeps in growing steps (up to 100 ms) and left the webhook's p99 at
                # 130-330 ms with eight threads (bench/ingest.py; 36 ms with this). Processes
                # still take turns through the busy timeout.
                kwargs.update(pool_size=1, max_overflow=0, pool_timeout=30)
            kwargs["connect_args"] = {"check_same_thread": False}
        self.engine: Engine = create_engine(url, **kwargs)
        event.listen(self.engine, "handle_error", _unavailable)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # For one statement that is atomic on its own (the webhook's subscription read, the
        # outbox's mark-sent): no BEGIN and COMMIT around it, one round trip instead of three.
        self._single: Engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

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

    def check_writable(self, wait_seconds: float) -> None:
        """Raise unless the intake's write transaction could start now, waiting at most
        ``wait_seconds`` (readiness); nothing is written. SQLite: take the database's write
        lock (``BEGIN IMMEDIATE``) and roll back. PostgreSQL: a rolled-back write on the
        settings table (a read-only server, a table lock, a server too slow to answer fail
        it)."""
        wait_ms = int(wait_seconds * 1000)
        with self.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
                connection.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")
                try:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                    connection.rollback()
                finally:
                    connection.exec_driver_sql(f"PRAGMA busy_timeout={int(busy or 0)}")
                return
            with connection.begin() as transaction:
                connection.execute(text(f"SET LOCAL lock_timeout = '{wait_ms}ms'"))
                connection.execute(text(f"SET LOCAL statement_timeout = '{wait_ms}ms'"))
                connection.execute(text("UPDATE kv SET value = value WHERE key = 'fhirgen.readyz'"))
                transaction.rollback()

    def dispose(self) -> None:
        """Close every pooled connection (before a fork; after each heartbeat in a main process
        that forks workers)."""
        self.engine.dispose()

    # -- subscriptions ----------------------------------------------------------------------

    def add_subscription(self, **values: Any) -> None:
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                insert(Subscription).values(created_at=now, updated_at=now, **values)
            )

    def subscription(self, subscription_id: str) -> Row | None:
        with self._single.connect() as connection:
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

    # -- intake: one transaction per notification; the job rows are the outbox ------------------

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
        """Record notifications in one transaction, each exactly as ``record_notification``
        would in this order; one result per notification. New jobs are committed unsent."""
        with self.engine.begin() as connection:
            return record(connection, notifications, now or utcnow())

    def mark_sent(self, job_ids: Sequence[str], now: datetime | None = None) -> None:
        """The broker took these jobs' messages: the relay leaves them alone."""
        if job_ids:
            with self._single.connect() as connection:
                connection.execute(
                    update(Job)
                    .where(Job.id.in_(list(job_ids)), Job.enqueued_at.is_(None))
                    .values(enqueued_at=now or utcnow())
                )

    def unsent_jobs(self, older_than: datetime, limit: int = 500) -> list[str]:
        """Waiting jobs committed but never handed to the broker (the broker was down, or the
        process stopped between commit and send), oldest first: the outbox relay sends them."""
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    select(Job.id)
                    .where(
                        Job.state == "received",
                        Job.enqueued_at.is_(None),
                        Job.updated_at < older_than,
                    )
                    .order_by(Job.updated_at)
                    .limit(limit)
                ).scalars()
            )

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
        """Claim jobs (id, the ``enqueued_at`` seen) for sending again; a job another sweeper
        claimed meanwhile, or that started, is left out."""
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

    def stalled(self, state: str, updated_before: datetime) -> list[tuple[str, datetime]]:
        """Jobs in an active ``state`` that have not moved (nor retried) since ``updated_before``:
        (id, ``updated_at`` seen), oldest first, for the sweeper."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(Job.id, Job.updated_at)
                .where(Job.state == state, Job.updated_at < updated_before)
                .order_by(Job.updated_at)
            ).all()
        return [(row.id, row.updated_at) for row in rows]

    def reclaim_stalled(
        self, state: str, jobs: Sequence[tuple[str, datetime]], now: datetime
    ) -> list[str]:
        """Claim stalled jobs (id, the ``updated_at`` seen) for resuming; a job that moved on,
        retried, or that another sweeper claimed meanwhile is left out."""
        claimed = []
        with self.engine.begin() as connection:
            for job_id, seen in jobs:
                result = connection.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == state, Job.updated_at == seen)
                    .values(updated_at=now)
                )
                if result.rowcount:
                    claimed.append(job_id)
        return claimed

    def touch(self, job_id: str) -> None:
        """The job's step is alive (a retry is scheduled): the sweeper's clock starts again."""
        with self.engine.begin() as connection:
            connection.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow()))

    # -- jobs -------------------------------------------------------------------------------

    def regeneration_state(self, encounter_id: str) -> tuple[int, int]:
        """The Encounter's highest regeneration number (0 without jobs) and how many of its
        jobs are in progress."""
        with self._single.connect() as connection:
            highest, busy = connection.execute(
                select(
                    func.max(Job.regeneration),
                    func.count().filter(Job.state.in_(ACTIVE_STATES)),
                ).where(Job.encounter_id == encounter_id)
            ).one()
        return int(highest or 0), int(busy)

    def create_job(
        self,
        encounter_id: str,
        *,
        source: str,
        subscription_id: str | None = None,
        regeneration: int = 0,
    ) -> tuple[str, bool]:
        """A job for an Encounter: (job id, whether it is new and so the caller sends it);
        an Encounter's waiting job is reused."""
        now = utcnow()
        with self.engine.begin() as connection:
            if not regeneration:
                jobs = Jobs(connection, now, source)
                jobs.look_up([encounter_id])
                made: list[str] = []
                job_id = jobs.job_for(encounter_id, subscription_id, made)
                jobs.write()
                return job_id, bool(made)
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
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _unavailable(context: ExceptionContext) -> None:
    """Errors that mean the database cannot be reached or is locked right now come out as
    ``StoreUnavailable`` (a ``TransientError``); others (integrity, programming) unchanged."""
    error = context.sqlalchemy_exception
    if context.is_pre_ping:  # the pool replaces the connection itself
        return
    if context.is_disconnect or isinstance(error, OperationalError | InterfaceError):
        raise StoreUnavailable(f"store unavailable ({type(error).__name__})") from error


def mapping(row: Row | None) -> Mapping[str, Any] | None:
    return dict(row._mapping) if row is not None else None
