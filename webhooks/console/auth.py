"""Console sign-in: Flask-Login sessions, roles, the sign-in rate limit, security headers."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Response, abort, current_app, request
from flask_login import LoginManager, UserMixin, current_user

from fhirgen.caches import RecentCache
from fhirgen.errors import BrokerUnavailable
from fhirgen.service.users import User, get_user
from workers.enqueue import broker_errors

if TYPE_CHECKING:
    from webhooks.app import WebhookState

F = TypeVar("F", bound=Callable[..., Any])

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


class SignInLimiter:
    """At most ``limit`` sign-in attempts per client address per ``window`` seconds.

    Counted in Redis when it answers (shared by every web process), else in this process.
    Addresses are kept hashed.
    """

    def __init__(self, limit: int = 10, window: int = 60) -> None:
        self.limit = limit
        self.window = window
        # Redis down: counted here, at most 10,000 addresses, each for one window.
        self._local: RecentCache[str, tuple[float, int]] = RecentCache(10_000, window)
        self._lock = threading.Lock()

    def allow(self, state: WebhookState, address: str) -> bool:
        """Count one attempt from ``address``; False once over the limit."""
        key = hashlib.sha256(address.encode()).hexdigest()[:32]
        try:
            with broker_errors():
                client = state.redis()
                name = f"fhirgen:console:signin:{key}"
                pipe = client.pipeline()
                pipe.set(name, 0, ex=self.window, nx=True)  # the window starts at the first try
                pipe.incr(name)
                count = int(pipe.execute()[1])
        except BrokerUnavailable:  # Redis down: count here rather than not at all
            count = self._count_locally(key)
        return count <= self.limit

    def _count_locally(self, key: str) -> int:
        now = time.monotonic()
        with self._lock:
            started, count = self._local.get(key) or (now, 0)
            if now - started > self.window:
                started, count = now, 0
            self._local.put(key, (started, count + 1))
            return count + 1


def client_address() -> str:
    return request.remote_addr or "unknown"
