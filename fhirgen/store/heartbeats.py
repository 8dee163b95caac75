"""Worker heartbeats: each Celery worker keeps a row fresh; the console lists the recent ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, insert, update
from sqlalchemy.exc import IntegrityError

from fhirgen.store import Store, utcnow
from fhirgen.store.console_models import WorkerHeartbeat

__all__ = ["HEARTBEAT_SECONDS", "WorkerInfo", "beat", "forget"]

HEARTBEAT_SECONDS = 15.0
_TABLE = cast(Table, WorkerHeartbeat.__table__)


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says about itself (no chart data: names, queues, backend, model)."""

    name: str
    host: str
    queues: tuple[str, ...]
    backend: str | None
    model: str | None
    pid: int
    started_at: datetime


def beat(store: Store, worker: WorkerInfo, *, now: datetime | None = None) -> None:
    """Record that ``worker`` is alive now (insert or refresh its row)."""
    now = now or utcnow()
    values = {
        "host": worker.host[:200],
        "queues": ",".join(worker.queues)[:200],
        "backend": worker.backend,
        "model": worker.model,
        "pid": worker.pid,
        "started_at": worker.started_at,
        "last_seen": now,
    }
    with store.engine.begin() as connection:
        refreshed = connection.execute(
            update(_TABLE).where(_TABLE.c.name == worker.name).values(**values)
        )
        if refreshed.rowcount:
            return
        try:
            with connection.begin_nested():
                connection.execute(insert(_TABLE).values(name=worker.name, **values))
        except IntegrityError:  # the same name inserted at the same moment: refresh it
            connection.execute(update(_TABLE).where(_TABLE.c.name == worker.name).values(**values))


def forget(store: Store, name: str) -> None:
    """A worker shut down cleanly: remove its row."""
    with store.engine.begin() as connection:
        connection.execute(delete(_TABLE).where(_TABLE.c.name == name))
