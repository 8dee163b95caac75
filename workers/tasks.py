"""Thin Celery tasks: each takes a job id and calls one step in ``fhirgen.jobs``.

Transient errors (timeouts, 429, 5xx) retry with exponential backoff and jitter, honouring
``Retry-After``; after ``FHIRGEN_TASK_MAX_RETRIES`` the job is marked failed. Permanent errors
are already recorded on the job by the step.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import timedelta

from celery import Task, shared_task
from celery_batches import Batches, SimpleRequest

import workers.heartbeat  # noqa: F401  (connects the signals that keep workers listed in the console)
from fhirgen import jobs
from fhirgen.config import load_settings
from fhirgen.errors import PermanentError, TransientError
from fhirgen.store import utcnow
from workers.enqueue import enqueue_jobs, enqueue_reconcile, enqueue_step, send_jobs
from workers.runtime import services

log = logging.getLogger(__name__)


def backoff(retries: int, cap: float) -> float:
    """Exponential backoff with full jitter: up to 2**retries seconds, at most ``cap``."""
    return random.uniform(0.5, 1.0) * min(cap, 2.0**retries)  # noqa: S311 - jitter, not crypto


def _run(task: Task, step: Callable[[jobs.Services, str], str | None], job_id: str) -> None:
    env = services()
    try:
        following = step(env, job_id)
    except TransientError as exc:
        retries = task.request.retries
        if retries >= env.settings.task_max_retries:
            jobs.fail(env, job_id, f"gave up after {retries} retries: {exc}")
            return
        wait = max(backoff(retries, env.settings.retry_backoff_max), exc.retry_after or 0.0)
        env.store.audit(
            "worker",
            "retry",
            job_id=job_id,
            detail=f"{task.name}: {type(exc).__name__} ({exc}); retry {retries + 1} in {wait:.1f}s",
        )
        log.info("job %s: %s, retry %d in %.1fs", job_id, type(exc).__name__, retries + 1, wait)
        raise task.retry(exc=exc, countdown=wait) from None
    except PermanentError:
        return  # the step recorded why on the job
    if following:
        enqueue_step(following, job_id)


@shared_task(name="fhirgen.read_stay", bind=True, max_retries=None)
def read_stay(self: Task, job_id: str) -> None:
    _run(self, jobs.read, job_id)


_SETTINGS = load_settings()


@shared_task(
    name="fhirgen.generate",
    base=Batches,
    # The gpu worker drafts up to N jobs together, waiting at most T ms to fill a batch.
    flush_every=_SETTINGS.gpu_batch_size,
    flush_interval=_SETTINGS.gpu_batch_wait_ms / 1000,
    acks_late=True,
)
def generate(requests: list[SimpleRequest]) -> None:
    env = services()
    job_ids = [str(request.args[0]) for request in requests]
    try:
        following = jobs.generate_many(env, job_ids)
    except TransientError as exc:
        _retry_later(env, job_ids, exc)
        return
    except Exception as exc:
        # A batch task that raises is never acknowledged and would come back for ever: a bug
        # here fails the jobs it held, visibly, with its type, instead.
        log.exception("generation batch of %d job(s) failed", len(job_ids))
        for job_id in job_ids:
            jobs.fail(env, job_id, f"internal error while drafting: {type(exc).__name__}")
        return
    for job_id, step in following.items():
        if step:
            enqueue_step(step, job_id)


def _retry_later(env: jobs.Services, job_ids: list[str], exc: TransientError) -> None:
    """The model could not take this batch right now: each job is sent again, with backoff."""
    app = generate.app
    for job_id in job_ids:
        job = env.store.job(job_id)
        if job is None or job.state != "generating":
            continue
        env.store.count_attempt(job_id)
        if job.attempts >= env.settings.task_max_retries:
            jobs.fail(env, job_id, f"gave up after {job.attempts} attempts: {exc}")
            continue
        wait = max(backoff(job.attempts, env.settings.retry_backoff_max), exc.retry_after or 0.0)
        env.store.audit(
            "worker",
            "retry",
            job_id=job_id,
            detail=f"fhirgen.generate: {type(exc).__name__} ({exc}); retry in {wait:.1f}s",
        )
        app.send_task("fhirgen.generate", args=[job_id], countdown=wait)


@shared_task(name="fhirgen.write_back", bind=True, max_retries=None)
def write_back(self: Task, job_id: str) -> None:
    _run(self, jobs.write, job_id)


@shared_task(name="fhirgen.reconcile", bind=True, max_retries=None)
def reconcile(self: Task, subscription_id: str | None = None) -> None:
    env = services()
    try:
        created = jobs.reconcile(env)
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries, 300)) from None
    send_jobs(env.store, created)
    if subscription_id:
        env.store.count_recovery(subscription_id)


@shared_task(name="fhirgen.watch_subscriptions")
def watch_subscriptions() -> None:
    for subscription_id in jobs.stale_subscriptions(services()):
        enqueue_reconcile(subscription_id)


# The webhook sends a job within seconds of its commit; only older unsent ones are the relay's.
RELAY_GRACE = timedelta(seconds=10)


@shared_task(name="fhirgen.relay_outbox")
def relay_outbox() -> None:
    """The outbox relay: jobs committed but never handed to the broker (it was down when their
    notification came, or a process stopped between commit and send) are sent now."""
    store = services().store
    unsent = store.unsent_jobs(utcnow() - RELAY_GRACE)
    if unsent:
        send_jobs(store, unsent)
        log.info("outbox relay: sent %d job(s)", len(unsent))


@shared_task(name="fhirgen.requeue_stalled", bind=True)
def requeue_stalled(self: Task) -> None:
    """Jobs whose message the broker lost (a Redis restart without its data) are sent again."""
    runtime = services()
    with self.app.connection_for_read() as connection:
        queued = connection.default_channel.client.llen("io")
    enqueue_jobs(jobs.lost_jobs(runtime, int(queued)))
