"""The admin console under ``/console``: server-rendered pages, signed-in users, audited views.

``init_console(app, state)`` is all the app factory calls: it sets the session key and cookie
flags, and registers Flask-Login, CSRF protection (for the console's forms only: the EHR's
notifications carry no CSRF token), the blueprint and the sign-in rate limit (Flask-Limiter).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask, Request, Response, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from fhirgen.service.users import console_session_key

if TYPE_CHECKING:
    from webhooks.app import WebhookState

__all__ = ["init_console"]


def init_console(app: Flask, state: WebhookState) -> None:
    """Register the console on ``app``; ``state`` is the app's ``WebhookState``."""
    from webhooks.console.auth import limit_sign_ins, login_manager
    from webhooks.console.sso import init_sso
    from webhooks.console.views import blueprint

    settings = state.settings
    app.secret_key = console_session_key(settings)
    secure = settings.console_cookie_secure
    if secure is None:  # the safe default: Secure whenever the console is served over HTTPS
        secure = str(settings.public_url).lower().startswith("https://")
    idle = settings.console_idle_minutes
    app.config.update(
        SESSION_COOKIE_NAME="fhirgen_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(secure),
        # Signed with a timestamp and renewed on each request: a session idle for longer than
        # this is refused on the server, whatever the browser keeps.
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=float(idle)),
        SESSION_REFRESH_EACH_REQUEST=True,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=bool(secure),
        REMEMBER_COOKIE_SAMESITE="Lax",
        # The console's views call protect() themselves; /fhir/notify must stay token-free.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the (idle-limited) session
    )
    app.session_interface = _ConsoleSessions()
    CSRFProtect(app)
    login_manager.init_app(app)
    init_sso(app, settings)
    app.register_blueprint(blueprint)
    limit_sign_ins(app, settings)
    app.after_request(_console_headers)


def _console_headers(response: Response) -> Response:
    """The console's security headers on every response under ``/console``: the blueprint's
    own hooks run only for paths one of its views has, not for a 404 of another path, a 405
    or routing's redirect to the trailing slash."""
    from webhooks.console.auth import add_security_headers

    if request.path == "/console" or request.path.startswith("/console/"):
        add_security_headers(response)
    return response


class _ConsoleSessions(SecureCookieSessionInterface):
    """Cookie sessions only under the cookie's path (``/console``), the only place a browser
    sends it: the EHR's notifications, health checks and metrics get the empty null session
    instead of a signing serializer built and a cookie looked for on every request."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(app.config["SESSION_COOKIE_PATH"]):
            return self.make_null_session(app)
        return super().open_session(app, request)
