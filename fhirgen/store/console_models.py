"""The console's tables (console users, sign-in failures, worker heartbeats) and its indexes on
existing tables.

They live on the job store's ``Base``; revisions ``0003`` and ``0008`` create them;
``fhirgen.store`` imports this module, so ``Base.metadata`` always holds them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fhirgen.store.models import AuditEntry, Base, Job, UTCDateTime, not_null

ROLES = ("admin", "viewer")


class User(Base):
    """Someone who may sign in to the console; ``viewer`` sees, ``admin`` also acts."""

    __tablename__ = "users"
    __table_args__ = (Index("ix_users_username", "username", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # admin | viewer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Unused since revision 0008 (failures are counted per client in ``sign_in_failures``);
    # kept so that a downgrade finds them.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Part of every session's id: raised on sign-out, a new password or role, disabling, so
    # that every session made before (a copied cookie too) is refused on its next request.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # None: may sign in


class SignInFailure(Base):
    """Wrong passwords for one account from one client (a hashed address or IPv6 /64).

    From the ``MAX_FAILED_LOGINS``-th on, that client, and only that one, is refused for that
    account until ``locked_until`` (doubling with each further failure); see
    ``fhirgen.service.users``.
    """

    __tablename__ = "sign_in_failures"
    __table_args__ = (PrimaryKeyConstraint("username", "source"),)

    username: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WorkerHeartbeat(Base):
    """A Celery worker that is (or was recently) running: it refreshes ``last_seen``."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # Celery's hostname
    host: Mapped[str] = mapped_column(String(200))
    queues: Mapped[str] = mapped_column(String(200))  # comma-separated
    backend: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


# The console's filters, each served by an index that also orders by time (no sort of 100k rows).
JOBS_BY_SUBSCRIPTION = Index(
    "ix_jobs_subscription_created", Job.__table__.c.subscription_id, Job.__table__.c.created_at
)
# Partial where a new job has no value yet: the webhook's intake writes no entry in them.
JOBS_BY_BACKEND = Index(
    "ix_jobs_backend_created",
    Job.__table__.c.backend,
    Job.__table__.c.created_at,
    **not_null("backend"),
)
# Throughput and latency read the jobs finished in the last 24 hours.
JOBS_BY_FINISHED = Index("ix_jobs_finished", Job.__table__.c.finished_at, **not_null("finished_at"))
AUDIT_BY_ACTOR = Index("ix_audit_actor_at", AuditEntry.__table__.c.actor, AuditEntry.__table__.c.at)
AUDIT_BY_ACTION = Index(
    "ix_audit_action_at", AuditEntry.__table__.c.action, AuditEntry.__table__.c.at
)
