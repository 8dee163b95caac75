"""Handing job ids to the broker (the only thing the webhook needs from ``workers``).

Inside a task, ``send_task`` as usual (it records the parent and root task ids, and retries
as the worker's policy says). Outside one (the webhook, the console), messages go out on a
lean path, measured in ``bench/ingest.py``: Celery builds each task message
(``create_task_message``, exactly as ``send_task`` does, given the argument text and origin it
would work out itself), it is wrapped the way kombu's Redis transport wraps it, and all the
messages of a call are pushed with one ``LPUSH`` per queue, in one round trip, on a Redis
connection each process keeps. kombu's publish path cost about 150 µs of CPU per message and
one round trip per message; redis-py's client another 90 µs per command.

The lean path is used only where it produces what kombu would: a Redis broker, JSON, no
compression, no result backend, no sent events or publish signals, no key prefix; otherwise
``send_task``. A test compares the two messages field by field. No publish retries beyond
replacing a connection Redis closed: a broker that is down or stalled fails within
milliseconds (or the 5 s socket timeout), so the webhook answers 503 and the EHR retries
(kombu's and redis-py's retries kept it waiting about 6 s).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import threading
import uuid as uuid_module
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import redis
from celery import Celery, signals
from celery.backends.base import DisabledBackend
from celery.utils import uuid
from celery.utils.nodenames import anon_nodename

from fhirgen.broker import redis_url_of_broker
from fhirgen.store import IntakeResult, Store, StoreError
from workers.app import celery_app

STEP_TASKS = {
    "read": "fhirgen.read_stay",
    "generate": "fhirgen.generate",
    "write": "fhirgen.write_back",
}

Task = tuple[str, list[Any] | None, dict[str, Any] | None]  # name, args, kwargs
CLIENT_NAME = "fhirgen-publisher"  # how the lean publisher's connections show in CLIENT LIST


def enqueue_step(step: str, job_id: str, app: Celery | None = None) -> None:
    """Send one job step to its queue (raises the broker's error if it is down)."""
    send(STEP_TASKS[step], args=[job_id], app=app)


def enqueue_jobs(job_ids: Iterable[str], app: Celery | None = None) -> None:
    """Start jobs: their first step reads the stay."""
    send_many(start_tasks(job_ids), app)


def start_tasks(job_ids: Iterable[str]) -> list[Task]:
    """The tasks that start these jobs (their first step reads the stay)."""
    return [(STEP_TASKS["read"], [job_id], None) for job_id in job_ids]


def reconcile_task(subscription_id: str | None = None) -> Task:
    """The task that searches the EHR for stays without a draft (one subscription's, or all)."""
    return ("fhirgen.reconcile", None, {"subscription_id": subscription_id})


def enqueue_reconcile(subscription_id: str | None = None, app: Celery | None = None) -> None:
    send_many([reconcile_task(subscription_id)], app)


def send_intake(
    store: Store,
    subscription_ids: Sequence[str],
    results: Sequence[IntakeResult],
    app: Celery | None = None,
) -> None:
    """Send what recorded notifications ask for (``results[i]`` came from a notification of
    ``subscription_ids[i]``): their jobs, and a reconciliation where one asks for it. If the
    broker refuses, the jobs are unclaimed for the EHR's retry (or the sweeper) to send, and
    the broker's error raised."""
    tasks = []
    for subscription_id, result in zip(subscription_ids, results, strict=True):
        tasks.extend(start_tasks(result.jobs))
        if result.reconcile:
            tasks.append(reconcile_task(subscription_id if result.gap else None))
    try:
        send_many(tasks, app)
    except BaseException:
        # If the store is down too, the sweeper cannot see these jobs as unsent; rare enough
        # (broker and store down together) that the EHR's retry is the answer.
        with contextlib.suppress(StoreError):
            store.unclaim_enqueue([job for result in results for job in result.jobs])
        raise


def send(
    name: str,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    app: Celery | None = None,
) -> None:
    """Send a task by name on ``app`` (default: the process's, from the environment)."""
    send_many([(name, args, kwargs)], app)


def send_many(tasks: Sequence[Task], app: Celery | None = None) -> None:
    """Send tasks: outside a task in one round trip to Redis, inside one with ``send_task``.
    Raises the broker's error (``redis.RedisError``, ``OSError`` or kombu's) if it is down."""
    if not tasks:
        return
    app = app or celery_app()
    # Inside a task send_task records the parent; a task registered in this process may carry
    # execution options send_task merges in. The webhook has neither.
    lean = _lean_publisher(app)
    if (
        lean is not None
        and app.current_worker_task is None
        and not any(app._tasks.get(name) is not None for name, _, _ in tasks)
        and lean.publish(tasks)
    ):
        return
    for name, args, kwargs in tasks:
        app.send_task(name, args=args, kwargs=kwargs)


class _LeanPublisher:
    """Task messages as kombu's Redis transport stores them, pushed on one Redis connection
    per process. redis-py's client spent ~90 µs of CPU per command on pooling, retries and
    observability hooks around a ~20 µs round trip, so commands go straight to a
    ``redis.Connection`` (which still does the connecting, AUTH, SELECT, TLS and parsing)."""

    def __init__(self, app: Celery, url: str) -> None:
        self.app = app
        self.url = url
        self.queues: dict[str, str] = {}  # task name -> queue (the Redis list)
        self._connection: redis.connection.AbstractConnection | None = None
        self._pid = 0
        self._origin = ""  # Celery's ``origin`` header names the sending process
        self._lock = threading.Lock()

    def queue(self, name: str) -> str | None:
        """The Redis list a task's messages go to; None where its route is not a plain queue
        on a direct exchange (then ``send_task`` works out the rest)."""
        if name not in self.queues:
            route = self.app.amqp.router.route({}, name, None, None, None)
            queue = route.get("queue")
            plain = (
                set(route) == {"queue"}
                and queue.exchange.type == "direct"
                and not queue.queue_arguments
                and not queue.max_priority
            )
            self.queues[name] = queue.name if plain else None
        return self.queues[name]

    def message(self, name: str, args: list[Any] | None, kwargs: dict[str, Any] | None) -> bytes:
        """One message, as ``send_task`` would have kombu store it."""
        task_id = uuid()
        amqp = self.app.amqp
        headers, properties, body, _ = amqp.create_task_message(
            task_id,
            name,
            args,
            kwargs,
            reply_to=self.app.thread_oid,
            create_sent_event=False,
            ignore_result=False,  # what send_task passes unless told otherwise
            # Celery's saferepr of a few ids cost 35 µs; repr gives the same text for them.
            argsrepr=plain_repr(args or (), amqp.argsrepr_maxsize),
            kwargsrepr=plain_repr(kwargs or {}, amqp.kwargsrepr_maxsize),
            origin=self._origin,
        )
        envelope = {
            "body": base64.b64encode(orjson.dumps(body)).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                **properties,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": self.queues[name]},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid_module.uuid4()),
            },
        }
        return orjson.dumps(envelope)

    def publish(self, tasks: Sequence[Task]) -> bool:
        """Push the tasks' messages; False (nothing sent) if one of them needs ``send_task``."""
        if any(self.queue(name) is None for name, _, _ in tasks):
            return False
        with self._lock:
            if self._pid != os.getpid():  # a forked child connects anew
                self._connection = None
                self._origin = anon_nodename()
                self._pid = os.getpid()
            by_queue: dict[str, list[bytes]] = {}
            try:
                for name, args, kwargs in tasks:
                    message = self.message(name, args, kwargs)
                    by_queue.setdefault(self.queues[name], []).append(message)
            except orjson.JSONEncodeError:
                return False  # not plain JSON: kombu's encoder knows more types
            self._push([("LPUSH", queue, *messages) for queue, messages in by_queue.items()])
        return True

    def _push(self, commands: list[tuple[Any, ...]]) -> None:
        """Run the commands in one round trip; a connection Redis closed is replaced once
        (as redis-py's client would), any other failure raises at once."""
        for attempt in (1, 2):
            if self._connection is None:
                pool = redis.ConnectionPool.from_url(
                    self.url, socket_timeout=5, socket_connect_timeout=2, client_name=CLIENT_NAME
                )
                self._connection = pool.make_connection()
            connection = self._connection
            try:
                connection.send_packed_command([_packed(commands)])
                for _ in commands:
                    connection.read_response()  # raises an error reply (OOM, WRONGTYPE …)
            except BaseException as exc:
                connection.disconnect()  # a reply may be left unread: start clean
                self._connection = None
                if attempt == 2 or not isinstance(exc, redis.ConnectionError | OSError):
                    raise
            else:
                return


def _packed(commands: list[tuple[Any, ...]]) -> bytes:
    """Commands of str and bytes arguments in Redis's protocol (RESP), as redis-py's packer
    writes them (a test compares the two) without its per-argument type dispatch (~5 µs)."""
    parts = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for argument in command:
            data = argument if type(argument) is bytes else argument.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def plain_repr(value: Any, limit: int) -> str | None:
    """``repr`` of a list of plain strings or a dict of them (or None), which is what Celery's
    ``saferepr`` gives for such values; None (Celery works it out) for anything else."""
    items = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict) and not all(type(key) is str for key in value):
        return None
    if not all(item is None or (type(item) is str and _PLAIN.fullmatch(item)) for item in items):
        return None
    text = repr(value)
    return text if len(text) <= limit else None


_PLAIN = re.compile(r"[A-Za-z0-9_.:/-]*")


def _lean_publisher(app: Celery) -> _LeanPublisher | None:
    """The app's lean publisher, or None where it would not produce kombu's message."""
    publisher = app.__dict__.get("_fhirgen_publisher", False)
    if publisher is False:
        publisher = app._fhirgen_publisher = _make_lean_publisher(app)  # type: ignore[attr-defined]
    if publisher is not None and _publish_signals():
        return None  # a receiver connected since: it must see every message
    return publisher


def _publish_signals() -> bool:
    return any(
        signal.receivers
        for signal in (signals.before_task_publish, signals.after_task_publish, signals.task_sent)
    )


def _make_lean_publisher(app: Celery) -> _LeanPublisher | None:
    conf = app.conf
    url = str(conf.broker_url or "")
    scheme = url.partition("://")[0]
    if (
        scheme not in ("redis", "rediss", "redis+socket")
        or conf.task_serializer != "json"
        or conf.task_compression
        or conf.task_send_sent_event
        or conf.task_protocol != 2
        or conf.task_default_delivery_mode not in ("persistent", 2)
        or (conf.broker_transport_options or {}).get("global_keyprefix")
        or not isinstance(app.backend, DisabledBackend)
    ):
        return None
    return _LeanPublisher(app, redis_url_of_broker(url))
