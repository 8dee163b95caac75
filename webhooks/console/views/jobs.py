"""The jobs pages: the filtered list, one job's detail (every view audited), and the admin's
retry, regenerate and cancel actions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response as BaseResponse

from fhirgen.errors import BrokerUnavailable
from fhirgen.service import console_actions
from fhirgen.store import JOB_STATES
from fhirgen.store import console as queries
from fhirgen.store.console import JobFilter
from webhooks.console.auth import actor, admin_required
from webhooks.console.views.common import _day, _day_after, _state, blueprint

if TYPE_CHECKING:
    from collections.abc import Callable

    from fhirgen.store import Store

    # A console action on one job (``fhirgen.service.console_actions``): the id of a job to
    # send, or None.
    JobAction = Callable[[Store, str, str], str | None]


@blueprint.get("/jobs")
@login_required
def jobs() -> str:
    state = _state()
    args = request.args
    filters = JobFilter(
        state=args.get("state") if args.get("state") in JOB_STATES else None,
        since=_day(args.get("since"), "since"),
        until=_day_after(args.get("until"), "until"),
        subscription_id=args.get("subscription") or None,
        backend=args.get("backend") or None,
        encounter=(args.get("q") or "").strip()[:64] or None,
    )
    page = queries.list_jobs(
        state.store, filters, before=args.get("before"), after=args.get("after")
    )
    from fhirgen.drafting.generation import backend_names

    kept = {k: v for k, v in args.items() if k not in ("before", "after") and v}
    return render_template(
        "console/jobs.html",
        page=page,
        args=args,
        kept=kept,
        states=JOB_STATES,
        subscriptions=queries.subscription_ids(state.store),
        backends=backend_names(),
    )


@blueprint.get("/jobs/<job_id>")
@login_required
def job(job_id: str) -> str:
    state = _state()
    detail = queries.job_detail(state.store, job_id[:64])
    if detail is None:
        abort(404)
    # The page shows patient data: who looked, and when, goes to the audit log.
    state.store.audit(actor(), queries.VIEW_ACTION, job_id=detail.job.id)
    return render_template(
        "console/job.html",
        d=detail,
        j=detail.job,
        retryable=detail.job.state in console_actions.RETRYABLE,
        cancellable=detail.job.state in console_actions.CANCELLABLE,
        regenerable=detail.job.state == "done",
    )


def _enqueue(job_id: str) -> bool:
    """Hand a committed job to the broker; if it is down, the outbox relay sends it (False)."""
    try:
        _state().enqueue_jobs([job_id])
    except BrokerUnavailable:
        return False
    return True


def _job_action(job_id: str, act: JobAction, done: str) -> BaseResponse:
    try:
        result = act(_state().store, job_id, actor())
    except console_actions.ActionRefused as exc:
        flash(str(exc), "error")
        return redirect(url_for("console.job", job_id=job_id))
    target = result if isinstance(result, str) else job_id
    if isinstance(result, str) and not _enqueue(result):
        done += " The broker is unreachable: the job is sent as soon as it is back."
    flash(done, "info")
    return redirect(url_for("console.job", job_id=target))


@blueprint.post("/jobs/<job_id>/retry")
@login_required
@admin_required
def retry(job_id: str) -> BaseResponse:
    return _job_action(job_id, console_actions.retry_job, "Retrying the job.")


@blueprint.post("/jobs/<job_id>/regenerate")
@login_required
@admin_required
def regenerate(job_id: str) -> BaseResponse:
    return _job_action(
        job_id,
        console_actions.regenerate_job,
        "A new draft is on its way; it replaces the earlier one when written.",
    )


@blueprint.post("/jobs/<job_id>/cancel")
@login_required
@admin_required
def cancel(job_id: str) -> BaseResponse:
    return _job_action(job_id, console_actions.cancel_job, "Job cancelled.")
