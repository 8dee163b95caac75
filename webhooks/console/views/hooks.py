"""What runs around every console request: the session guard (CSRF, the absolute session
limit), the error pages, and the template filters and globals the pages use."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.wrappers import Response as BaseResponse

from fhirgen.errors import StoreUnavailable
from fhirgen.store import as_utc, utcnow
from webhooks.console import charts, sso
from webhooks.console.views.common import _state, blueprint

SESSION_MAX_AGE = timedelta(hours=12)  # signed in at most this long, however active
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})$")
_PUBLIC = {"console.login", "console.static", "console.sso_start", "console.sso_callback"}


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
