"""The console's pages and actions under ``/console``.

Reads go through ``fhirgen.store.console`` (the settings page through
``fhirgen.service.console_settings``), changes through ``fhirgen.service.console_actions`` (which
audit them); this module parses the request, checks the role, hands jobs to the broker and
renders. Every view of a job page is audited, since it shows patient data.
"""

from __future__ import annotations

import contextlib
import re
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.wrappers import Response as BaseResponse

from fhirgen.errors import BrokerUnavailable, StoreUnavailable
from fhirgen.service import console_actions, console_settings
from fhirgen.service.users import (
    UserError,
    authenticate,
    end_sessions,
    list_users,
    throttled,
)
from fhirgen.store import JOB_STATES, as_utc, utcnow
from fhirgen.store import console as queries
from fhirgen.store.console import AuditFilter, JobFilter
from webhooks.console import charts, sso
from webhooks.console.auth import (
    ConsoleUser,
    SignInLimiter,
    actor,
    admin_required,
    client_address,
)
from workers.enqueue import broker_errors

blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from fhirgen.store import Store
    from webhooks.app import WebhookState

    # A console action on one job (``fhirgen.service.console_actions``): the id of a job to
    # send, or None.
    JobAction = Callable[[Store, str, str], str | None]

QUEUES = ("io", "gpu")
WORKER_FRESH_SECONDS = 60.0  # four missed 15 s heartbeats
SESSION_MAX_AGE = timedelta(hours=12)  # signed in at most this long, however active
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})$")
_PUBLIC = {"console.login", "console.static", "console.sso_start", "console.sso_callback"}
limiter = SignInLimiter()


def _state() -> WebhookState:
    state: WebhookState = current_app.extensions["fhirgen"]
    return state


# -- every request ----------------------------------------------------------------------------


@blueprint.before_request
def _guard() -> BaseResponse | None:
    if request.endpoint == "console.static":
        return None
    session.permanent = True  # the idle timeout: PERMANENT_SESSION_LIFETIME, renewed per request
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        current_app.extensions["csrf"].protect()
    if request.endpoint not in _PUBLIC and current_user.is_authenticated:
        started = session.get("signed_in_at", 0.0)
        if time.time() - float(started) > SESSION_MAX_AGE.total_seconds():
            logout_user()
            session.clear()
            flash("Your session has ended; please sign in again.", "info")
            return redirect(url_for("console.login", next=_here()))
    return None


@blueprint.app_template_global()
def csrf_token() -> str:
    return generate_csrf()


@blueprint.context_processor
def _sso_label() -> dict[str, str | None]:
    """The sign-in page offers single sign-on when it is configured."""
    return {"sso_label": _state().settings.console_oidc_label if sso.sso_enabled() else None}


@blueprint.errorhandler(CSRFError)
def _csrf_refused(error: CSRFError) -> tuple[str, int]:
    return render_template("console/error.html", code=400, message=error.description), 400


@blueprint.errorhandler(403)
def _forbidden(_error: Exception) -> tuple[str, int]:
    message = "Only an admin may do this."
    return render_template("console/error.html", code=403, message=message), 403


@blueprint.errorhandler(404)
def _not_found(_error: Exception) -> tuple[str, int]:
    return render_template("console/error.html", code=404, message="Not found."), 404


@blueprint.errorhandler(400)
def _bad_request(error: Exception) -> tuple[str, int]:
    message = getattr(error, "description", None) or "Bad request."
    return render_template("console/error.html", code=400, message=message), 400


@blueprint.errorhandler(StoreUnavailable)
def _store_down(_error: StoreUnavailable) -> tuple[str, int]:
    message = "The job store cannot be reached right now; try again shortly."
    return render_template("console/error.html", code=503, message=message), 503


def _here() -> str:
    return request.full_path.rstrip("?") if request.query_string else request.path


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never another site (open redirect). A target with a
    control character (CR/LF: a header injected into the redirect) is refused with 400."""
    default = url_for("console.overview")
    if not target:
        return default
    if _CONTROL.search(target):
        abort(400, "The page to return to (next) is not a valid path.")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/console") or "\\" in target:
        return default
    return target


# -- signing in -------------------------------------------------------------------------------


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int] | str:
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(target)
        return render_template("console/login.html", next=target)
    state = _state()
    if not limiter.allow(state, client_address()):
        message = "Too many sign-in attempts; wait a minute."
        return render_template("console/login.html", next=target, error=message), 429
    name = request.form.get("username", "")[:120]
    password = request.form.get("password", "")
    user = authenticate(state.store, name, password, source=client_address())
    if user is None:
        shown = name.strip().lower() if re.fullmatch(r"[\w.@-]{1,120}", name.strip()) else "?"
        state.store.audit(shown, "sign-in-refused", detail=f"from {client_address()}")
        error = (
            "Wrong user name or password, or too many wrong ones from here: wait a few "
            "minutes, or ask an administrator to unlock the account."
        )
        return render_template("console/login.html", next=target, error=error), 401
    session.clear()  # nothing from before signing in carries over (a new CSRF token too)
    login_user(ConsoleUser(user))
    session["signed_in_at"] = time.time()
    session.permanent = True
    state.store.audit(user.username, "sign-in", detail=f"from {client_address()}")
    return redirect(target)


@blueprint.get("/login/sso")
def sso_start() -> BaseResponse:
    if not sso.sso_enabled():
        abort(404)
    return sso.start(_state().settings)


@blueprint.get("/login/sso/callback")
def sso_callback() -> BaseResponse | tuple[str, int]:
    if not sso.sso_enabled():
        abort(404)
    return sso.finish(_state(), client_address())


@blueprint.post("/logout")
def logout() -> BaseResponse:
    if current_user.is_authenticated:
        store = _state().store
        # On the server: this session's cookie, and any copy of it, is refused from now on (so
        # are the user's sessions in other browsers: one epoch per user).
        with contextlib.suppress(UserError):  # removed meanwhile: no session of theirs holds
            end_sessions(store, current_user.username)
        store.audit(actor(), "sign-out")
    logout_user()
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("console.login"))


# -- overview ---------------------------------------------------------------------------------


@blueprint.get("/")
@login_required
def overview() -> str:
    state = _state()
    numbers = queries.overview(state.store)
    labels = [point.hour.strftime("%H:00") for point in numbers.hours]
    throughput = charts.stacked_bars(
        "Jobs finished per hour, last 24 hours",
        labels,
        [
            charts.Series("bar-done", "done", [p.done for p in numbers.hours]),
            charts.Series("bar-failed", "failed", [p.failed for p in numbers.hours]),
        ],
    )
    latency = charts.lines(
        "Discharge to draft written, per hour (p50, p95)",
        labels,
        [
            charts.Series("line-p50", "p50", [p.p50 for p in numbers.hours]),
            charts.Series("line-p95", "p95", [p.p95 for p in numbers.hours]),
        ],
    )
    return render_template(
        "console/overview.html",
        o=numbers,
        states=JOB_STATES,
        throughput=throughput,
        latency=latency,
        queues=_queue_depths(state),
        workers=queries.workers_alive(state.store, within=WORKER_FRESH_SECONDS),
        duration=charts.duration,
    )


def _queue_depths(state: WebhookState) -> dict[str, int] | None:
    """Messages waiting per queue (Redis LLEN), or None when Redis does not answer."""
    try:
        with broker_errors():
            client = state.redis()
            pipe = client.pipeline()
            for queue in QUEUES:
                pipe.llen(queue)
            return dict(zip(QUEUES, (int(n) for n in pipe.execute()), strict=True))
    except BrokerUnavailable:
        return None


# -- jobs -------------------------------------------------------------------------------------


def _day(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        flash(f"Ignored {field}: {value!r} is not a date (YYYY-MM-DD).", "error")
        return None


def _day_after(value: str | None, field: str) -> datetime | None:
    """The end (exclusive) of the day ``value`` names; 400 for a day with none after it."""
    day = _day(value, field)
    try:
        return day + timedelta(days=1) if day else None
    except OverflowError:
        abort(400, f"{field}: {value!r} is out of range.")


def _row_id(value: str | None, field: str) -> int | None:
    """A row id given in the query (a page cursor); 400 for a number no row id can be."""
    if not value or not (value.isascii() and value.isdigit()):  # not "²": int() refuses it
        return None
    number = int(value[:40])
    if len(value) > 19 or number > queries.MAX_ROW_ID:
        abort(400, f"{field}: {value[:40]!r} is out of range.")
    return number


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


# -- subscriptions ----------------------------------------------------------------------------


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
    form = request.form
    kind = form.get("kind", "rest-hook")
    content = form.get("content", "id-only")
    if content not in ("empty", "id-only", "full-resource"):
        content = "id-only"
    heartbeat = form.get("heartbeat", "").strip()[:9]
    heartbeat = heartbeat if heartbeat.isascii() else ""
    options: dict[str, Any] = {
        "content": content,
        "heartbeat": int(heartbeat) if heartbeat.isdigit() and int(heartbeat) > 0 else None,
        "use_hmac": form.get("hmac") == "on",
        "payload": form.get("payload", "on") == "on",
    }
    auth = auth_from_settings(settings)
    try:
        with FhirClient(settings.ehr_base_url, auth=auth, timeout=settings.ehr_timeout) as client:
            if kind == "topic":
                topic: str | None = (form.get("topic") or "").strip() or "auto"
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


# -- audit log --------------------------------------------------------------------------------


def _audit_filter() -> AuditFilter:
    args = request.args
    return AuditFilter(
        actor=(args.get("actor") or "").strip() or None,
        action=(args.get("action") or "").strip() or None,
        job_id=(args.get("job") or "").strip() or None,
        since=_day(args.get("since"), "since"),
        until=_day_after(args.get("until"), "until"),
    )


@blueprint.get("/audit")
@login_required
def audit() -> str:
    page = queries.audit_page(
        _state().store, _audit_filter(), before=_row_id(request.args.get("before"), "before")
    )
    kept = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template(
        "console/audit.html", page=page, args=request.args, kept=kept, actions=KNOWN_ACTIONS
    )


# -- users ------------------------------------------------------------------------------------


@blueprint.get("/users")
@login_required
@admin_required
def users() -> str:
    store = _state().store
    refused = throttled(store)  # one query, not one per user
    rows = [(user, refused.get(user.username, 0)) for user in list_users(store)]
    return render_template("console/users.html", rows=rows)


@blueprint.post("/users/<name>/<any(unlock, 'end-sessions'):change>")
@login_required
@admin_required
def user_change(name: str, change: str) -> BaseResponse:
    store, name = _state().store, name[:120]
    try:
        if change == "unlock":
            cleared = console_actions.unlock_user(store, name, actor())
            flash(f"Unlocked {name}: {cleared} client(s) may try again.", "info")
        else:
            console_actions.end_user_sessions(store, name, actor())
            flash(f"Ended every session of {name}.", "info")
    except console_actions.ActionRefused as exc:
        flash(str(exc), "error")
    return redirect(url_for("console.users"))


KNOWN_ACTIONS = (
    "view-job",
    "retry",
    "regenerate",
    "regenerated-from",
    "cancel",
    "pause-subscription",
    "resume-subscription",
    "register-subscription",
    "reconcile-now",
    "sign-in",
    "sign-in-refused",
    "sign-out",
    "user-unlock",
    "user-end-sessions",
    "export-audit",
)


@blueprint.get("/audit.csv")
@login_required
def audit_csv() -> Response:
    store = _state().store
    filters = _audit_filter()
    store.audit(actor(), "export-audit", detail=request.query_string.decode()[:500] or None)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return Response(
        queries.audit_csv(store, filters),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="fhirgen-audit-{stamp}.csv"'},
    )


# -- settings ---------------------------------------------------------------------------------


@blueprint.get("/settings")
@login_required
def settings() -> str:
    return render_template(
        "console/settings.html", rows=console_settings.effective_settings(_state().settings)
    )


# -- template helpers -------------------------------------------------------------------------


@blueprint.app_template_filter("when")
def _when(value: datetime | None) -> str:
    moment = as_utc(value)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "–"


@blueprint.app_template_filter("ago")
def _ago(value: datetime | None) -> str:
    moment = as_utc(value)
    if moment is None:
        return "never"
    seconds = max((utcnow() - moment).total_seconds(), 0.0)
    return f"{charts.duration(seconds)} ago"


@blueprint.app_template_global()
def ehr_link(reference: str | None) -> str | None:
    """``<ehr_base_url>/<Type>/<id>`` for a literal reference, or None."""
    base = _state().settings.ehr_base_url
    if not base or not reference:
        return None
    match = _REFERENCE.match(reference.split("/_history")[0])
    if not match:
        return None
    return f"{base.rstrip('/')}/{match.group(1)}/{match.group(2)}"
