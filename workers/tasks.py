"""Thin Celery tasks: each takes a job id and calls one step in ``fhirgen.service.jobs``.

Retries are Celery's own (``autoretry_for``): a ``TransientError`` of a step (the EHR's
timeouts, 429 and 5xx; ``StoreUnavailable``; ``BrokerUnavailable``) retries the task with
exponential backoff and full jitter up to ``FHIRGEN_RETRY_BACKOFF_MAX`` seconds, or after the
EHR's ``Retry-After`` when it sent one (honoured up to the same bound); each retry is written
to the audit log. After ``FHIRGEN_TASK_MAX_RETRIES`` retries the job is marked failed.
Permanent errors are already recorded on the job by the step. A job whose step was lost all
the same (the store was down for longer than the retries, or Redis dropped the message) is
resumed by the sweeper, ``requeue_stalled``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval
from celery_batches import Batches, SimpleRequest

import workers.heartbeat  # noqa: F401  (connects the signals that keep workers listed in the console)
from fhirgen.config import load_settings
from fhirgen.errors import PermanentError, TransientError
from fhirgen.service import jobs
from fhirgen.store import utcnow
from workers.enqueue import (
    STEP_TASKS,
    broker_errors,
    enqueue_reconcile,
    enqueue_step,
    send_jobs,
)
from workers.runtime import WorkerServices, services

log = logging.getLogger(__name__)

_SETTINGS = load_settings()


def retry_countdown(exc: BaseException | None, countdown: float | None, cap: float) -> float | None:
    """The wait before a retry: the server's ``Retry-After`` when the error carries one (at
    most ``cap``: the sweeper's timeouts assume no longer wait), else Celery's backoff."""
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, TransientError) and retry_after is not None:
        return min(max(0.0, retry_after), cap)
    return countdown


class RetryingTask(Task):
    """Celery retries a ``TransientError`` with backoff and jitter, a bounded number of times,
    after ``Retry-After`` when the server sent one."""

    autoretry_for = (TransientError,)
    retry_backoff = True
    retry_backoff_max = _SETTINGS.retry_backoff_max
    retry_jitter = True
    max_retries = _SETTINGS.task_max_retries
    acks_late = True
    reject_on_worker_lost = True

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        countdown = retry_countdown(exc, countdown, self.retry_backoff_max)
        limit = self.max_retries if max_retries is None else max_retries
        retries = self.request.retries
        if exc is not None and (limit is None or retries < limit):
            self.note_retry(exc, retries + 1, countdown or 0.0)
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    def note_retry(self, exc: BaseException, attempt: int, wait: float) -> None:
        log.info("%s: %s, retry %d in %.1fs", self.name, type(exc).__name__, attempt, wait)


class StepTask(RetryingTask):
    """A job step: each retry is audited on the job (and restarts the sweeper's clock); a job
    whose retries ran out is marked failed with the last error."""

    def note_retry(self, exc: BaseException, attempt: int, wait: float) -> None:
        job_id = str(self.request.args[0])
        log.info("job %s: %s, retry %d in %.1fs", job_id, type(exc).__name__, attempt, wait)
        try:
            store = services().store
            store.audit(
                "worker",
                "retry",
                job_id=job_id,
                detail=f"{self.name}: {type(exc).__name__} ({exc}); retry {attempt} in {wait:.1f}s",
            )
            store.touch(job_id)
        except TransientError as error:  # the store is down: the retry goes ahead unrecorded
            log.warning("job %s: retry not recorded (%s)", job_id, type(error).__name__)

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if not isinstance(exc, TransientError) or not args:
            return  # a permanent error is on the job already; a bug is in the worker's log
        job_id = str(args[0])
        retries = self.request.retries
        try:
            jobs.fail(services(), job_id, f"gave up after {retries} retries: {exc}")
        except TransientError as error:  # the store is down: the sweeper resumes the job later
            log.warning("job %s: could not be marked failed (%s)", job_id, type(error).__name__)


def _run(step: Callable[[jobs.Services, str], str | None], job_id: str) -> None:
    try:
        following = step(services(), job_id)
    except PermanentError:
        return  # the step recorded why on the job
    if following:
        enqueue_step(following, job_id)


@shared_task(name="fhirgen.read_stay", base=StepTask)
def read_stay(job_id: str) -> None:
    _run(jobs.read, job_id)


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
    try:
        for job_id, step in following.items():
            if step:
                enqueue_step(step, job_id)
    except TransientError as exc:  # drafted, the write not sent: the sweeper sends it
        log.warning("generation batch: next step not sent (%s)", type(exc).__name__)


def _retry_later(env: WorkerServices, job_ids: list[str], exc: TransientError) -> None:
    """The model (or the store) could not take this batch right now: each job is sent again
    after Celery's backoff (or the ``Retry-After``), its attempts counted on the job.

    A batch task has no per-message retry, so this sends the job's message again itself; it
    never raises (a batch that raises is never acknowledged): a job it could not send again,
    the store or the broker being down, is resumed by the sweeper."""
    settings = env.settings
    for job_id in job_ids:
        try:
            job = env.store.job(job_id)
            if job is None or job.state != "generating":
                continue
            env.store.count_attempt(job_id)
            if job.attempts >= settings.task_max_retries:
                jobs.fail(env, job_id, f"gave up after {job.attempts} attempts: {exc}")
                continue
            backoff = get_exponential_backoff_interval(
                factor=1, retries=job.attempts, maximum=settings.retry_backoff_max, full_jitter=True
            )
            wait = retry_countdown(exc, backoff, settings.retry_backoff_max) or 0.0
            env.store.audit(
                "worker",
                "retry",
                job_id=job_id,
                detail=f"fhirgen.generate: {type(exc).__name__} ({exc}); retry in {wait:.1f}s",
            )
            env.store.touch(job_id)
            with broker_errors():
                generate.app.send_task(STEP_TASKS[jobs.GENERATE], args=[job_id], countdown=wait)
        except TransientError as error:  # the store or broker is down: the sweeper resends it
            log.warning("job %s: generation not retried now (%s)", job_id, type(error).__name__)


@shared_task(name="fhirgen.write_back", base=StepTask)
def write_back(job_id: str) -> None:
    _run(jobs.write, job_id)


@shared_task(name="fhirgen.reconcile", base=RetryingTask, retry_backoff_max=300)
def reconcile(subscription_id: str | None = None) -> None:
    env = services()
    created = jobs.reconcile(env)
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


# The queue each step's messages wait on (``workers.app.TASK_QUEUES``).
STEP_QUEUES = {jobs.READ: "io", jobs.GENERATE: "gpu", jobs.WRITE: "io"}


@shared_task(name="fhirgen.requeue_stalled", bind=True)
def requeue_stalled(self: Task) -> None:
    """The sweeper: every job whose step was lost (a sent job never started, a job sat in
    reading, generating or writing past that state's timeout) gets that step sent again
    (``jobs.stalled_jobs``)."""
    with self.app.connection_for_read() as connection:
        client = connection.default_channel.client
        depth = {queue: int(client.llen(queue)) for queue in set(STEP_QUEUES.values())}
    waiting = {step: depth[queue] for step, queue in STEP_QUEUES.items()}
    for step, job_id in jobs.stalled_jobs(services(), waiting):
        enqueue_step(step, job_id)
