"""Jobs: their state machine, creation, moves, counts, and the artifacts a job keeps."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update

from fhirgen.store.common import utcnow
from fhirgen.store.engine import Database
from fhirgen.store.intake import Jobs, new_job
from fhirgen.store.models import Job, JobArtifact

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
    # Back a step when the artifact it needs is gone (read again, draft again).
    "generating": {"writing", "failed", "cancelled", "generating", "reading"},
    # skipped: the stay's earlier draft was reviewed in the EHR meanwhile; nothing is written.
    "writing": {"done", "failed", "writing", "skipped", "generating"},
    "failed": {"received"},  # retried from the console
    "done": set(),
    "skipped": set(),
    "cancelled": {"received"},
}


class JobsMixin(Database):
    """The ``Store``'s jobs and their artifacts."""

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
