"""The job page: a job with its events, audit trail, timeline, step timings and artifacts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, select

from fhirgen.store import Store, as_utc
from fhirgen.store.console._common import AUDIT, EVENTS, JOBS, LIST_COLUMNS, AnyRow
from fhirgen.store.models import JobArtifact

__all__ = ["VIEW_ACTION", "JobDetail", "TimelineEntry", "job_detail"]

_ARTIFACTS = cast(Table, JobArtifact.__table__)


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
        job = connection.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        if job is None:
            return None
        events = list(
            connection.execute(
                select(EVENTS)
                .where(EVENTS.c.job_id == job_id)
                .order_by(EVENTS.c.received_at, EVENTS.c.id)
                .limit(history)
            ).all()
        )
        audit = list(
            connection.execute(
                select(AUDIT)
                .where(AUDIT.c.job_id == job_id, AUDIT.c.action != VIEW_ACTION)
                .order_by(AUDIT.c.at, AUDIT.c.id)
                .limit(history)
            ).all()
        )
        related = list(
            connection.execute(
                select(*LIST_COLUMNS)
                .where(JOBS.c.encounter_id == job.encounter_id, JOBS.c.id != job_id)
                .order_by(JOBS.c.created_at.desc())
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
