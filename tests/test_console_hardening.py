"""The console's hardening (issue 14 points 2, 3 and the console part of 7): sessions that end on
the server, sign-in throttling per client instead of an account lockout anyone could trigger,
bad query parameters answered with 4xx, and the security headers on every console response.

The app runs in-process with a real Redis and a real SQLite store (fixtures shared with
``tests/test_console_units.py``); the throttling rules also on PostgreSQL where a server answers.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from fhirgen.config import load_settings
from fhirgen.service.users import (
    FAILURE_MEMORY,
    LOCKOUT,
    MAX_FAILED_LOGINS,
    MAX_LOCKOUT,
    add_user,
    authenticate,
    disable_user,
    enable_user,
    end_sessions,
    get_user,
    lockout_for,
    set_password,
    set_role,
    sign_in_external,
    source_key,
    throttled,
    unlock,
)
from fhirgen.store import Store
from fhirgen.store.console_models import SignInFailure
from tests import test_console_units as units
from tests.test_console_units import PASSWORD, Console

# The app, store and Redis fixtures of the console's unit tests.
any_store = units.any_store
console = units.console
module_redis = units.module_redis
store = units.store

NOW = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
STRANGER = "203.0.113.66"
USER_ADDRESS = "198.51.100.7"
WRONG = "not the password at all"
HEADERS = ("Content-Security-Policy", "X-Frame-Options", "Cache-Control")


def _failed_job(store: Store) -> str:
    job_id, _ = store.create_job("enc-88", source="notification")
    store.advance(job_id, ("received",), "failed", reason="EHR said 404")
    return job_id


def _client(console: Console, address: str = "127.0.0.1") -> Any:
    """A browser at ``address``."""
    client = console.app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _has_security_headers(response: Any) -> None:
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], response.status
    assert headers["X-Frame-Options"] == "DENY", response.status
    assert headers["Cache-Control"] == "no-store", response.status
    assert headers["X-Content-Type-Options"] == "nosniff", response.status


# -- point 2: sessions end on the server -----------------------------------------------------


def test_a_cookie_copied_before_sign_out_is_refused_after_it(console: Console) -> None:
    job_id = _failed_job(console.store)
    client = console.client("admin")
    token = console.token(client, f"/console/jobs/{job_id}")
    copied = client.get_cookie("fhirgen_console", path="/console").value
    signed_out = client.post("/console/logout", data={"csrf_token": token})
    assert signed_out.status_code == 302
    # An attacker replays the copy (CSRF token and all) on an admin action.
    thief = console.app.test_client()
    thief.set_cookie("fhirgen_console", copied, path="/console")
    replayed = thief.post(f"/console/jobs/{job_id}/retry", data={"csrf_token": token})
    assert replayed.status_code == 302
    assert replayed.headers["Location"].startswith("/console/login")
    assert console.store.job(job_id).state == "failed"
    assert thief.get("/console/").status_code == 302
    # Signing in again makes a new session that works.
    again = console.client("admin")
    assert again.get("/console/").status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        lambda store: set_password(store, "admin", PASSWORD + " new"),
        lambda store: set_role(store, "admin", "viewer"),
        lambda store: disable_user(store, "admin"),
        lambda store: end_sessions(store, "admin"),
    ],
    ids=["password", "role", "disabled", "end-sessions"],
)
def test_changes_to_a_user_end_their_sessions(console: Console, change: Any) -> None:
    job_id = _failed_job(console.store)
    client = console.client("admin")
    other = console.client("viewer")
    token = console.token(client, f"/console/jobs/{job_id}")
    change(console.store)
    refused = client.post(f"/console/jobs/{job_id}/retry", data={"csrf_token": token})
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/console/login")
    assert console.store.job(job_id).state == "failed"
    assert other.get("/console/").status_code == 200  # another user's session is untouched


def test_a_disabled_user_cannot_sign_in_until_enabled(console: Console) -> None:
    disable_user(console.store, "viewer")
    assert get_user(console.store, "viewer").disabled  # type: ignore[union-attr]
    client = console.app.test_client()
    refused = console.sign_in(client, "viewer")
    assert refused.status_code == 401
    enable_user(console.store, "viewer")
    assert console.sign_in(client, "viewer").status_code == 302


def test_an_admin_ends_a_users_sessions_from_the_console(console: Console) -> None:
    viewer = console.client("viewer")
    admin = console.client("admin")
    page = admin.get("/console/users")
    assert page.status_code == 200 and 'data-user="viewer"' in page.text
    token = console.token(admin, "/console/users")
    done = admin.post("/console/users/viewer/end-sessions", data={"csrf_token": token})
    assert done.status_code == 302
    assert viewer.get("/console/").status_code == 302
    assert admin.get("/console/").status_code == 200
    assert console.store.audit_entries()[0].action == "user-end-sessions"
    # Viewers neither see the page nor act.
    viewer = console.client("viewer")
    assert viewer.get("/console/users").status_code == 403
    token = console.token(viewer, "/console/")
    assert viewer.post("/console/users/admin/unlock", data={"csrf_token": token}).status_code == 403


def test_single_sign_on_role_changes_end_earlier_sessions(store: Store) -> None:
    first = sign_in_external(store, "sso.user", "admin", issuer="https://idp", subject="42")
    same = sign_in_external(store, "sso.user", "admin", issuer="https://idp", subject="42")
    assert same.session_id == first.session_id  # signing in again ends nothing
    demoted = sign_in_external(store, "sso.user", "viewer", issuer="https://idp", subject="42")
    assert demoted.role == "viewer" and demoted.session_id != first.session_id
    disable_user(store, "sso.user")
    with pytest.raises(Exception, match="disabled"):
        sign_in_external(store, "sso.user", "viewer", issuer="https://idp", subject="42")


# -- point 3: throttled per client, never locked out by a stranger ----------------------------


def test_a_strangers_wrong_passwords_do_not_lock_the_user_out(console: Console) -> None:
    stranger = _client(console, STRANGER)
    for _ in range(MAX_FAILED_LOGINS):
        assert console.sign_in(stranger, "admin", WRONG).status_code == 401
    # The stranger's address is refused for this account, the right password too ...
    assert console.sign_in(stranger, "admin").status_code == 401
    # ... the user, elsewhere, still signs in; and the stranger may still sign in as another user.
    user = _client(console, USER_ADDRESS)
    assert console.sign_in(user, "admin").status_code == 302
    assert user.get("/console/").status_code == 200
    assert console.sign_in(_client(console, STRANGER), "viewer").status_code == 302
    assert throttled(console.store).get("admin", 0) == 1


def test_an_admin_unlocks_from_the_console(console: Console) -> None:
    stranger = _client(console, STRANGER)
    for _ in range(MAX_FAILED_LOGINS):
        console.sign_in(stranger, "viewer", WRONG)
    assert console.sign_in(stranger, "viewer").status_code == 401
    admin = console.client("admin")
    assert "<td>1</td>" in admin.get("/console/users").text  # one client refused
    token = console.token(admin, "/console/users")
    done = admin.post("/console/users/viewer/unlock", data={"csrf_token": token})
    assert done.status_code == 302 and "Unlocked viewer" in admin.get(done.headers["Location"]).text
    assert console.sign_in(stranger, "viewer").status_code == 302
    assert any(e.action == "user-unlock" for e in console.store.audit_entries())
    missing = admin.post("/console/users/nobody/unlock", data={"csrf_token": token})
    assert "no user" in admin.get(missing.headers["Location"]).text


def test_throttling_is_per_source_and_doubles(any_store: Store) -> None:
    store = any_store
    add_user(store, "frank", "admin", PASSWORD)
    for _ in range(MAX_FAILED_LOGINS):
        assert authenticate(store, "frank", WRONG, source=STRANGER, now=NOW) is None
    soon = NOW + timedelta(minutes=1)
    assert authenticate(store, "frank", PASSWORD, source=STRANGER, now=soon) is None
    assert authenticate(store, "frank", PASSWORD, source=USER_ADDRESS, now=soon) is not None
    # After the first lock, the next failure from that source locks it twice as long.
    later = NOW + LOCKOUT + timedelta(seconds=1)
    assert authenticate(store, "frank", WRONG, source=STRANGER, now=later) is None
    still = later + LOCKOUT + timedelta(seconds=1)
    assert authenticate(store, "frank", PASSWORD, source=STRANGER, now=still) is None
    after = later + 2 * LOCKOUT + timedelta(seconds=1)
    assert authenticate(store, "frank", PASSWORD, source=STRANGER, now=after) is not None
    # A success cleared the count: four more mistakes do not lock it.
    for _ in range(MAX_FAILED_LOGINS - 1):
        authenticate(store, "frank", WRONG, source=STRANGER, now=after)
    assert authenticate(store, "frank", PASSWORD, source=STRANGER, now=after) is not None
    assert [lockout_for(n) for n in (4, 5, 6, 7)] == [timedelta(0), LOCKOUT, 2 * LOCKOUT,
                                                     4 * LOCKOUT]  # fmt: skip
    assert lockout_for(10_000) == MAX_LOCKOUT
    # No address is stored, only its hash.
    with store.engine.connect() as connection:
        sources = connection.execute(sa.select(SignInFailure.source)).scalars().all()
    assert STRANGER not in " ".join(sources)


def test_unlock_and_a_new_password_clear_every_source(store: Store) -> None:
    add_user(store, "gina", "viewer", PASSWORD)
    for source in (STRANGER, "192.0.2.1"):
        for _ in range(MAX_FAILED_LOGINS):
            authenticate(store, "gina", WRONG, source=source, now=NOW)
    assert throttled(store, now=NOW).get("gina", 0) == 2
    assert unlock(store, "gina") == 2
    assert authenticate(store, "gina", PASSWORD, source=STRANGER, now=NOW) is not None
    for _ in range(MAX_FAILED_LOGINS):
        authenticate(store, "gina", WRONG, source=STRANGER, now=NOW)
    set_password(store, "gina", PASSWORD + " two")
    assert authenticate(store, "gina", PASSWORD + " two", source=STRANGER, now=NOW) is not None
    with pytest.raises(Exception, match="no user"):
        unlock(store, "nobody")


def test_counts_a_day_old_are_forgotten(store: Store) -> None:
    add_user(store, "lou", "viewer", PASSWORD)
    for _ in range(MAX_FAILED_LOGINS - 1):
        authenticate(store, "lou", WRONG, source=STRANGER, now=NOW)
        authenticate(store, "lou", WRONG, source="192.0.2.1", now=NOW)
    tomorrow = NOW + FAILURE_MEMORY + timedelta(minutes=1)
    assert authenticate(store, "lou", WRONG, source=STRANGER, now=tomorrow) is None
    assert authenticate(store, "lou", PASSWORD, source=STRANGER, now=tomorrow) is not None
    with store.engine.connect() as connection:  # the other client's old count is gone too
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(SignInFailure)).scalar() == 0
        )


def test_sources_are_addresses_and_ipv6_networks() -> None:
    assert source_key("2001:db8::1") == source_key("2001:db8::ffff:1")  # one /64
    assert source_key("2001:db8::1") != source_key("2001:db8:0:1::1")
    assert source_key("::ffff:192.0.2.1") == source_key("192.0.2.1")
    assert source_key("192.0.2.1") != source_key("192.0.2.2")
    assert len(source_key("not an address")) == 32


def test_refusals_take_as_long_as_a_wrong_password(store: Store) -> None:
    add_user(store, "hank", "viewer", PASSWORD)
    add_user(store, "ivy", "viewer", PASSWORD)
    add_user(store, "jo", "viewer", PASSWORD)
    disable_user(store, "jo")
    for _ in range(MAX_FAILED_LOGINS):
        authenticate(store, "ivy", WRONG, source=STRANGER)
    authenticate(store, "nobody", WRONG)  # the dummy hash is made once

    def timed(name: str, password: str) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            assert authenticate(store, name, password, source=STRANGER) is None
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    wrong = timed("hank", WRONG)
    for name, password in (("ivy", PASSWORD), ("jo", PASSWORD), ("nobody", PASSWORD)):
        assert 0.5 < timed(name, password) / wrong < 2.0, name


def test_users_cli_unlock_role_disable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fhirgen.cli.users import users

    for name in [n for n in os.environ if n.startswith("FHIRGEN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FHIRGEN_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    added = runner.invoke(users, ["add", "kim"], env={"FHIRGEN_PASSWORD": PASSWORD})
    assert added.exit_code == 0, added.output
    store = Store.from_settings(load_settings(data_dir=tmp_path / "data"))
    try:
        for _ in range(MAX_FAILED_LOGINS):
            authenticate(store, "kim", WRONG, source=STRANGER)
        assert authenticate(store, "kim", PASSWORD, source=STRANGER) is None
        unlocked = runner.invoke(users, ["unlock", "kim"])
        assert unlocked.exit_code == 0 and "1 client(s) cleared" in unlocked.output
        assert authenticate(store, "kim", PASSWORD, source=STRANGER) is not None
        epoch = get_user(store, "kim").session_epoch  # type: ignore[union-attr]
        promoted = runner.invoke(users, ["role", "kim", "admin"])
        assert promoted.exit_code == 0 and "kim is now admin" in promoted.output
        assert get_user(store, "kim").session_epoch == epoch + 1  # type: ignore[union-attr]
        assert runner.invoke(users, ["disable", "kim"]).exit_code == 0
        assert "disabled" in runner.invoke(users, ["list"]).output
        assert authenticate(store, "kim", PASSWORD) is None
        assert runner.invoke(users, ["enable", "kim"]).exit_code == 0
        assert authenticate(store, "kim", PASSWORD) is not None
        assert runner.invoke(users, ["signout", "kim"]).exit_code == 0
        missing = runner.invoke(users, ["unlock", "nobody"])
        assert missing.exit_code == 1 and "no user" in missing.output
    finally:
        store.dispose()


# -- point 7: bad query parameters are 4xx, every response has the headers --------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/console/audit?before={2**64}",
        f"/console/audit?before={2**63}",
        "/console/audit?before=" + "9" * 400,
        "/console/jobs?until=9999-12-31",
        "/console/audit?since=9999-12-31&until=9999-12-31",
        "/console/audit.csv?until=9999-12-31",
    ],
)
def test_out_of_range_query_parameters_are_400(console: Console, path: str) -> None:
    response = console.client("admin").get(path)
    assert response.status_code == 400, response.status
    assert "out of range" in response.text
    _has_security_headers(response)


def test_cursors_at_the_edge_of_the_calendar_are_ignored(console: Console) -> None:
    client = console.client("admin")
    for cursor in ("9999-12-31T23:00:00-05:00|x", "0001-01-01T00:00:00+05:00|x"):
        for name in ("before", "after"):
            assert client.get(f"/console/jobs?{name}={cursor}").status_code == 200
    assert client.get(f"/console/audit?before={2**63 - 1}").status_code == 200
    assert client.get("/console/audit?before=%C2%B2").status_code == 200  # "²" is no id: ignored


@pytest.mark.parametrize(
    "target", ["/console/%0d%0aSet-Cookie:%20x=1", "/console/audit%0a", "/console/%00"]
)
def test_a_next_with_control_characters_is_400(console: Console, target: str) -> None:
    fresh = console.app.test_client()
    response = fresh.get(f"/console/login?next={target}")
    assert response.status_code == 400
    _has_security_headers(response)
    posted = console.sign_in(fresh, "admin", next=unquote(target))
    assert posted.status_code == 400 and "Set-Cookie" not in posted.headers.get("Location", "")
    signed_in = console.client("admin")
    assert signed_in.get(f"/console/login?next={target}").status_code == 400


def test_every_console_response_carries_the_security_headers(console: Console) -> None:
    def boom() -> str:
        raise RuntimeError("a bug in a view")

    console.app.add_url_rule("/console/boom", "boom", boom)
    anonymous = console.app.test_client()
    signed_in = console.client("admin")
    cases = [
        (anonymous, "GET", "/console/no-such-page", 404),
        (signed_in, "GET", "/console/no-such-page", 404),
        (signed_in, "GET", "/console/jobs/no-such-job", 404),
        (anonymous, "GET", "/console/logout", 405),
        (anonymous, "GET", "/console", 308),  # routing's redirect to the trailing slash
        (anonymous, "GET", "/console/", 302),  # to sign in
        (anonymous, "POST", "/console/login", 400),  # no CSRF token
        (signed_in, "GET", "/console/boom", 500),
        (anonymous, "GET", "/console/static/console.css", 200),
    ]
    for client, method, path, status in cases:
        response = client.open(path, method=method)
        assert response.status_code == status, (path, response.status)
        _has_security_headers(response)
        response.close()
    # Not the console's: the webhook keeps its own headers.
    assert "Content-Security-Policy" not in anonymous.get("/healthz").headers
