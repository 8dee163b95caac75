"""Intake and the outbox: one transaction per notification, the job rows are the outbox; the
relay's and the sweeper's claims on waiting and stalled jobs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select, update

from fhirgen.store.common import utcnow
from fhirgen.store.engine import Database
from fhirgen.store.intake import IntakeResult, Received, record
from fhirgen.store.models import Job


class OutboxMixin(Database):
    """The ``Store``'s intake (one transaction per notification; the job rows are the outbox)
    and the relay's and sweeper's claims."""

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
