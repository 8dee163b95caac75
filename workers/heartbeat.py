"""Heartbeats for the console's "workers alive": a daemon thread in each worker's main process.

On Celery's ``worker_ready`` the thread starts and writes the worker's row (name, host, queues,
backend, model, pid) every ``HEARTBEAT_SECONDS``; on ``worker_shutdown`` it stops and removes
the row. A worker killed outright simply stops beating, and the console stops listing it.

Importing this module connects the signals (``workers.tasks`` imports it).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery.signals import worker_ready, worker_shutdown

from fhirgen.config import load_settings
from fhirgen.errors import StoreUnavailable
from fhirgen.store import Store, StoreError, utcnow
from fhirgen.store.heartbeats import HEARTBEAT_SECONDS, WorkerInfo, beat, forget

if TYPE_CHECKING:
    from fhirgen.config import Settings

log = logging.getLogger(__name__)


class Heartbeat:
    """The thread that keeps one worker's row fresh."""

    def __init__(self, store: Store, worker: WorkerInfo, every: float = HEARTBEAT_SECONDS) -> None:
        self.store = store
        self.worker = worker
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fhirgen-heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.beat_once()
            if self._stop.wait(self.every):
                return

    def beat_once(self) -> None:
        try:
            beat(self.store, self.worker)
            if self._failing:
                log.info("heartbeat of %s recorded again", self.worker.name)
            self._failing = False
        except (StoreUnavailable, StoreError) as exc:
            if not self._failing:  # once per outage, not every 15 s
                log.warning(
                    "heartbeat of %s not recorded: %s", self.worker.name, type(exc).__name__
                )
            self._failing = True
        finally:
            # No pooled connection stays open in the main process, where prefork's
            # replacement children are forked from.
            self.store.dispose()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            forget(self.store, self.worker.name)
        except (StoreUnavailable, StoreError) as exc:
            log.warning(
                "could not remove the heartbeat of %s: %s", self.worker.name, type(exc).__name__
            )
        self.store.dispose()


_RUNNING: dict[str, Heartbeat] = {}


def worker_info(
    hostname: str, queues: list[str], settings: Settings, started_at: datetime
) -> WorkerInfo:
    """What the console shows about a worker; the model only for workers that generate."""
    generates = "gpu" in queues
    model = None
    if generates:
        if settings.backend == "openai":
            model = settings.openai_model
        elif settings.backend == "transformers" and settings.model_path:
            model = str(settings.model_path)
    return WorkerInfo(
        name=hostname,
        host=socket.gethostname(),
        queues=tuple(sorted(queues)),
        backend=settings.backend if generates else None,
        model=model,
        pid=os.getpid(),
        started_at=started_at,
    )


@worker_ready.connect(dispatch_uid="fhirgen.heartbeat.start")
def _start(sender: Any = None, **_kwargs: Any) -> None:
    settings = load_settings()
    hostname = str(getattr(sender, "hostname", None) or socket.gethostname())
    app = getattr(sender, "app", None)
    queues = sorted(app.amqp.queues.consume_from) if app is not None else []
    heartbeat = Heartbeat(
        Store.from_settings(settings), worker_info(hostname, queues, settings, utcnow())
    )
    _RUNNING[hostname] = heartbeat
    heartbeat.start()


@worker_shutdown.connect(dispatch_uid="fhirgen.heartbeat.stop")
def _stop(**_kwargs: Any) -> None:
    while _RUNNING:
        _, heartbeat = _RUNNING.popitem()
        heartbeat.stop()
