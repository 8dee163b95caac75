"""What the steps share: their names (one per queue hop), ``next_step_for``, ``fail``, and the
timing and failure wrappers each step runs its work in."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fhirgen.errors import PermanentError
from fhirgen.service.jobs.dependencies import Services
from fhirgen.service.ports import JobStore

log = logging.getLogger(__name__)

READ, GENERATE, WRITE = "read", "generate", "write"


_ACTIVE = ("received", "reading", "generating", "writing")


def next_step_for(state: str) -> str | None:
    """The step a job in ``state`` waits for (the sweeper and the console resend it)."""
    return {"received": READ, "reading": READ, "generating": GENERATE, "writing": WRITE}.get(state)


def fail(services: Services, job_id: str, reason: str) -> None:
    """Mark a job failed (e.g. retries exhausted) and release its claim on the stay."""
    if services.store.advance(job_id, _ACTIVE, "failed", reason=reason[:2000]):
        services.store.release_draft(job_id)


@contextmanager
def _timed(store: JobStore, job_id: str, step: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        store.add_timing(job_id, step, (time.perf_counter() - started) * 1000)


@contextmanager
def _failing_on_permanent(store: JobStore, job_id: str) -> Iterator[None]:
    try:
        yield
    except PermanentError as exc:
        if store.advance(job_id, _ACTIVE, "failed", reason=str(exc)[:2000]):
            store.release_draft(job_id)
        log.warning("job %s failed: %s", job_id, type(exc).__name__)
        raise
