"""Console single sign-on (OpenID Connect) against a provider served over real HTTP.

The console runs in-process (Flask's test client) with a real store and Redis; the browser's
redirects to and from the provider are followed by hand, the provider's answers are real.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from fhirgen.config import load_settings
from fhirgen.service.users import add_user, authenticate, get_user
from tests.live import test_redis_url as redis_for_test  # a helper, not a test
from tests.oidc_provider import OidcProvider, Person

PUBLIC_URL = "https://fhirgen.example-hospital.org"


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    server = OidcProvider().start()
    yield server
    server.stop()


def _app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **sso: Any) -> Any:
    from webhooks import create_app

    for name in [n for n in os.environ if n.startswith("FHIRGEN_")]:
        monkeypatch.delenv(name)
    settings = load_settings(
        data_dir=tmp_path / "data",
        redis_url=redis_for_test(tmp_path),
        public_url=PUBLIC_URL,
        console_cookie_secure=False,  # the test client speaks plain HTTP
        **sso,
    )
    return create_app(settings)


@pytest.fixture
def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: OidcProvider) -> Any:
    app = _app(
        tmp_path,
        monkeypatch,
        console_oidc_issuer=provider.issuer,
        console_oidc_client_id=provider.client_id,
        console_oidc_client_secret=provider.client_secret,
        console_oidc_label="Hospital SSO",
    )
    yield app
    app.extensions["fhirgen"].store.dispose()


def _sign_in(client: Any) -> Any:
    """Follow the sign-in round trip: console → provider → console's callback."""
    start = client.get("/console/login/sso")
    assert start.status_code == 302
    at_provider = httpx.get(start.headers["Location"], follow_redirects=False, timeout=10)
    if at_provider.status_code != 302:
        return at_provider
    back = urlsplit(at_provider.headers["Location"])
    assert f"{back.scheme}://{back.netloc}" == PUBLIC_URL  # the registered redirect URI
    assert back.path == "/console/login/sso/callback"
    return client.get(f"{back.path}?{back.query}")


def _audit(app: Any) -> list[tuple[str, str, str]]:
    entries = app.extensions["fhirgen"].store.audit_entries(50)
    return [(e.actor, e.action, e.detail or "") for e in entries]


def test_sso_is_off_unless_an_issuer_is_set(tmp_path, monkeypatch):
    app = _app(tmp_path, monkeypatch)
    client = app.test_client()
    assert client.get("/console/login/sso").status_code == 404
    assert "Sign in with" not in client.get("/console/login").get_data(as_text=True)
    app.extensions["fhirgen"].store.dispose()


def test_the_sign_in_page_offers_the_provider(console):
    page = console.test_client().get("/console/login").get_data(as_text=True)
    assert "Sign in with Hospital SSO" in page


def test_an_admin_group_member_signs_in_as_admin(console, provider):
    provider.person = Person("Grace.Hopper", groups=["staff", "fhirgen-admins"])
    client = console.test_client()
    answer = _sign_in(client)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/")
    overview = client.get("/console/")
    assert overview.status_code == 200
    text = overview.get_data(as_text=True)
    assert "grace.hopper" in text and "admin" in text
    user = get_user(console.extensions["fhirgen"].store, "grace.hopper")
    assert user.role == "admin"
    assert ("grace.hopper", "sign-in", "single sign-on, from 127.0.0.1") in _audit(console)


def test_a_viewer_group_member_signs_in_as_viewer_and_the_role_follows_the_provider(
    console, provider
):
    provider.person = Person("vic", groups=["fhirgen-viewers"])
    assert _sign_in(console.test_client()).status_code == 302
    store = console.extensions["fhirgen"].store
    assert get_user(store, "vic").role == "viewer"
    provider.person = Person("vic", groups=["fhirgen-admins"], subject=provider.person.subject)
    assert _sign_in(console.test_client()).status_code == 302
    assert get_user(store, "vic").role == "admin"


def test_someone_in_neither_group_is_refused(console, provider):
    provider.person = Person("mallory", groups=["staff"])
    client = console.test_client()
    answer = _sign_in(client)
    assert answer.status_code == 403
    assert client.get("/console/").status_code == 302  # still signed out
    assert get_user(console.extensions["fhirgen"].store, "mallory") is None
    assert ("mallory", "sign-in-refused") in [
        (actor, action) for actor, action, _ in _audit(console)
    ]


def test_an_id_token_signed_with_another_key_is_refused(console, provider):
    provider.person = Person("eve", groups=["fhirgen-admins"])
    provider.forge_with_another_key()
    client = console.test_client()
    assert _sign_in(client).status_code == 401
    assert client.get("/console/").status_code == 302
    assert get_user(console.extensions["fhirgen"].store, "eve") is None


def test_a_callback_without_the_sessions_state_is_refused(console, provider):
    provider.person = Person("grace", groups=["fhirgen-admins"])
    started = console.test_client().get("/console/login/sso")
    back = httpx.get(started.headers["Location"], follow_redirects=False, timeout=10)
    query = urlsplit(back.headers["Location"]).query
    other_browser = console.test_client()  # a forged link: not the browser that started
    assert other_browser.get(f"/console/login/sso/callback?{query}").status_code == 401
    assert other_browser.get("/console/").status_code == 302


def test_a_local_user_of_the_same_name_is_not_taken_over(console, provider):
    store = console.extensions["fhirgen"].store
    add_user(store, "admin", "viewer", "a local password here")
    provider.person = Person("admin", groups=["fhirgen-admins"])
    assert _sign_in(console.test_client()).status_code == 401
    assert get_user(store, "admin").role == "viewer"


def test_a_provider_user_has_no_password(console, provider):
    provider.person = Person("grace", groups=["fhirgen-viewers"])
    assert _sign_in(console.test_client()).status_code == 302
    store = console.extensions["fhirgen"].store
    for guess in ("", "external$", "grace"):
        assert authenticate(store, "grace", guess) is None
