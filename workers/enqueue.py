"""Handing tasks to the broker with Celery's ``send_task`` (all the webhook needs of ``workers``).

The job rows are the outbox: a job is committed unsent (``enqueued_at`` empty), its first task
is sent after the commit, and the job is marked sent (``send_jobs``). What was committed but not
sent (the broker was down, the process stopped in between) the relay sends
(``fhirgen.relay_outbox``, every few seconds). A job may be sent twice; its steps' claims
(``fhirgen.service.jobs``) draft it once.

kombu's and redis-py's connection errors are translated here, once, into ``BrokerUnavailable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError as KombuChannelError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fhirgen.errors import BrokerUnavailable
from fhirgen.store import Store
from workers.app import celery_app

STEP_TASKS = {
    "read": "fhirgen.read_stay",
    "generate": "fhirgen.generate",
    "write": "fhirgen.write_back",
}
# kombu reports a broker it cannot reach as OperationalError, one that refuses the write (a full
# Redis, a read-only replica after a failover) as ChannelError.
BROKER_ERRORS = (
    KombuOperationalError,
    KombuChannelError,
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)


@contextmanager
def broker_errors() -> Iterator[None]:
    """Translate the broker's errors (by type) into ``BrokerUnavailable``."""
    try:
        yield
    except BROKER_ERRORS as exc:
        raise BrokerUnavailable(f"broker unavailable ({type(exc).__name__})") from exc


def send(
    name: str,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    app: Celery | None = None,
    *,
    fail_fast: bool = False,
) -> None:
    """Send a task by name on ``app`` (default: the process's, from the environment), on the
    app's producer pool. ``fail_fast``: no publish retries (the webhook's requests).
    Raises ``BrokerUnavailable``."""
    with broker_errors():
        (app or celery_app()).send_task(name, args=args, kwargs=kwargs, retry=not fail_fast)


def enqueue_step(step: str, job_id: str, app: Celery | None = None) -> None:
    """Send one job step to its queue."""
    send(STEP_TASKS[step], args=[job_id], app=app)


def enqueue_jobs(job_ids: Iterable[str], app: Celery | None = None) -> None:
    """Start jobs: their first step reads the stay."""
    for job_id in job_ids:
        send(STEP_TASKS["read"], args=[job_id], app=app)


def send_jobs(
    store: Store, job_ids: Sequence[str], app: Celery | None = None, *, fail_fast: bool = False
) -> None:
    """Send committed jobs and mark the ones the broker took as sent.

    Raises ``BrokerUnavailable`` (what was not sent stays for the relay) or
    ``StoreUnavailable`` (sent, not marked: the relay sends it again, harmlessly)."""
    sent: list[str] = []
    try:
        for job_id in job_ids:
            send(STEP_TASKS["read"], args=[job_id], app=app, fail_fast=fail_fast)
            sent.append(job_id)
    finally:
        store.mark_sent(sent)


def enqueue_reconcile(
    subscription_id: str | None = None, app: Celery | None = None, *, fail_fast: bool = False
) -> None:
    """Search the EHR for stays without a draft (one subscription's, or all)."""
    send(
        "fhirgen.reconcile",
        kwargs={"subscription_id": subscription_id},
        app=app,
        fail_fast=fail_fast,
    )
