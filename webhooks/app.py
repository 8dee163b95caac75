"""The app factory: one Settings object, one Store, the broker, the blueprints."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from fhirgen.caches import RecentCache
from fhirgen.config import Settings, load_settings
from fhirgen.errors import TransientError
from fhirgen.logs import loggable
from fhirgen.service.broker import redis_url
from fhirgen.service.vault import Vault
from fhirgen.store import IntakeResult, Store

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy import Row

log = logging.getLogger(__name__)


@dataclass
class WebhookState:
    """What views share: settings, store, vault, broker access, recently read subscriptions."""

    settings: Settings
    store: Store
    vault: Vault
    # Active subscriptions' rows, read for their secrets, at most 1,024 and for 5 s each (the
    # webhook's own reads; whether one is still active the intake's transaction checks anew).
    active_subscriptions: RecentCache[str, Row[Any]] = field(
        default_factory=lambda: RecentCache(1024, 5.0)
    )
    _redis: redis.Redis | None = None
    _celery: Celery | None = None

    def celery(self) -> Celery:
        """A Celery app on this app's broker (not the environment's), made on first use; its
        sends fail fast (a request never waits on a broker that is down)."""
        if self._celery is None:
            from workers.app import create_celery

            self._celery = create_celery(self.settings, fail_fast=True)
        return self._celery

    def send(self, subscription_id: str, intake: IntakeResult) -> None:
        """After the commit: send a notification's new jobs (marked sent) and the reconciliation
        it asks for. A broker or store that fails here is logged, not raised: the jobs are
        committed, and the relay sends what was not marked sent (a reconciliation that was not
        sent is the scheduled one's to do)."""
        from workers.enqueue import enqueue_reconcile, send_jobs

        try:
            send_jobs(self.store, intake.jobs, self.celery(), fail_fast=True)
            if intake.reconcile:
                subscription = subscription_id if intake.gap else None
                enqueue_reconcile(subscription, self.celery(), fail_fast=True)
        except TransientError as exc:
            log.warning(
                "subscription %s: recorded, not sent (%s); the relay sends its jobs",
                loggable(subscription_id),
                loggable(exc, 200),
            )

    def enqueue_jobs(self, job_ids: Sequence[str]) -> None:
        """Send committed jobs now (raises ``BrokerUnavailable``; the relay sends them later)."""
        from workers.enqueue import send_jobs

        send_jobs(self.store, job_ids, self.celery(), fail_fast=True)

    def enqueue_reconcile(self, subscription_id: str | None) -> None:
        from workers.enqueue import enqueue_reconcile

        enqueue_reconcile(subscription_id, self.celery(), fail_fast=True)

    def redis(self) -> redis.Redis:
        """One client per process (made after gunicorn forks, on first use)."""
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                redis_url(self.settings), socket_timeout=2, socket_connect_timeout=2
            )
        return self._redis


class _App(Flask):
    def log_exception(self, exc_info: Any) -> None:
        """Flask's line for a 500, with the request's path and method escaped (a path can
        hold newlines and escape sequences)."""
        self.logger.error(
            "Exception on %s [%s]",
            loggable(request.path, 300),
            loggable(request.method, 16),
            exc_info=exc_info,
        )


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> Flask:
    """Build the Flask app; ``migrate`` brings the store's schema up to date first."""
    from webhooks import health, notify
    from webhooks.console import init_console
    from webhooks.metrics import request_seconds

    settings = settings or load_settings()
    store = Store.from_settings(settings)
    if migrate:
        store.migrate()
    app = _App("fhirgen")
    if settings.trusted_proxies:
        # The client's address (sign-in throttling, the audit) from X-Forwarded-For, as set by
        # that many proxies in front (the shipped nginx is one); never trusted without them.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    app.extensions["fhirgen"] = WebhookState(settings=settings, store=store, vault=Vault(settings))
    app.register_blueprint(health.blueprint)
    app.register_blueprint(notify.blueprint)
    init_console(app, app.extensions["fhirgen"])

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
