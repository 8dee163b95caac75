"""The store's engine: creation and pools (SQLite or PostgreSQL), database errors translated
to ``StoreUnavailable``, migrations (Alembic, serialised across processes), readiness."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import SQLAlchemyError as StoreError
from sqlalchemy.pool import Pool, StaticPool

from fhirgen.errors import StoreUnavailable
from fhirgen.files import private_file

__all__ = ["Database", "StoreError"]

_MIGRATIONS = Path(__file__).with_name("migrations")


class Database:
    """The engine and the schema; the base every part of the ``Store`` builds on."""

    def __init__(
        self, url: str, *, echo: bool = False, poolclass: type[Pool] | None = None
    ) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if poolclass is not None:
            kwargs["poolclass"] = poolclass
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
        if self.engine.dialect.name == "postgresql":
            # Its only write is the mark-sent, which may be lost at no cost (the relay sends the
            # job again; its claims draft it once), so its commit does not wait for the WAL
            # flush: one fsync per notification instead of two (bench/ingest.py), and a disk's
            # fsync time off every notification's answer. Its own small pool: a connection's
            # synchronous_commit is set once, when it is made.
            options = make_url(url).query.get("options") or ""  # the URL's own (search_path…)
            options = " ".join([*([options] if isinstance(options, str) else options)])
            self._single = create_engine(
                url,
                **{**kwargs, "pool_size": 2, "max_overflow": 8},
                isolation_level="AUTOCOMMIT",
                connect_args={"options": f"{options} -c synchronous_commit=off".strip()},
            )
            event.listen(self._single, "handle_error", _unavailable)

    @classmethod
    def from_settings(cls, settings: Any, **options: Any) -> Self:
        return cls(settings.resolved_database_url, **options)

    @classmethod
    def in_memory(cls) -> Self:
        """The real store over a private in-memory SQLite database, migrated: what unit tests
        use where the application asks for a ``JobStore`` (``fhirgen.service.ports``).

        One connection shared by every thread (``StaticPool``), so the database lives as long
        as this object and every caller sees the same one.
        """
        store = cls("sqlite://", poolclass=StaticPool)
        store.migrate()
        return store

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
        if self._single.pool is not self.engine.pool:  # PostgreSQL's own
            self._single.dispose()


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
