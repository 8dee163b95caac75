"""The app factory: one Settings object, one Store, the broker, the blueprints."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask, Response, g, request

from fhirgen.broker import redis_url
from fhirgen.config import Settings, load_settings
from fhirgen.fhir.notifications import Notification
from fhirgen.group_commit import GroupCommit
from fhirgen.intake import accept_many, received
from fhirgen.secrets import Vault
from fhirgen.store import IntakeResult, Store
from webhooks.intake_writer import WriterClients, socket_path


@dataclass
class WebhookState:
    """What views share: settings, store, vault, broker access, the subscription cache, and
    the intake's group commit."""

    settings: Settings
    store: Store
    vault: Vault
    subscriptions: dict[str, Any] = field(default_factory=dict)
    _redis: redis.Redis | None = None
    _celery: Any = None

    def __post_init__(self) -> None:
        self._intake: GroupCommit[tuple[str, Notification], IntakeResult] = GroupCommit(
            self._record, gate=self.store.intake_lock, finish=self._enqueue
        )
        path = socket_path(self.store)
        self._writer = WriterClients(path) if path else None

    def celery(self) -> Any:
        """A Celery app on this app's broker (not the environment's), made on first use."""
        if self._celery is None:
            from workers.app import create_celery

            self._celery = create_celery(self.settings)
        return self._celery

    def take(self, subscription_id: str, notification: Notification) -> IntakeResult:
        """Record a notification and enqueue what it asks for; returns only once both are done.

        Through the intake writer where it runs (``webhooks.intake_writer``: one transaction
        and one broker round trip for what all workers have waiting). Otherwise here:
        notifications that arrive while another thread is committing, or while another
        process holds the store's intake lock, wait, then go together (``GroupCommit``).
        Raises ``StoreError`` if the store, the broker's error or ``BrokerUnavailable`` if the
        broker, ``WriterError`` if the writer, is unavailable.
        """
        client = self._writer.client() if self._writer is not None else None
        if client is not None:
            (result,) = client.record([received(subscription_id, notification)])
            return result
        return self._intake.submit((subscription_id, notification))

    def _record(self, batch: Sequence[tuple[str, Notification]]) -> list[IntakeResult]:
        return accept_many(self.store, batch)

    def _enqueue(
        self, batch: Sequence[tuple[str, Notification]], results: Sequence[IntakeResult]
    ) -> None:
        from workers.enqueue import send_intake

        send_intake(
            self.store, [subscription_id for subscription_id, _ in batch], results, self.celery()
        )

    def enqueue_jobs(self, job_ids: Any) -> None:
        from workers.enqueue import enqueue_jobs

        enqueue_jobs(job_ids, self.celery())

    def enqueue_reconcile(self, subscription_id: str | None) -> None:
        from workers.enqueue import enqueue_reconcile

        enqueue_reconcile(subscription_id, self.celery())

    def redis(self) -> redis.Redis:
        """One client per process (made after gunicorn forks, on first use)."""
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                redis_url(self.settings), socket_timeout=2, socket_connect_timeout=2
            )
        return self._redis


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> Flask:
    """Build the Flask app; ``migrate`` brings the store's schema up to date first."""
    from webhooks import health, notify
    from webhooks.console import init_console
    from webhooks.metrics import request_seconds

    settings = settings or load_settings()
    # The webhook commits in the request: SQLite's WAL checkpoints run beside it, not in it.
    store = Store.from_settings(settings, background_checkpoints=True)
    if migrate:
        store.migrate()
    app = Flask("fhirgen")
    app.extensions["fhirgen"] = WebhookState(settings=settings, store=store, vault=Vault(settings))
    app.register_blueprint(health.blueprint)
    init_console(app, app.extensions["fhirgen"])
    app.wsgi_app = notify.NotifyEndpoint(app.extensions["fhirgen"], app.wsgi_app)  # type: ignore[method-assign]

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.endpoint:
            request_seconds(request.endpoint).observe(
                time.perf_counter() - g.get("started", time.perf_counter())
            )
        return response

    return app
