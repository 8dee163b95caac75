"""The console's user rows and sign-in failures: every statement ``fhirgen.service.users`` runs.

Plain reads and writes, no rules: the service hashes, validates and throttles. ``reading`` and
``writing`` hold one connection (``writing``: one transaction) for the steps that must share it;
``try_add`` runs on its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Row, Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from fhirgen.store.console_models import SignInFailure, User

if TYPE_CHECKING:
    from fhirgen.store import Store

__all__ = ["UserRows", "reading", "try_add", "writing"]

USERS = cast(Table, User.__table__)
FAILURES = cast(Table, SignInFailure.__table__)


class UserRows:
    """Statements on the ``users`` and ``sign_in_failures`` tables over one connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # -- users --------------------------------------------------------------------------------

    def find(self, user: str | int) -> Row[Any] | None:
        """A user's row by (normalised) name, or by numeric id."""
        column = USERS.c.id if isinstance(user, int) else USERS.c.username
        return self.connection.execute(select(USERS).where(column == user)).first()

    def all_users(self) -> list[Row[Any]]:
        """Every user's row, by name."""
        return list(self.connection.execute(select(USERS).order_by(USERS.c.username)).all())

    def add(self, values: Mapping[str, Any]) -> None:
        """Add a user's row."""
        self.connection.execute(insert(USERS).values(**values))

    def change(
        self, user: str | int, values: Mapping[str, Any], *, end_sessions: bool = False
    ) -> bool:
        """Set ``values`` on a user's row (by name or id), raising its session epoch with
        ``end_sessions``; whether there was such a row."""
        column = USERS.c.id if isinstance(user, int) else USERS.c.username
        extra = {"session_epoch": USERS.c.session_epoch + 1} if end_sessions else {}
        changed = self.connection.execute(
            update(USERS).where(column == user).values(**extra, **values)
        )
        return bool(changed.rowcount)

    # -- sign-in failures ---------------------------------------------------------------------

    def failures(self, username: str, source: str) -> Row[Any] | None:
        """The wrong-password count of ``username`` from ``source``, if any."""
        return self.connection.execute(select(FAILURES).where(_pair(username, source))).first()

    def forget_failures(
        self, username: str, *, source: str | None = None, before: datetime | None = None
    ) -> int:
        """Delete ``username``'s counts (only ``source``'s, only those last failed before
        ``before``, where given); how many were deleted."""
        where = FAILURES.c.username == username
        if source is not None:
            where = where & (FAILURES.c.source == source)
        if before is not None:
            where = where & (FAILURES.c.last_failed_at < before)
        cleared = self.connection.execute(delete(FAILURES).where(where))
        return int(cleared.rowcount or 0)

    def start_count(self, username: str, source: str, now: datetime) -> bool:
        """Count a first failure of ``username`` from ``source`` (in a savepoint); False where
        that pair already has a row (the same client failing twice at once)."""
        try:
            with self.connection.begin_nested():
                self.connection.execute(
                    insert(FAILURES).values(
                        username=username, source=source, failures=1, last_failed_at=now
                    )
                )
        except IntegrityError:
            return False
        return True

    def count_failure(self, username: str, source: str, now: datetime) -> int:
        """One more failure on the pair's row; its count (1 where there was no row)."""
        updated = self.connection.execute(
            update(FAILURES)
            .where(_pair(username, source))
            .values(failures=FAILURES.c.failures + 1, last_failed_at=now)
            .returning(FAILURES.c.failures)
        ).first()
        return int(updated[0]) if updated is not None else 1

    def lock(self, username: str, source: str, until: datetime) -> None:
        """Refuse ``source`` for ``username`` until ``until``."""
        self.connection.execute(
            update(FAILURES).where(_pair(username, source)).values(locked_until=until)
        )

    def locked(self, now: datetime) -> dict[str, int]:
        """How many sources are locked at ``now``, by user name (users with none left out)."""
        rows = self.connection.execute(
            select(FAILURES.c.username, func.count())
            .where(FAILURES.c.locked_until > now)
            .group_by(FAILURES.c.username)
        ).all()
        return {str(name): int(count) for name, count in rows}


def _pair(username: str, source: str) -> Any:
    return (FAILURES.c.username == username) & (FAILURES.c.source == source)


@contextlib.contextmanager
def reading(store: Store) -> Iterator[UserRows]:
    """Reads on one connection (nothing written)."""
    with store.engine.connect() as connection:
        yield UserRows(connection)


@contextlib.contextmanager
def writing(store: Store) -> Iterator[UserRows]:
    """Statements in one transaction: committed at the end, rolled back on an exception."""
    with store.engine.begin() as connection:
        yield UserRows(connection)


def try_add(store: Store, values: Mapping[str, Any]) -> bool:
    """Add a user's row in its own transaction; False where the name is taken."""
    try:
        with writing(store) as rows:
            rows.add(values)
    except IntegrityError:
        return False
    return True
