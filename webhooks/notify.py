"""``POST|PUT|DELETE /fhir/notify/<subscription-id>[/<Type>/<id>]``: the EHR's notifications.

Order of checks: known subscription (404), size (413), the channel's secret (401), media type and
body (415/400/422); then the event is recorded and its jobs enqueued, and only then 200. A store
or broker that cannot be reached gives 503 so the EHR retries; nothing is acknowledged that was
not recorded and enqueued.

Served in front of Flask (``NotifyEndpoint`` wraps the app's WSGI callable), on the WSGI environ:
this machine-to-machine endpoint uses none of Flask's request context, routing, session or the
console's extension hooks (CSRF, login cookie), which cost ~230 µs of CPU per notification, as
much as recording it (bench/ingest.py). Other paths go on to Flask; other methods on this one
get a 405 OperationOutcome once the subscription and its secret check out.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, NamedTuple

from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from werkzeug.datastructures import EnvironHeaders
from werkzeug.wsgi import get_input_stream

from fhirgen.fhir.notifications import NotificationError, parse_notification
from fhirgen.store import StoreError
from fhirgen.subscriptions import verify
from webhooks.intake_writer import BrokerUnavailable, WriterError
from webhooks.metrics import notified, request_seconds
from webhooks.outcomes import ACCEPTED, FHIR_JSON, outcome_body

log = logging.getLogger(__name__)
_ROUTE = re.compile(r"/fhir/notify/([^/]+)(?:/([^/]+)/([^/]+))?")
_CACHE_SECONDS = 5.0
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}

StartResponse = Callable[..., Any]


class Answer(NamedTuple):
    """What the EHR gets: a status, a FHIR JSON body, and when to retry (503)."""

    status: int
    body: bytes
    retry_after: int | None = None


class NotifyEndpoint:
    """WSGI: the notify endpoint, and ``app`` (the Flask app's own WSGI callable) for the rest."""

    def __init__(self, state: Any, app: Callable[[dict[str, Any], StartResponse], Any]) -> None:
        self.state = state
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # The server decodes the path as latin-1 (PEP 3333); URLs are UTF-8, as Flask reads them.
        path = environ.get("PATH_INFO", "").encode("latin-1", "replace").decode("utf-8", "replace")
        route = _ROUTE.fullmatch(path)
        if route is None:
            return self.app(environ, start_response)  # Flask: the console, health, metrics
        method = environ.get("REQUEST_METHOD", "")
        started = time.perf_counter()
        try:
            answer = notify(self.state, environ, method, *route.groups())
        except Exception:  # noqa: BLE001  # answered 500; no traceback (it could quote the body)
            log.error("subscription %s: internal error answering a notification", route[1][:64])
            notified("error", "500").inc()
            answer = Answer(500, outcome_body("exception", "internal error"))
        headers = [
            ("Content-Type", FHIR_JSON),
            ("Content-Length", str(len(answer.body))),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if answer.retry_after is not None:
            headers.append(("Retry-After", str(answer.retry_after)))
        start_response(_STATUS_LINES[answer.status], headers)
        request_seconds("notify.notify").observe(time.perf_counter() - started)
        return [answer.body]


def notify(
    state: Any,
    environ: dict[str, Any],
    method: str,
    subscription_id: str,
    path_type: str | None = None,
    path_id: str | None = None,
) -> Answer:
    """Check, record and enqueue one notification; the answer for the EHR."""
    try:
        subscription = _subscription(state, subscription_id)
    except StoreError:
        return _unavailable("store", subscription_id)
    if subscription is None:
        return _refuse(404, "not-found", "unknown subscription", subscription_id)
    if subscription.status in ("off", "paused"):
        return _refuse(404, "not-found", f"subscription is {subscription.status}", subscription_id)
    limit = state.settings.max_notification_bytes
    length = _content_length(environ)
    if length is not None and length > limit:
        return _refuse(413, "too-costly", f"body over {limit} bytes", subscription_id)
    body = get_input_stream(environ).read(limit + 1)
    if len(body) > limit:
        return _refuse(413, "too-costly", f"body over {limit} bytes", subscription_id)
    problem = verify(subscription, EnvironHeaders(environ), body, state.vault)
    if problem:
        return _refuse(401, "login", problem, subscription_id)
    try:
        notification = parse_notification(
            method,
            body,
            content_type=environ.get("CONTENT_TYPE") or None,
            path_type=path_type,
            path_id=path_id,
        )
    except NotificationError as exc:
        return _refuse(exc.status, exc.code, str(exc), subscription_id)
    try:
        intake = state.take(subscription_id, notification)
    except StoreError:
        return _unavailable("store", subscription_id)
    except (BrokerError, RedisError, OSError, BrokerUnavailable):
        return _unavailable("broker", subscription_id)
    except WriterError:
        return _unavailable("intake", subscription_id)
    notified(notification.kind, "200").inc()
    # DEBUG: each one is in the store's notification events already; the log carries problems.
    log.debug(
        "subscription %s: %s, %d event(s), %d job(s)%s",
        subscription_id,
        notification.kind,
        intake.events,
        len(intake.jobs),
        f", gap {intake.gap[0]}-{intake.gap[1]}" if intake.gap else "",
    )
    # HAPI-style servers expect the resource back from a PUT.
    return Answer(200, body if method == "PUT" else ACCEPTED)


def _content_length(environ: dict[str, Any]) -> int | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length >= 0 else None


def _subscription(state: Any, subscription_id: str) -> Any:
    """The subscription's row, cached a few seconds (one lookup per notification otherwise)."""
    now = time.monotonic()
    cached = state.subscriptions.get(subscription_id)
    if cached is not None and now - cached[0] < _CACHE_SECONDS:
        return cached[1]
    row = state.store.subscription(subscription_id)
    state.subscriptions[subscription_id] = (now, row)
    return row


def _refuse(status: int, code: str, why: str, subscription_id: str) -> Answer:
    notified("refused", str(status)).inc()
    log.info("subscription %s: refused %d (%s)", subscription_id[:64], status, why)
    return Answer(status, outcome_body(code, why))


def _unavailable(what: str, subscription_id: str) -> Answer:
    notified("unavailable", "503").inc()
    log.warning("subscription %s: %s unavailable, answered 503", subscription_id[:64], what)
    return Answer(503, outcome_body("transient", f"{what} unavailable; retry later"), 5)
