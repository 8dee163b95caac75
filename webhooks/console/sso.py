"""Single sign-on for the console with OpenID Connect (authlib), off unless an issuer is set.

Authorization-code flow with PKCE (S256), state and nonce; authlib checks the ID token's
signature against the provider's JWKS, its issuer, audience, expiry and nonce. The username
comes from ``FHIRGEN_CONSOLE_OIDC_USERNAME_CLAIM``; the role from the groups claim: members of
the admin group are admins, of the viewer group viewers, anyone else is refused. The redirect
URI is ``<FHIRGEN_PUBLIC_URL>/console/login/sso/callback``: register that one at the provider.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, redirect, render_template, session, url_for
from flask_login import login_user
from werkzeug.wrappers import Response as BaseResponse

from fhirgen.errors import FhirgenError
from fhirgen.service.users import sign_in_external

if TYPE_CHECKING:
    from fhirgen.config import Settings
    from webhooks.app import WebhookState

CALLBACK_PATH = "/console/login/sso/callback"
_CLIENT = "fhirgen_sso"


def init_sso(app: Flask, settings: Settings) -> None:
    """Register the provider on ``app`` when ``FHIRGEN_CONSOLE_OIDC_ISSUER`` is set."""
    if not settings.console_oidc_issuer:
        return
    from authlib.integrations.flask_client import OAuth

    from fhirgen.errors import ConfigError

    if not settings.console_oidc_client_id:
        raise ConfigError("FHIRGEN_CONSOLE_OIDC_CLIENT_ID is needed with an OIDC issuer")
    secret = settings.console_oidc_client_secret
    oauth = OAuth(app)
    oauth.register(
        _CLIENT,
        client_id=settings.console_oidc_client_id,
        client_secret=secret.get_secret_value() if secret else None,
        server_metadata_url=(
            f"{settings.console_oidc_issuer.rstrip('/')}/.well-known/openid-configuration"
        ),
        client_kwargs={"scope": settings.console_oidc_scopes, "code_challenge_method": "S256"},
    )
    app.extensions[_CLIENT] = oauth


def sso_enabled() -> bool:
    return _CLIENT in current_app.extensions


def _client() -> Any:
    return getattr(current_app.extensions[_CLIENT], _CLIENT)


def start(settings: Settings) -> BaseResponse:
    """Send the browser to the provider."""
    redirect_uri = f"{str(settings.public_url).rstrip('/')}{CALLBACK_PATH}"
    return _client().authorize_redirect(redirect_uri)


def finish(state: WebhookState, address: str) -> BaseResponse | tuple[str, int]:
    """Complete the sign-in the provider sent back; refuse (and audit) what does not hold."""
    from authlib.integrations.base_client import OAuthError
    from joserfc.errors import JoseError  # what authlib's ID-token checks raise

    from webhooks.console.auth import ConsoleUser

    settings = state.settings
    try:
        token = _client().authorize_access_token()
        claims = token.get("userinfo") or {}
        if not claims:
            raise FhirgenError("the provider sent no ID token")
        name = str(claims.get(settings.console_oidc_username_claim) or "")
        role = role_for(claims.get(settings.console_oidc_groups_claim), settings)
        if not name:
            raise FhirgenError(f"the ID token has no {settings.console_oidc_username_claim!r}")
        if role is None:
            state.store.audit(
                name[:120],
                "sign-in-refused",
                detail=f"single sign-on, in no fhirgen group; from {address}",
            )
            return _refused("Your account is in neither fhirgen group; ask an administrator.", 403)
        user = sign_in_external(
            state.store, name, role, issuer=str(claims.get("iss")), subject=str(claims.get("sub"))
        )
    except (OAuthError, JoseError, FhirgenError, KeyError, ValueError) as exc:
        state.store.audit(
            "?", "sign-in-refused", detail=f"single sign-on: {_why(exc)}; from {address}"
        )
        return _refused("Single sign-on did not complete; try again.", 401)
    session.clear()
    login_user(ConsoleUser(user))
    session["signed_in_at"] = time.time()
    session.permanent = True
    state.store.audit(user.username, "sign-in", detail=f"single sign-on, from {address}")
    return redirect(url_for("console.overview"))


def role_for(groups: Any, settings: Settings) -> str | None:
    """``admin``, ``viewer`` or None (refused) from the groups claim (a list or one string)."""
    names = {groups} if isinstance(groups, str) else {str(g) for g in groups or ()}
    if settings.console_oidc_admin_group in names:
        return "admin"
    if settings.console_oidc_viewer_group in names:
        return "viewer"
    return None


def _why(exc: Exception) -> str:
    text = getattr(exc, "description", None) or getattr(exc, "error", None) or str(exc)
    return f"{type(exc).__name__}: {str(text)[:200]}"


def _refused(message: str, status: int) -> tuple[str, int]:
    return render_template("console/login.html", next=None, error=message), status
