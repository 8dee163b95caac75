"""Signing in and out: the sign-in form (rate-limited per client), single sign-on, sign-out."""

from __future__ import annotations

import contextlib
import re
import time
from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_limiter import RateLimitExceeded
from flask_login import current_user, login_user, logout_user
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response as BaseResponse

from fhirgen.service.users import UserError, authenticate, end_sessions
from webhooks.console import sso
from webhooks.console.auth import ConsoleUser, actor, client_address
from webhooks.console.forms import LoginForm
from webhooks.console.views.common import _state, blueprint
from webhooks.console.views.hooks import _bad_request

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


@blueprint.errorhandler(RateLimitExceeded)
def _too_many_sign_ins(_error: RateLimitExceeded) -> tuple[str, int]:
    """Over the sign-in limit (``auth.limit_sign_ins``): the sign-in page again, with 429."""
    try:
        target = _safe_next(request.values.get("next"))
    except BadRequest as bad:  # counted before the view read it: its 400 as the view gives it
        return _bad_request(bad)
    message = "Too many sign-in attempts; wait a minute."
    return render_template("console/login.html", next=target, error=message), 429


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int] | str:
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(target)
        return render_template("console/login.html", next=target)
    state = _state()
    form = LoginForm()
    name = (form.username.data or "")[:120]
    user = None
    if form.validate_on_submit():  # a form without both fields is refused like a wrong one
        user = authenticate(state.store, name, form.password.data, source=client_address())
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
