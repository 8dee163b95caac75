"""``POST|PUT|DELETE /fhir/notify/<subscription-id>[/<Type>/<id>]``: the EHR's notifications.

Order of checks: known subscription (404), size (413), the channel's secret (401), media type and
body (415/400/422); then the event is recorded and its jobs enqueued, and only then 200. A store
or broker that cannot be reached gives 503 so the EHR retries; nothing is acknowledged that was
not recorded and enqueued.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, request
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from fhirgen.fhir.notifications import NotificationError, parse_notification
from fhirgen.store import StoreError
from fhirgen.subscriptions import verify
from webhooks.metrics import NOTIFICATIONS
from webhooks.outcomes import ACCEPTED, FHIR_JSON, outcome

log = logging.getLogger(__name__)
blueprint = Blueprint("notify", __name__)
_METHODS = ["POST", "PUT", "DELETE"]
_CACHE_SECONDS = 5.0


@blueprint.route("/fhir/notify/<subscription_id>", methods=_METHODS)
@blueprint.route("/fhir/notify/<subscription_id>/<path_type>/<path_id>", methods=_METHODS)
def notify(
    subscription_id: str, path_type: str | None = None, path_id: str | None = None
) -> Response:
    state = current_app.extensions["fhirgen"]
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    try:
        subscription = _subscription(state, subscription_id)
    except StoreError:
        return _unavailable("store", subscription_id)
    if subscription is None:
        return _refuse(404, "not-found", "unknown subscription", subscription_id)
    if subscription.status in ("off", "paused"):
        return _refuse(404, "not-found", f"subscription is {subscription.status}", subscription_id)
    limit = state.settings.max_notification_bytes
    if req.content_length is not None and req.content_length > limit:
        return _refuse(413, "too-costly", f"body over {limit} bytes", subscription_id)
    body = req.stream.read(limit + 1)
    if len(body) > limit:
        return _refuse(413, "too-costly", f"body over {limit} bytes", subscription_id)
    problem = verify(subscription, req.headers, body, state.vault)
    if problem:
        return _refuse(401, "login", problem, subscription_id)
    try:
        notification = parse_notification(
            req.method,
            body,
            content_type=req.content_type,
            path_type=path_type,
            path_id=path_id,
        )
    except NotificationError as exc:
        return _refuse(exc.status, exc.code, str(exc), subscription_id)
    try:
        intake = state.take(subscription_id, notification)
    except StoreError:
        return _unavailable("store", subscription_id)
    except (BrokerError, RedisError, OSError):
        return _unavailable("broker", subscription_id)
    NOTIFICATIONS.labels(kind=notification.kind, status="200").inc()
    log.info(
        "subscription %s: %s, %d event(s), %d job(s)%s",
        subscription_id,
        notification.kind,
        intake.events,
        len(intake.jobs),
        f", gap {intake.gap[0]}-{intake.gap[1]}" if intake.gap else "",
    )
    if req.method == "PUT":
        # HAPI-style servers expect the resource back.
        return Response(body, status=200, mimetype=FHIR_JSON)
    return Response(ACCEPTED, status=200, mimetype=FHIR_JSON)


def _subscription(state: Any, subscription_id: str) -> Any:
    """The subscription's row, cached a few seconds (one lookup per notification otherwise)."""
    now = time.monotonic()
    cached = state.subscriptions.get(subscription_id)
    if cached is not None and now - cached[0] < _CACHE_SECONDS:
        return cached[1]
    row = state.store.subscription(subscription_id)
    state.subscriptions[subscription_id] = (now, row)
    return row


def _refuse(status: int, code: str, why: str, subscription_id: str) -> Response:
    NOTIFICATIONS.labels(kind="refused", status=str(status)).inc()
    log.info("subscription %s: refused %d (%s)", subscription_id[:64], status, why)
    return outcome(status, code, why)


def _unavailable(what: str, subscription_id: str) -> Response:
    NOTIFICATIONS.labels(kind="unavailable", status="503").inc()
    log.warning("subscription %s: %s unavailable, answered 503", subscription_id[:64], what)
    response = outcome(503, "transient", f"{what} unavailable; retry later")
    response.headers["Retry-After"] = "5"
    return response
