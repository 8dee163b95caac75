"""Authorization to the EHR's FHIR API: a static bearer token, or SMART Backend Services.

``SmartBackendAuth`` runs the SMART Backend Services ``client_credentials`` grant with a
``private_key_jwt`` client assertion (RS384 or ES384), caches the access token until shortly
before it expires, shares it across threads, and fetches a new one once when the FHIR server
answers 401. Token-endpoint failures map to fhirgen's error tree. Neither the assertion nor the
token ever appears in a message or a log line.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhirgen.errors import ConfigError, PermanentError, TransientError
from fhirgen.fhir.client import retry_after_seconds

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Read the stay, write the drafts back, manage our Subscription (SMART v2 scopes).
DEFAULT_SCOPES = (
    "system/*.rs system/DocumentReference.cu system/CarePlan.cu system/Provenance.cu "
    "system/Subscription.crus"
)
AUTH_KINDS = ("none", "bearer", "smart-backend")

# SMART caps an assertion's lifetime at five minutes; four leave room for clock skew.
_ASSERTION_LIFETIME = 240
_REFRESH_MARGIN = 60.0
_DEFAULT_EXPIRES_IN = 300.0
_DETAIL_LIMIT = 200


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <token>`` to every request."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ConfigError("bearer auth needs a token")
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"


class SmartBackendAuth(httpx.Auth):
    """SMART Backend Services (``client_credentials`` + ``private_key_jwt``) for ``httpx.Client``.

    The token URL is discovered from ``{base_url}/.well-known/smart-configuration`` unless
    given. ``client`` sends the discovery and token requests (a private one when None);
    ``clock`` (seconds since the epoch) lets tests move time forward.
    """

    # The request is sent a second time after a 401: keep its body.
    requires_request_body = True

    def __init__(
        self,
        base_url: str,
        client_id: str,
        private_key_pem_path: str | Path,
        *,
        alg: str = "RS384",
        kid: str | None = None,
        scopes: str = DEFAULT_SCOPES,
        token_url: str | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id:
            raise ConfigError("SMART backend auth needs a client id")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.alg = alg
        self.kid = kid
        self.scopes = scopes
        self._key = _load_signing_key(Path(private_key_pem_path), alg)
        self._token_url = token_url
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=30.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, alg={self.alg!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # Revoked or expired early: one fresh token, one retry; a second 401 stands.
            request.headers["Authorization"] = f"Bearer {self.access_token(stale=token)}"
            yield request

    def access_token(self, *, stale: str | None = None) -> str:
        """A valid access token, fetched when none is cached, it is about to expire, or the
        cached one is ``stale`` (the server refused it)."""
        # The lock is held across the fetch on purpose: threads that need a token at the same
        # moment wait for one request instead of each sending their own.
        with self._lock:
            now = self._clock()
            cached = self._token
            if cached is not None and now < self._refresh_at and cached != stale:
                return cached
            token, expires_in = self._request_token()
            margin = min(_REFRESH_MARGIN, expires_in / 2)
            self._token = token
            self._refresh_at = now + expires_in - margin
            return token

    def close(self) -> None:
        """Close the HTTP client this object made for the token endpoint."""
        if self._owns_client:
            self._client.close()

    # -- the token endpoint ----------------------------------------------------------------

    def token_url(self) -> str:
        """The token endpoint, from configuration or the server's SMART configuration."""
        if self._token_url is None:
            url = f"{self.base_url}/.well-known/smart-configuration"
            response = self._call("SMART configuration", "GET", url)
            if not response.is_success:
                raise PermanentError(
                    f"no SMART configuration at {url} (answered {response.status_code}); "
                    "configure the token URL"
                )
            endpoint = _json(response).get("token_endpoint")
            if not isinstance(endpoint, str) or not endpoint:
                raise PermanentError(f"the SMART configuration at {url} names no token_endpoint")
            self._token_url = endpoint
        return self._token_url

    def client_assertion(self, token_url: str) -> str:
        """A freshly signed JWT that authenticates this client at ``token_url``."""
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "jti": secrets.token_urlsafe(24),
            # No "iat": SMART does not ask for it, and servers that check it refuse an
            # assertion from a client whose clock runs a second ahead of theirs.
            "exp": now + _ASSERTION_LIFETIME,
        }
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(claims, self._key, algorithm=self.alg, headers=headers)

    def _request_token(self) -> tuple[str, float]:
        url = self.token_url()
        assertion = self.client_assertion(url)
        form = {
            "grant_type": "client_credentials",
            "scope": self.scopes,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        response = self._call("SMART token request", "POST", url, data=form)
        if not response.is_success:
            raise PermanentError(
                f"SMART token request to {url} was refused ({response.status_code}"
                f"{_oauth_error(response, assertion)}); check the client id, its registered "
                "key and the scopes"
            )
        data = _json(response)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise PermanentError(f"SMART token response from {url} has no access_token")
        expires_in = data.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            expires_in = _DEFAULT_EXPIRES_IN
        return token, max(0.0, float(expires_in))

    def _call(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request to the authorization server; transient failures raise here."""
        try:
            response = self._client.request(
                method, url, headers={"Accept": "application/json"}, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise TransientError(f"{what} to {url} timed out") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{what} to {url} failed ({type(exc).__name__})") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(
                f"{what} to {url} answered {response.status_code}",
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        return response


def make_auth(
    kind: str,
    *,
    base_url: str,
    token: str | None = None,
    client_id: str | None = None,
    private_key_path: str | Path | None = None,
    alg: str = "RS384",
    kid: str | None = None,
    scopes: str = DEFAULT_SCOPES,
    token_url: str | None = None,
) -> httpx.Auth | None:
    """The ``httpx.Auth`` for one kind of EHR authorization (``none``, ``bearer`` or
    ``smart-backend``); raises ``ConfigError`` when a value it needs is missing."""
    if kind == "none":
        return None
    if kind == "bearer":
        if not token:
            raise ConfigError("FHIR auth 'bearer' needs a token")
        return BearerAuth(token)
    if kind == "smart-backend":
        missing = [
            name
            for name, value in (("client id", client_id), ("private key path", private_key_path))
            if not value
        ]
        if missing:
            raise ConfigError(f"FHIR auth 'smart-backend' needs a {' and a '.join(missing)}")
        return SmartBackendAuth(
            base_url,
            str(client_id),
            str(private_key_path),
            alg=alg,
            kid=kid,
            scopes=scopes,
            token_url=token_url,
        )
    raise ConfigError(f"unknown FHIR auth kind {kind!r} (expected one of {', '.join(AUTH_KINDS)})")


def _load_signing_key(path: Path, alg: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if alg not in ("RS384", "ES384"):
        raise ConfigError(f"SMART client assertions are signed with RS384 or ES384, not {alg!r}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the SMART private key {path} ({exc.strerror})") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        # TypeError: the key is encrypted; ValueError: not a PEM private key.
        raise ConfigError(
            f"{path} is not an unencrypted PEM private key ({type(exc).__name__})"
        ) from exc
    if alg == "RS384" and isinstance(key, rsa.RSAPrivateKey):
        return key
    if (
        alg == "ES384"
        and isinstance(key, ec.EllipticCurvePrivateKey)
        and isinstance(key.curve, ec.SECP384R1)
    ):
        return key
    wanted = "an RSA key" if alg == "RS384" else "an EC P-384 key"
    raise ConfigError(f"{alg} needs {wanted}; {path} holds a {type(key).__name__}")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _oauth_error(response: httpx.Response, assertion: str) -> str:
    """``: invalid_scope (…)`` from an OAuth error body, trimmed and without the assertion."""
    data = _json(response)
    error = data.get("error")
    if not isinstance(error, str) or not error:
        return ""
    description = data.get("error_description")
    text = f": {error}"
    if isinstance(description, str) and description:
        description = description.replace(assertion, "[assertion]")[:_DETAIL_LIMIT]
        text += f" ({description})"
    return text


def auth_from_settings(settings: Any) -> httpx.Auth | None:
    """``make_auth`` with the EHR settings (``FHIRGEN_EHR_AUTH`` and the values it needs)."""
    return make_auth(
        settings.ehr_auth,
        base_url=settings.ehr_base_url,
        token=settings.ehr_token.get_secret_value() if settings.ehr_token else None,
        client_id=settings.ehr_client_id,
        private_key_path=settings.ehr_private_key_path,
        alg=settings.ehr_jwt_alg,
        kid=settings.ehr_key_id,
        scopes=settings.ehr_scopes,
    )
