"""The subscriptions page: our subscriptions, pausing and resuming them, registering one on the
EHR, and starting reconciliation."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import login_required
from werkzeug.wrappers import Response as BaseResponse

from fhirgen.errors import BrokerUnavailable
from fhirgen.service import console_actions
from fhirgen.store import console as queries
from webhooks.console.auth import actor, admin_required
from webhooks.console.forms import RegisterSubscriptionForm
from webhooks.console.views.common import _state, blueprint


@blueprint.get("/subscriptions")
@login_required
def subscriptions() -> str:
    state = _state()
    return render_template(
        "console/subscriptions.html",
        rows=queries.subscriptions(state.store),
        ehr_configured=bool(state.settings.ehr_base_url),
        public_url=state.settings.public_url,
    )


@blueprint.post("/subscriptions/<subscription_id>/<any(pause, resume):change>")
@login_required
@admin_required
def subscription_status(subscription_id: str, change: str) -> BaseResponse:
    state = _state()
    act = (
        console_actions.pause_subscription
        if change == "pause"
        else console_actions.resume_subscription
    )
    try:
        act(state.store, subscription_id, actor())
    except console_actions.ActionRefused as exc:
        flash(str(exc), "error")
    else:
        flash(f"Subscription {subscription_id} {change}d.", "info")
    return redirect(url_for("console.subscriptions"))


@blueprint.post("/subscriptions/register")
@login_required
@admin_required
def register_subscription() -> BaseResponse:
    from fhirgen.errors import FhirgenError
    from fhirgen.fhir.auth import auth_from_settings
    from fhirgen.fhir.client import FhirClient
    from fhirgen.service.subscriptions import discover_topics, pick_discharge_topic

    state = _state()
    settings = state.settings
    if not settings.ehr_base_url:
        flash("FHIRGEN_EHR_BASE_URL is not set: there is no EHR to register with.", "error")
        return redirect(url_for("console.subscriptions"))
    form = RegisterSubscriptionForm()
    if not form.validate_on_submit():
        flash(f"Registration refused: {form.first_error()}.", "error")
        return redirect(url_for("console.subscriptions"))
    options: dict[str, Any] = {
        "content": form.content.data,
        "heartbeat": form.heartbeat.data or None,  # 0 or blank: no heartbeat
        "use_hmac": form.hmac.data,
        "payload": form.payload.data,
    }
    auth = auth_from_settings(settings)
    try:
        with FhirClient(settings.ehr_base_url, auth=auth, timeout=settings.ehr_timeout) as client:
            if form.kind.data == "topic":
                topic: str | None = form.topic.data or "auto"
                if topic == "auto":
                    topic = pick_discharge_topic(discover_topics(client))
                    if topic is None:
                        flash("The EHR offers no encounter-complete topic.", "error")
                        return redirect(url_for("console.subscriptions"))
                options["topic"] = topic
            registration = console_actions.register_subscription(
                state.store, client, settings, actor(), **options
            )
    except FhirgenError as exc:
        flash(f"Registration failed: {exc}", "error")
        return redirect(url_for("console.subscriptions"))
    finally:
        close = getattr(auth, "close", None)  # SMART backend auth holds an HTTP client
        if close is not None:
            close()
    flash(
        f"Registered subscription {registration.id} (EHR Subscription/{registration.ehr_id}, "
        f"{registration.status}).",
        "info",
    )
    return redirect(url_for("console.subscriptions"))


@blueprint.post("/reconcile")
@login_required
@admin_required
def reconcile() -> BaseResponse:
    try:
        _state().enqueue_reconcile(None)
    except BrokerUnavailable:
        flash("The broker is unreachable; reconciliation was not started.", "error")
    else:
        console_actions.reconcile_now(_state().store, actor())
        flash("Reconciliation started: finished stays without a draft get a job.", "info")
    return redirect(url_for("console.subscriptions"))
