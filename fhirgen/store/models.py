"""The job store's tables. Changing them means a new Alembic revision in ``migrations/``.

Only identifiers live here in the clear (encounter, subscription and job ids); the chart data a
job works on is kept in ``job_artifacts`` until the draft is written, then dropped except for the
facts, drafts and Bundle the console shows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def not_null(column: str) -> dict[str, Any]:
    """Keyword arguments that make an index partial: only rows where ``column`` has a value.
    A query that compares the column (``=``, ``>=``) can still use it, in SQLite and
    PostgreSQL alike."""
    condition = text(f"{column} IS NOT NULL")
    return {"sqlite_where": condition, "postgresql_where": condition}


class UTCDateTime(TypeDecorator[datetime]):
    """An instant, stored in UTC and read back aware. SQLite keeps a datetime's wall-clock
    time and drops its offset, so a -05:00 discharge would read back five hours off."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value


class Subscription(Base):
    """A Subscription fhirgen registered on the EHR, and what it has delivered."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the webhook path segment
    ehr_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # rest-hook | topic
    criteria: Mapped[str] = mapped_column(Text)  # classic criteria, or the topic's canonical URL
    content: Mapped[str] = mapped_column(String(16), default="id-only")
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64))  # sha256 of the bearer secret
    hmac_secret: Mapped[str | None] = mapped_column(Text)  # encrypted (Fernet)
    heartbeat_period: Mapped[int | None] = mapped_column(Integer)
    events_since: Mapped[int] = mapped_column(Integer, default=0)
    notifications: Mapped[int] = mapped_column(Integer, default=0)
    gaps_detected: Mapped[int] = mapped_column(Integer, default=0)
    gaps_recovered: Mapped[int] = mapped_column(Integer, default=0)
    last_notification_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NotificationEvent(Base):
    """One notification (or one event of a topic-based notification) as received."""

    __tablename__ = "notification_events"
    __table_args__ = (
        Index("ix_events_subscription_received", "subscription_id", "received_at"),
        # A late event number is told from a duplicate by looking it up. Partial (as is the
        # next): a rest-hook event has no number, a heartbeat no job.
        Index(
            "ix_events_subscription_number",
            "subscription_id",
            "event_number",
            **not_null("event_number"),
        ),
        # The console's job page lists the job's events.
        Index("ix_events_job", "job_id", **not_null("job_id")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(24))
    event_number: Mapped[int | None] = mapped_column(Integer)
    focus: Mapped[str | None] = mapped_column(String(160))
    job_id: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)


class Job(Base):
    """Drafting one stay: received → reading → generating → writing → done | skipped | failed."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_created", "state", "created_at"),
        # Pattern ops on PostgreSQL: the console's encounter search is a prefix LIKE, which an
        # index in the database's collation cannot serve (equality, as at intake, can use both).
        Index(
            "ix_jobs_encounter",
            "encounter_id",
            "created_at",
            postgresql_ops={"encounter_id": "varchar_pattern_ops"},
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    encounter_id: Mapped[str] = mapped_column(String(64))
    encounter_version: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32), default="discharge")
    regeneration: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))  # notification | reconcile | manual | ping
    subscription_id: Mapped[str | None] = mapped_column(String(64))  # ix_jobs_subscription_created
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    round_trips: Mapped[int | None] = mapped_column(Integer)
    timings: Mapped[dict | None] = mapped_column(JSON)  # step -> milliseconds
    backend: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(200))
    facts: Mapped[int | None] = mapped_column(Integer)
    sentences: Mapped[int | None] = mapped_column(Integer)
    verification: Mapped[dict | None] = mapped_column(JSON)
    # The model's work: prompt/output tokens, milliseconds, batch sizes, parse problems.
    usage: Mapped[dict | None] = mapped_column(JSON)
    replaces: Mapped[str | None] = mapped_column(String(200))
    document_reference: Mapped[str | None] = mapped_column(String(200))
    care_plan: Mapped[str | None] = mapped_column(String(200))
    provenance: Mapped[str | None] = mapped_column(String(200))
    discharged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when a message for the job is handed to the broker; cleared if that failed.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Draft(Base):
    """The claim on (encounter, version, kind, regeneration): at most one job writes each."""

    __tablename__ = "drafts"

    encounter_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    encounter_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    regeneration: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32))
    document_reference: Mapped[str | None] = mapped_column(String(200))
    # FactSet.fingerprint of the stay as this job read it: a later version with the same one
    # is not drafted again.
    facts_fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobArtifact(Base):
    """Data a job hands from one step to the next (chart data: kept only as long as needed)."""

    __tablename__ = "job_artifacts"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """Who did or saw what, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(32), index=True)
    detail: Mapped[str | None] = mapped_column(Text)


class Setting(Base):
    """Small persistent values: reconciliation watermark and the like."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
