"""``POST|PUT /fhir/notify/<subscription-id>[/<Type>/<id>]``: the EHR's notifications.

Order of checks: a subscription id that could be ours and is known and active (404; an active
subscription's row is kept 5 s per process, and the transaction that records a notification
checks the status again, so a pause holds at once in every worker), size (413), the
channel's secret (401), method (405), media type and body (415/400/422), the number of events
(413). Then the notification and its jobs are committed in one transaction and the answer is
200; the jobs are sent to the broker after the commit (``workers.enqueue.send_jobs``), and
what the broker did not take the outbox relay sends later. Only a store that cannot be
reached gives 503 (with Retry-After) so the EHR retries. What the request sent is logged
through ``fhirgen.logs.loggable`` (cut, control characters escaped).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException, InternalServerError, NotFound

from fhirgen.errors import StoreUnavailable, SubscriptionInactive
from fhirgen.fhir.notifications import NotificationError, parse_notification
from fhirgen.logs import loggable
from fhirgen.service.intake import accept
from fhirgen.service.subscriptions import is_subscription_id, verify
from fhirgen.store import INACTIVE
from webhooks.metrics import notified
from webhooks.outcomes import ACCEPTED, FHIR_JSON, outcome_body

if TYPE_CHECKING:
    from sqlalchemy import Row

    from webhooks.app import WebhookState

log = logging.getLogger(__name__)
blueprint = Blueprint("notify", __name__)
# Every method reaches the view, so that others get a 405 once the secret checks out.
_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


@blueprint.route("/fhir/notify/<subscription_id>", methods=_METHODS)
@blueprint.route("/fhir/notify/<subscription_id>/<path_type>/<path_id>", methods=_METHODS)
def notify(
    subscription_id: str, path_type: str | None = None, path_id: str | None = None
) -> Response:
    """Check, record and send one notification; the answer for the EHR."""
    state: WebhookState = current_app.extensions["fhirgen"]
    if not is_subscription_id(subscription_id):  # refused before any look-up
        return _refuse(404, "not-found", "not a subscription id", subscription_id)
    try:
        subscription = _subscription(state, subscription_id)
    except StoreUnavailable:
        return _unavailable(subscription_id)
    if subscription is None:
        return _refuse(404, "not-found", "unknown subscription", subscription_id)
    if subscription.status in INACTIVE:
        return _refuse(404, "not-found", f"subscription is {subscription.status}", subscription_id)
    limit = state.settings.max_notification_bytes
    if request.content_length is not None and request.content_length > limit:
        return _refuse(413, "too-costly", f"body over {limit} bytes", subscription_id)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _refuse(413, "too-costly", f"body over {limit} bytes", subscription_id)
    problem = verify(subscription, dict(request.headers), body, state.vault)
    if problem:
        return _refuse(401, "login", problem, subscription_id)
    try:
        notification = parse_notification(
            request.method,
            body,
            content_type=request.content_type,
            path_type=path_type,
            path_id=path_id,
            max_events=state.settings.max_notification_events,
        )
    except NotificationError as exc:
        return _refuse(exc.status, exc.code, str(exc), subscription_id)
    try:
        intake = accept(state.store, subscription_id, notification)
    except StoreUnavailable:
        return _unavailable(subscription_id)
    except SubscriptionInactive as exc:  # paused since it was read: nothing was recorded
        state.active_subscriptions.pop(subscription_id)
        return _refuse(404, "not-found", str(exc), subscription_id)
    state.send(subscription_id, intake)  # after the commit; never refuses what is recorded
    notified(notification.kind, "200").inc()
    # DEBUG: each one is in the store's notification events already; the log carries problems.
    log.debug(
        "subscription %s: %s, %d event(s), %d job(s)%s",
        loggable(subscription_id),
        notification.kind,
        intake.events,
        len(intake.jobs),
        f", gap {intake.gap[0]}-{intake.gap[1]}" if intake.gap else "",
    )
    # HAPI-style servers expect the resource back from a PUT.
    return _answer(200, body if request.method == "PUT" else ACCEPTED)


def _subscription(state: WebhookState, subscription_id: str) -> Row | None:
    """The subscription's row: an active one from this process's recent reads (it is read for
    its secrets; the intake re-checks the status), else from the store. Unknown, paused and
    off subscriptions are never kept."""
    row = state.active_subscriptions.get(subscription_id)
    if row is None:
        row = state.store.subscription(subscription_id)
        if row is not None and row.status not in INACTIVE:
            state.active_subscriptions.put(subscription_id, row)
    return row


def _answer(status: int, body: bytes, retry_after: int | None = None) -> Response:
    response = Response(body, status=status, content_type=FHIR_JSON)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _refuse(status: int, code: str, why: str, subscription_id: str) -> Response:
    notified("refused", str(status)).inc()
    log.info(
        "subscription %s: refused %d (%s)", loggable(subscription_id), status, loggable(why, 200)
    )
    return _answer(status, outcome_body(code, why))


def _unavailable(subscription_id: str) -> Response:
    notified("unavailable", "503").inc()
    log.warning("subscription %s: store unavailable, answered 503", loggable(subscription_id))
    return _answer(503, outcome_body("transient", "store unavailable; retry later"), 5)


@blueprint.errorhandler(InternalServerError)
def _internal_error(_error: InternalServerError) -> Response:
    """A bug answers a 500 OperationOutcome, never an HTML page."""
    notified("error", "500").inc()
    return _answer(500, outcome_body("exception", "internal error"))


@blueprint.errorhandler(HTTPException)
def _refused_by_werkzeug(error: HTTPException) -> Response:
    """What Werkzeug refuses inside the view (a body shorter than its Content-Length, the
    client gone) is a 4xx OperationOutcome like every other refusal, never an HTML page."""
    status = error.code if error.code and 400 <= error.code < 500 else 400
    subscription_id = (request.view_args or {}).get("subscription_id", "")
    return _refuse(status, "invalid", error.name, str(subscription_id))


@blueprint.app_errorhandler(NotFound)
def _no_such_endpoint(error: NotFound) -> Response | NotFound:
    """A path under ``/fhir/`` that no route serves (``/fhir/notify/a/b``, an id with ``%2F``)
    is answered as FHIR; others keep Flask's page."""
    if not request.path.startswith("/fhir/"):
        return error
    return _refuse(404, "not-found", "no such endpoint", "")
