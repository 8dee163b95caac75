"""Handing job ids to the broker (the only thing the webhook needs from ``workers``).

Outside a task (the webhook) messages go out on a lean path, measured in ``bench/ingest.py``:
the message is exactly the one ``send_task`` would build (Celery's own ``create_task_message``
with the same arguments, routed by Celery's router) and Celery's own ``send_task_message``
publishes it, but on a producer and Redis connection each thread keeps warm, without
``send_task``'s per-call work (registry and router lookups, the AsyncResult, a queue
declaration per message) and without publish retries: a broker that is down fails within
milliseconds, so the webhook answers 503 and the EHR retries (kombu's and redis-py's retries
kept it waiting about 6 s). Inside a task, ``send_task`` as usual (it records the parent and
root task ids, and retries as the worker's policy says).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from functools import cached_property
from typing import Any

from celery import Celery
from celery.utils import uuid
from kombu.transport import redis as redis_transport
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers.app import celery_app

STEP_TASKS = {
    "read": "fhirgen.read_stay",
    "generate": "fhirgen.generate",
    "write": "fhirgen.write_back",
}


def enqueue_step(step: str, job_id: str, app: Celery | None = None) -> None:
    """Send one job step to its queue (raises the broker's error if it is down)."""
    send(STEP_TASKS[step], args=[job_id], app=app)


def enqueue_jobs(job_ids: Iterable[str], app: Celery | None = None) -> None:
    """Start jobs: their first step reads the stay."""
    for job_id in job_ids:
        enqueue_step("read", job_id, app)


def enqueue_reconcile(subscription_id: str | None = None, app: Celery | None = None) -> None:
    send("fhirgen.reconcile", kwargs={"subscription_id": subscription_id}, app=app)


def send(
    name: str,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    app: Celery | None = None,
) -> None:
    """Send a task by name on ``app`` (default: the process's, from the environment): the lean
    path outside tasks, ``send_task`` inside one."""
    app = app or celery_app()
    # Inside a task send_task records the parent; a task registered in this process may carry
    # execution options send_task merges in. The webhook has neither.
    if app.current_worker_task is not None or app._tasks.get(name) is not None:
        app.send_task(name, args=args, kwargs=kwargs)
        return
    _publisher(app).send(name, args, kwargs)


class _Publisher:
    """Celery's message for a task, built by Celery and published by Celery's sender on a
    producer each thread keeps (kombu's pool would re-bind a channel on every acquire); what is
    the same for every call (the route, the declared queue) is worked out once per task name."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.routes: dict[str, dict[str, Any]] = {}
        self.local = threading.local()

    def _producer(self) -> Any:
        producer = getattr(self.local, "producer", None)
        if producer is None or self.local.pid != os.getpid():
            connection = self.app.connection_for_write()
            # Connect once, no retries: kombu's default keeps an EHR waiting 6 s for its 503.
            options = {**connection.transport_options, "max_retries": 0}
            if type(connection.transport) is redis_transport.Transport:
                connection = connection.clone(transport=_Transport, transport_options=options)
            else:
                connection = connection.clone(transport_options=options)
            producer = self.local.producer = self.app.amqp.Producer(connection)
            self.local.pid = os.getpid()
        return producer

    def _drop_producer(self) -> None:
        producer, self.local.producer = self.local.producer, None
        with contextlib.suppress(Exception):
            producer.connection.close()

    def _route(self, name: str, producer: Any) -> dict[str, Any]:
        options = self.routes.get(name)
        if options is None:
            options = self.app.amqp.router.route({}, name, None, None, None)
            queue = options.get("queue")
            if queue is not None:  # what send_task_message declares on every call, once here
                producer.maybe_declare(queue, retry=False)
            self.routes[name] = options
        return options

    def send(self, name: str, args: list[Any] | None, kwargs: dict[str, Any] | None) -> None:
        app = self.app
        producer = self._producer()
        try:
            with producer.connection._reraise_as_library_errors():
                options = self._route(name, producer)
                task_id = uuid()
                message = app.amqp.create_task_message(
                    task_id,
                    name,
                    args,
                    kwargs,
                    reply_to=app.thread_oid,
                    create_sent_event=app.conf.task_send_sent_event,
                    ignore_result=None,
                    **options,
                )
                app.backend.on_task_call(producer, task_id)  # as send_task does
                app.amqp.send_task_message(
                    producer, name, message, retry=False, declare=[], **options
                )
        except Exception:
            self._drop_producer()  # the next message starts on a fresh connection
            raise


class _Channel(redis_transport.Channel):
    """kombu's Redis channel, keeping one client object for its synchronous commands: kombu
    builds a new ``redis.Redis`` (about 170 response callbacks) for every LPUSH. The client
    only wraps the channel's connection pool, as every one kombu builds does.

    One immediate retry instead of redis-py's default three with backoff (6 s when Redis
    refuses connections): enough to replace a pooled connection that Redis closed, short
    enough that the EHR gets its 503 at once when Redis is down."""

    @cached_property
    def _sync_client(self) -> Any:
        client = super()._create_client()
        client.set_retry(Retry(NoBackoff(), 1))
        return client

    def _create_client(self, asynchronous: bool = False) -> Any:
        return super()._create_client(asynchronous) if asynchronous else self._sync_client


class _Transport(redis_transport.Transport):
    Channel = _Channel


def _publisher(app: Celery) -> _Publisher:
    publisher = getattr(app, "_fhirgen_publisher", None)
    if publisher is None:
        publisher = _Publisher(app)
        app._fhirgen_publisher = publisher  # type: ignore[attr-defined]
    return publisher
