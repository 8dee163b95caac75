"""The Celery app: queues, routing and the reliability settings every task runs under.

Two queues: ``io`` (read the stay from the EHR, write the drafts back, reconciliation) and
``gpu`` (generate; one process per GPU, prefetch 1). Messages carry job ids only.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from celery import Celery
from celery.signals import setup_logging
from kombu import Queue

from fhirgen.config import Settings, load_settings
from fhirgen.service.broker import celery_broker_url

TASK_QUEUES = {
    "fhirgen.read_stay": "io",
    "fhirgen.write_back": "io",
    "fhirgen.reconcile": "io",
    "fhirgen.watch_subscriptions": "io",
    "fhirgen.requeue_stalled": "io",
    "fhirgen.relay_outbox": "io",
    "fhirgen.generate": "gpu",
}


RELAY_SECONDS = 5.0  # how often the outbox relay sends what was committed but not sent
# A web request that cannot reach the broker gives up at once (the relay sends the job later):
# no reconnect attempts, and a connect or reply that takes over 2 s counts as down.
FAIL_FAST = {"max_retries": 0, "socket_connect_timeout": 2, "socket_timeout": 2}


def create_celery(settings: Settings, *, fail_fast: bool = False) -> Celery:
    """A Celery app configured from settings (the broker is resolved here, not at import).

    ``fail_fast`` (the webhook and console): the broker's connection is not retried."""
    app = Celery("fhirgen", include=["workers.tasks"])
    app.conf.update(
        broker_url=celery_broker_url(settings),
        broker_connection_retry_on_startup=True,
        # Redis redelivers an unacknowledged task after this long: above the longest job, or a
        # slow generation runs twice.
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            **(FAIL_FAST if fail_fast else {}),
        },
        task_queues=[Queue("io"), Queue("gpu")],
        task_default_queue="io",
        task_routes={name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        # A task is acknowledged when it finishes, and requeued if its worker process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,  # results live in the job store and in FHIR
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        beat_schedule={
            "reconcile": {
                "task": "fhirgen.reconcile",
                "schedule": timedelta(seconds=settings.reconcile_interval),
            },
            "watch-subscriptions": {
                "task": "fhirgen.watch_subscriptions",
                "schedule": timedelta(seconds=max(5.0, min(60.0, settings.reconcile_interval))),
            },
            "requeue-stalled": {
                "task": "fhirgen.requeue_stalled",
                "schedule": timedelta(seconds=60),
            },
            "relay-outbox": {
                "task": "fhirgen.relay_outbox",
                "schedule": timedelta(seconds=RELAY_SECONDS),
                # A relay that waited longer is superseded by the next one.
                "options": {"expires": RELAY_SECONDS},
            },
        },
    )
    return app


@setup_logging.connect
def _logging(loglevel: str | int | None = None, **_kwargs: object) -> None:
    """Workers log like the rest of fhirgen: ids only, chatty HTTP libraries quieted."""
    from fhirgen.logs import configure_logging

    configure_logging(load_settings().log_level)


@cache
def celery_app() -> Celery:
    """The process's Celery app, from the environment's settings."""
    return create_celery(load_settings())
