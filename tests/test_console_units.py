"""The admin console without a browser: users and hashing, lockout, the queries and actions on
a real store (SQLite; PostgreSQL too where a server answers), and the Flask app in-process with a
real Redis: sign-in, roles, CSRF, security headers, the audit of job views, CSV export.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

from fhirgen.cli.processes import free_port
from fhirgen.config import load_settings
from fhirgen.errors import ConfigError
from fhirgen.service import console_actions, console_settings
from fhirgen.service.console_actions import ActionRefused
from fhirgen.service.users import (
    LOCKOUT,
    MAX_FAILED_LOGINS,
    UserError,
    add_user,
    authenticate,
    console_session_key,
    hash_password,
    set_password,
    verify_password,
)
from fhirgen.store import Store, utcnow
from fhirgen.store import console as queries
from fhirgen.store.console import AuditFilter, JobFilter
from fhirgen.store.console_models import User as UserRow
from fhirgen.store.heartbeats import WorkerInfo, beat, forget
from fhirgen.store.models import Base, Job
from tests.databases import fresh_database
from tests.live import test_redis_url as redis_for_test  # a helper, not a test

PASSWORD = "correct horse battery"
NOW = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)


# -- stores -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on SQLite, or in a PostgreSQL schema of its own (skipped if absent)."""
    with fresh_database(request.param, tmp_path) as url:
        store = Store(url)
        try:
            store.migrate()
            yield store
        finally:
            store.dispose()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'fhirgen.db'}")
    store.migrate()
    yield store
    store.dispose()


def _insert_jobs(store: Store, rows: list[dict[str, Any]]) -> None:
    defaults = {
        "kind": "discharge",
        "regeneration": 0,
        "source": "notification",
        "attempts": 1,
        "timings": {},
        # executemany needs the same keys in every row
        **dict.fromkeys(("reason", "finished_at", "discharged_at", "subscription_id", "backend")),
    }
    with store.engine.begin() as connection:
        connection.execute(
            sa.insert(Job.__table__),
            [{**defaults, "updated_at": r["created_at"], **r} for r in rows],
        )


def _job_row(job_id: str, created: datetime, state: str = "done", **values: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "encounter_id": f"enc-{job_id}",
        "state": state,
        "created_at": created,
        **values,
    }


# -- schema -----------------------------------------------------------------------------------


def test_migration_matches_the_console_tables_and_indexes(any_store: Store) -> None:
    with any_store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        inspector = sa.inspect(connection)
        assert {"users", "worker_heartbeats"} <= set(inspector.get_table_names())
        indexes = {i["name"] for i in inspector.get_indexes("jobs")}
        assert {"ix_jobs_subscription_created", "ix_jobs_backend_created"} <= indexes


# -- users ------------------------------------------------------------------------------------


def test_users_are_added_with_argon2id_and_sign_in(store: Store) -> None:
    user = add_user(store, " Alice ", "admin", PASSWORD)
    assert (user.username, user.role, user.is_admin) == ("alice", "admin", True)
    with store.engine.connect() as connection:
        stored = connection.execute(sa.select(UserRow.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    signed_in = authenticate(store, "ALICE", PASSWORD)
    assert signed_in is not None and signed_in.last_login_at is not None
    assert authenticate(store, "alice", PASSWORD + "x") is None
    assert authenticate(store, "nobody", PASSWORD) is None


@pytest.mark.parametrize(
    ("name", "role", "password", "why"),
    [
        ("bob", "root", PASSWORD, "unknown role"),
        ("bob", "viewer", "short", "at least 12"),
        ("bob smith", "viewer", PASSWORD, "invalid user name"),
        ("", "viewer", PASSWORD, "invalid user name"),
    ],
)
def test_bad_users_are_refused(store: Store, name: str, role: str, password: str, why: str) -> None:
    with pytest.raises(UserError, match=why):
        add_user(store, name, role, password)


def test_a_taken_name_is_refused(store: Store) -> None:
    add_user(store, "carol", "viewer", PASSWORD)
    with pytest.raises(UserError, match="exists"):
        add_user(store, "Carol", "admin", PASSWORD)
    with pytest.raises(UserError, match="no user"):
        set_password(store, "dave", PASSWORD)


def _legacy_scrypt_hash(password: str) -> str:
    """A hash as versions before argon2-cffi was required wrote where it was missing."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**15, r=8, p=1, maxmem=2**26, dklen=32)

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"scrypt$32768$8$1${b64(salt)}${b64(digest)}"


def test_new_hashes_are_argon2id_only() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$") and verify_password(hashed, PASSWORD)
    assert not verify_password(hashed, PASSWORD + "!")
    with pytest.raises(TypeError):
        hash_password(PASSWORD, scheme="scrypt")  # type: ignore[call-arg]  # no other scheme


def test_a_stored_scrypt_hash_signs_in_once_and_is_rehashed_to_argon2id(store: Store) -> None:
    legacy = _legacy_scrypt_hash(PASSWORD)
    assert verify_password(legacy, PASSWORD)
    assert not verify_password(legacy, PASSWORD + "!")
    assert not verify_password("scrypt$garbage", PASSWORD)
    assert not verify_password("scrypt$3$8$1$AAAA$AAAA", PASSWORD)  # N not a power of 2
    add_user(store, "erin", "viewer", PASSWORD)
    with store.engine.begin() as connection:
        connection.execute(sa.update(UserRow).values(password_hash=legacy))
    assert authenticate(store, "erin", PASSWORD + "!") is None  # a wrong one changes nothing
    with store.engine.connect() as connection:
        assert connection.execute(sa.select(UserRow.password_hash)).scalar_one() == legacy
    assert authenticate(store, "erin", PASSWORD) is not None
    with store.engine.connect() as connection:
        rehashed = connection.execute(sa.select(UserRow.password_hash)).scalar_one()
    assert rehashed.startswith("$argon2id$") and verify_password(rehashed, PASSWORD)
    assert authenticate(store, "erin", PASSWORD) is not None  # and signs in on Argon2id


def test_five_wrong_passwords_lock_that_client_out_for_five_minutes(store: Store) -> None:
    add_user(store, "frank", "admin", PASSWORD)
    here = {"source": "192.0.2.10"}
    for _ in range(MAX_FAILED_LOGINS):
        assert authenticate(store, "frank", "wrong password!", now=NOW, **here) is None
    # Locked for this client: even the right password is refused until the lock ends ...
    assert authenticate(store, "frank", PASSWORD, now=NOW + timedelta(minutes=1), **here) is None
    # ... but not the account: another client signs in (tests/test_console_hardening.py).
    assert authenticate(store, "frank", PASSWORD, source="192.0.2.11", now=NOW) is not None
    later = NOW + LOCKOUT + timedelta(seconds=1)
    assert authenticate(store, "frank", PASSWORD, now=later, **here) is not None
    # A success resets the count: four more mistakes do not lock it.
    for _ in range(MAX_FAILED_LOGINS - 1):
        authenticate(store, "frank", "wrong password!", now=later, **here)
    assert authenticate(store, "frank", PASSWORD, now=later, **here) is not None


def test_a_new_password_lifts_the_lock_and_changes_the_fingerprint(store: Store) -> None:
    before = add_user(store, "gina", "viewer", PASSWORD)
    for _ in range(MAX_FAILED_LOGINS):
        authenticate(store, "gina", "wrong password!")
    after = set_password(store, "gina", PASSWORD + " two")
    assert after.fingerprint != before.fingerprint
    assert authenticate(store, "gina", PASSWORD + " two") is not None


def test_unknown_users_cost_as_much_as_wrong_passwords(store: Store) -> None:
    add_user(store, "hank", "viewer", PASSWORD)
    authenticate(store, "nobody", "x" * 12)  # the dummy hash is made once

    def timed(name: str) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            authenticate(store, name, "not the password")
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    unknown, known = timed("nobody"), timed("hank")
    assert 0.5 < unknown / known < 2.0, (unknown, known)


def test_the_session_key_comes_from_the_secret_or_a_private_file(tmp_path: Path) -> None:
    with_secret = load_settings(data_dir=tmp_path, secret_key="a passphrase")
    key = console_session_key(with_secret)
    assert key == console_session_key(with_secret) and len(key) == 32
    assert key != hashlib.sha256(b"a passphrase").digest()  # not the vault's key
    plain = load_settings(data_dir=tmp_path / "d")
    first = console_session_key(plain)
    assert first == console_session_key(plain) != key
    assert (tmp_path / "d" / "console.key").stat().st_mode & 0o777 == 0o600
    shared = load_settings(data_dir=tmp_path, database_url="postgresql://db/fhirgen")
    with pytest.raises(ConfigError, match="FHIRGEN_SECRET_KEY"):
        console_session_key(shared)


def test_users_cli_add_and_passwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fhirgen.cli.users import users

    for name in [n for n in os.environ if n.startswith("FHIRGEN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FHIRGEN_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    added = runner.invoke(
        users, ["add", "ivy", "--role", "admin"], env={"FHIRGEN_PASSWORD": PASSWORD}
    )
    assert added.exit_code == 0, added.output
    assert "added admin ivy" in added.output
    again = runner.invoke(users, ["add", "ivy"], env={"FHIRGEN_PASSWORD": PASSWORD})
    assert again.exit_code == 1 and "exists" in again.output
    new = "a brand new passphrase"
    prompted = runner.invoke(users, ["passwd", "ivy"], input=f"{new}\n{new}\n")
    assert prompted.exit_code == 0, prompted.output
    assert new not in prompted.output  # hidden input
    listed = runner.invoke(users, ["list"])
    assert "ivy\tadmin" in listed.output
    store = Store.from_settings(load_settings(data_dir=tmp_path / "data"))
    try:
        assert authenticate(store, "ivy", new) is not None
    finally:
        store.dispose()


# -- queries ----------------------------------------------------------------------------------


def test_overview_counts_throughput_and_latency_percentiles(any_store: Store) -> None:
    rows = []
    # Ten drafts written in the 11:00 hour, 10..100 minutes after discharge.
    for n in range(10):
        finished = NOW.replace(minute=0) - timedelta(hours=1) + timedelta(minutes=n)
        rows.append(
            _job_row(
                f"d{n}",
                finished - timedelta(minutes=5),
                finished_at=finished,
                discharged_at=finished - timedelta(minutes=10 * (n + 1)),
            )
        )
    # Two failures with the same reason, one with another, one old done job (outside 24 h).
    for n, reason in enumerate(["EHR said 404", "EHR said 404", "verification failed"]):
        rows.append(
            _job_row(f"f{n}", NOW - timedelta(hours=2), "failed", reason=reason,
                     finished_at=NOW - timedelta(hours=2))
        )  # fmt: skip
    rows.append(_job_row("old", NOW - timedelta(days=3), finished_at=NOW - timedelta(days=3)))
    rows.append(_job_row("w1", NOW - timedelta(minutes=1), "received"))
    _insert_jobs(any_store, rows)
    o = queries.overview(any_store, now=NOW)
    assert o.states["done"] == 11 and o.states["failed"] == 3 and o.states["received"] == 1
    assert o.states_24h["done"] == 10 and o.total == 15
    assert len(o.hours) == 24 and o.hours[-1].hour == NOW.replace(minute=0)
    hour = next(p for p in o.hours if p.hour == NOW.replace(minute=0) - timedelta(hours=1))
    assert (hour.done, hour.failed) == (10, 0)
    assert sum(p.failed for p in o.hours) == 3
    minutes = [10.0 * (n + 1) * 60 for n in range(10)]
    assert hour.p50 == pytest.approx(queries.percentile(minutes, 0.5), rel=1e-6)
    assert o.p95 == pytest.approx(queries.percentile(minutes, 0.95), rel=1e-6)
    assert o.p50 == pytest.approx(3300.0)  # percentile_cont of 10..100 minutes: 55 min
    assert o.failures[0] == ("EHR said 404", 2)


def test_percentile_interpolates_like_percentile_cont() -> None:
    assert queries.percentile([], 0.5) is None
    assert queries.percentile([4.0], 0.95) == 4.0
    assert queries.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert queries.percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)


def test_job_list_filters_and_keyset_pages(any_store: Store) -> None:
    rows = []
    for n in range(23):
        rows.append(
            _job_row(
                f"j{n:02d}",
                NOW - timedelta(hours=n),
                "failed" if n % 3 == 0 else "done",
                subscription_id="sub-a" if n % 2 else "sub-b",
                backend="openai" if n < 5 else "template",
                encounter_id=f"enc-{n:02d}",
            )
        )
    rows.append(_job_row("tie", NOW - timedelta(hours=4), encounter_id="other"))  # same time
    _insert_jobs(any_store, rows)
    seen: list[str] = []
    page = queries.list_jobs(any_store, limit=5)
    assert page.total == 24 and page.newer is None
    pages = [page]
    while page.older:
        page = queries.list_jobs(any_store, before=page.older, limit=5)
        pages.append(page)
    for each in pages:
        seen.extend(r.id for r in each.rows)
    assert len(seen) == 24 and len(set(seen)) == 24
    created = [r.created_at for p in pages for r in p.rows]
    assert created == sorted(created, reverse=True)
    # Back one page from the last: the same rows as on the way there.
    back = queries.list_jobs(any_store, after=pages[-1].newer, limit=5)
    assert [r.id for r in back.rows] == [r.id for r in pages[-2].rows]

    def ids(**filters: Any) -> set[str]:
        return {r.id for r in queries.list_jobs(any_store, JobFilter(**filters)).rows}

    assert ids(state="failed") == {f"j{n:02d}" for n in range(0, 23, 3)}
    assert ids(subscription_id="sub-a", backend="openai") == {"j01", "j03"}
    assert ids(encounter="enc-1") == {f"j{n}" for n in range(10, 20)}
    assert ids(encounter="enc-07") == {"j07"}
    assert ids(encounter="enc_%") == set()  # LIKE wildcards are literal
    assert ids(since=NOW - timedelta(hours=2, minutes=30), until=NOW) == {"j01", "j02"}


def test_job_detail_decodes_artifacts_and_builds_the_timeline(store: Store) -> None:
    store.add_subscription(id="sub-1", kind="rest-hook", criteria="Encounter?status=finished")
    result = store.record_notification("sub-1", "rest-hook", events=[(None, "Encounter/enc-9")])
    (job_id,) = result.jobs
    store.advance(job_id, ("received",), "reading")
    store.add_timing(job_id, "read", 120.0)
    store.audit("worker", "retry", job_id=job_id, detail="fhirgen.read_stay: TransientError")
    store.audit("ann", "view-job", job_id=job_id)
    store.advance(job_id, ("reading",), "failed", reason="EHR said 404")
    facts = [{"id": "f1", "kind": "stay", "text": "Stayed 3 days", "sources": ["Encounter/enc-9"]}]
    store.put_artifact(job_id, "facts", json.dumps(facts).encode())
    detail = queries.job_detail(store, job_id)
    assert detail is not None and queries.job_detail(store, "nope") is None
    assert detail.facts == facts and detail.facts_by_id["f1"]["text"] == "Stayed 3 days"
    assert detail.drafts is None and detail.steps == [("read", 120.0)]
    whats = [e.what for e in detail.timeline]
    assert whats[0] == "notification (rest-hook)" and whats[-1] == "failed"
    assert "retry" in whats and "view-job" not in whats
    assert [a.action for a in detail.audit] == ["retry"]


def test_subscriptions_with_counts(store: Store) -> None:
    store.add_subscription(id="s1", kind="rest-hook", criteria="c", events_since=0,
                           notifications=0, gaps_detected=0, gaps_recovered=0)  # fmt: skip
    store.add_subscription(id="s2", kind="topic", criteria="t")
    store.record_notification("s1", "rest-hook", events=[(None, "Encounter/e1")])
    store.record_notification("s1", "rest-hook", events=[(None, "Encounter/e2")])
    summary = {s.subscription.id: s for s in queries.subscriptions(store)}
    assert (summary["s1"].events, summary["s1"].jobs) == (2, 2)
    assert (summary["s2"].events, summary["s2"].jobs, summary["s2"].last_event_at) == (0, 0, None)


def test_audit_filters_paging_and_csv(store: Store) -> None:
    for n in range(7):
        store.audit("ann" if n % 2 else "bob", "view-job", job_id=f"job{n}")
    store.audit("bob", "retry", job_id="job1", detail='=HYPERLINK("http://evil")')
    page = queries.audit_page(store, AuditFilter(actor="bob"), limit=3)
    assert [r.actor for r in page.rows] == ["bob"] * 3 and page.older is not None
    rest = queries.audit_page(store, AuditFilter(actor="bob"), before=page.older, limit=3)
    assert len(rest.rows) == 2 and rest.older is None
    assert len(queries.audit_page(store, AuditFilter(job_id="job1")).rows) == 2
    assert len(queries.audit_page(store, AuditFilter(action="retry")).rows) == 1
    tomorrow = utcnow() + timedelta(days=1)
    assert queries.audit_page(store, AuditFilter(since=tomorrow)).rows == []
    text = "".join(queries.audit_csv(store, AuditFilter(actor="bob"), batch=2))
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == list(queries.CSV_HEADER) and len(table) == 6
    assert table[1][3] == "retry" and table[1][5].startswith("'=")  # no formula in a spreadsheet


def test_workers_alive_from_heartbeats(store: Store) -> None:
    info = WorkerInfo("io@host", "host", ("io",), None, None, 123, NOW)
    beat(store, info, now=NOW)
    beat(store, info, now=NOW + timedelta(seconds=15))  # refreshes, no second row
    beat(store, WorkerInfo("gpu@host", "host", ("gpu",), "openai", "m", 7, NOW), now=NOW)
    alive = queries.workers_alive(store, within=60, now=NOW + timedelta(seconds=70))
    assert [w.name for w in alive] == ["io@host"]
    forget(store, "io@host")
    assert [w.name for w in queries.workers_alive(store, within=60, now=NOW)] == ["gpu@host"]


def test_heartbeat_thread_writes_and_removes_its_row(store: Store) -> None:
    from workers.heartbeat import Heartbeat, worker_info

    settings = load_settings(backend="template")
    info = worker_info("io-gpu@test", ["io", "gpu"], settings, utcnow())
    assert info.backend == "template" and info.queues == ("gpu", "io")
    heartbeat = Heartbeat(store, info, every=0.05)
    heartbeat.start()
    deadline = time.monotonic() + 5
    while not queries.workers_alive(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [w.name for w in queries.workers_alive(store)] == ["io-gpu@test"]
    heartbeat.stop()
    assert queries.workers_alive(store) == []


def test_effective_settings_mask_secrets(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        secret_key="very secret",
        ehr_token="token-value",
        database_url="postgresql+psycopg://fhirgen:db-password@db:5432/fhirgen",
    )
    rows = {r.name: r for r in console_settings.effective_settings(settings)}
    shown = " ".join(r.value for r in rows.values())
    assert "very secret" not in shown and "token-value" not in shown and "db-password" not in shown
    assert rows["secret_key"].masked and rows["ehr_token"].masked
    assert rows["database_url"].value == "postgresql+psycopg://fhirgen:••••••••@db:5432/fhirgen"
    assert rows["openai_api_key"].value == "(unset)" and rows["backend"].value == "template"
    assert rows["backend"].env == "FHIRGEN_BACKEND"


# -- actions ----------------------------------------------------------------------------------


def test_retry_sends_a_failed_job_back_to_the_start(store: Store) -> None:
    job_id, _ = store.create_job("enc-1", source="manual")
    store.advance(job_id, ("received",), "failed", reason="EHR timed out", attempts=8)
    assert console_actions.retry_job(store, job_id, "ann") == job_id
    job = store.job(job_id)
    assert (job.state, job.reason, job.finished_at, job.attempts) == ("received", None, None, 0)
    (entry,) = store.audit_entries()
    assert (entry.actor, entry.action, entry.job_id) == ("ann", "retry", job_id)
    assert "EHR timed out" in entry.detail
    with pytest.raises(ActionRefused, match="failed or cancelled"):
        console_actions.retry_job(store, job_id, "ann")
    with pytest.raises(ActionRefused, match="no job"):
        console_actions.retry_job(store, "missing", "ann")


def test_regenerate_makes_a_new_job_that_replaces_the_written_draft(store: Store) -> None:
    job_id, _ = store.create_job("enc-2", source="notification", subscription_id=None)
    assert store.claim_draft(job_id, "enc-2", "3") is None
    store.record_written(job_id, "DocumentReference/doc-1")
    for before, after in [("received", "reading"), ("reading", "generating"),
                          ("generating", "writing")]:  # fmt: skip
        store.advance(job_id, (before,), after)
    store.advance(job_id, ("writing",), "done", document_reference="DocumentReference/doc-1")
    new_id = console_actions.regenerate_job(store, job_id, "ann")
    new = store.job(new_id)
    assert (new.state, new.regeneration, new.encounter_id, new.source) == (
        "received", 1, "enc-2", "manual",
    )  # fmt: skip
    # What the generate step will put in relatesTo.replaces, and a claim of its own.
    assert store.latest_written("enc-2", other_than=new_id) == "DocumentReference/doc-1"
    assert store.claim_draft(new_id, "enc-2", "3", new.regeneration) is None
    with pytest.raises(ActionRefused, match="in progress"):
        console_actions.regenerate_job(store, job_id, "ann")
    with pytest.raises(ActionRefused, match="only a done job"):
        console_actions.regenerate_job(store, new_id, "ann")
    actions = {(e.action, e.job_id) for e in store.audit_entries()}
    assert {("regenerate", job_id), ("regenerated-from", new_id)} <= actions


def test_cancel_a_waiting_job_releases_its_claim(store: Store) -> None:
    job_id, _ = store.create_job("enc-3", source="manual")
    store.advance(job_id, ("received",), "reading")
    store.claim_draft(job_id, "enc-3", "1")
    store.advance(job_id, ("reading",), "generating")
    console_actions.cancel_job(store, job_id, "ann")
    assert store.job(job_id).state == "cancelled"
    assert store.drafted_versions(["enc-3"]) == {}
    with pytest.raises(ActionRefused, match="waiting job"):
        console_actions.cancel_job(store, job_id, "ann")
    console_actions.retry_job(store, job_id, "ann")  # a cancelled job can start again
    assert store.job(job_id).state == "received"


def test_pause_and_resume_a_subscription(store: Store) -> None:
    store.add_subscription(id="s1", kind="rest-hook", criteria="c", status="active")
    console_actions.pause_subscription(store, "s1", "ann")
    assert store.subscription("s1").status == "paused"
    with pytest.raises(ActionRefused, match="paused already"):
        console_actions.pause_subscription(store, "s1", "ann")
    console_actions.resume_subscription(store, "s1", "ann")
    assert store.subscription("s1").status == "active"
    with pytest.raises(ActionRefused):
        console_actions.resume_subscription(store, "s1", "ann")
    assert [e.action for e in store.audit_entries()] == [
        "resume-subscription",
        "pause-subscription",
    ]


# -- the Flask app ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> str:
    return redis_for_test(tmp_path_factory.mktemp("redis"))


class Console:
    """The app with the console, its store, and a test client per user."""

    def __init__(self, settings: Any) -> None:
        from webhooks import create_app

        self.settings = settings
        self.app = create_app(settings)
        self.state = self.app.extensions["fhirgen"]
        self.store = self.state.store
        add_user(self.store, "admin", "admin", PASSWORD)
        add_user(self.store, "viewer", "viewer", PASSWORD)

    def client(self, user: str | None = None) -> Any:
        client = self.app.test_client()
        if user:
            response = self.sign_in(client, user)
            assert response.status_code == 302, response.get_data(as_text=True)
        return client

    def sign_in(self, client: Any, user: str, password: str = PASSWORD, **extra: str) -> Any:
        token = self.token(client, "/console/login")
        data = {"username": user, "password": password, "csrf_token": token, **extra}
        return client.post("/console/login", data=data)

    @staticmethod
    def token(client: Any, path: str) -> str:
        page = client.get(path).get_data(as_text=True)
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def queued(self, queue: str = "io") -> list[Any]:
        client = redis.Redis.from_url(str(self.settings.redis_url))
        try:
            return [json.loads(item) for item in client.lrange(queue, 0, -1)]
        finally:
            client.close()


@pytest.fixture
def console(
    tmp_path: Path, module_redis: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Console]:
    from workers.app import celery_app

    for name in [n for n in os.environ if n.startswith("FHIRGEN_")]:
        monkeypatch.delenv(name)
    client = redis.Redis.from_url(module_redis)
    client.flushdb()
    client.close()
    settings = load_settings(
        data_dir=tmp_path / "data", redis_url=module_redis, ehr_base_url="https://ehr.example/fhir"
    )
    # workers.enqueue sends with the process's Celery app, built from the environment.
    monkeypatch.setenv("FHIRGEN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FHIRGEN_REDIS_URL", module_redis)
    celery_app.cache_clear()
    console = Console(settings)
    yield console
    console.store.dispose()
    if celery_app.cache_info().currsize:
        celery_app().close()
    celery_app.cache_clear()


def _failed_job(store: Store) -> str:
    job_id, _ = store.create_job("enc-77", source="notification")
    store.advance(job_id, ("received",), "failed", reason="EHR said 404")
    return job_id


def test_signed_out_visitors_are_sent_to_sign_in(console: Console) -> None:
    client = console.client()
    for path in ("/console/", "/console/jobs", "/console/jobs/abc", "/console/audit.csv"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/console/login?next=")
    assert client.get("/console/login").status_code == 200
    with client.get("/console/static/console.css") as css:
        assert css.status_code == 200


def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_it(console: Console) -> None:
    client = console.client()
    response = console.sign_in(client, "admin")
    assert response.status_code == 302 and response.headers["Location"] == "/console/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # public_url is http://127.0.0.1: no HTTPS to require
    assert client.get("/console/").status_code == 200
    token = console.token(client, "/console/")
    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/console/").status_code == 302
    actions = [e.action for e in console.store.audit_entries()]
    assert actions[:2] == ["sign-out", "sign-in"]


def test_cookie_is_secure_when_served_over_https(tmp_path: Path, module_redis: str) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", redis_url=module_redis, public_url="https://fhirgen.example"
    )
    console = Console(settings)
    try:
        client = console.app.test_client()
        response = console.sign_in(client, "admin", base_url="https://localhost")
        assert "Secure" in response.headers["Set-Cookie"]
    finally:
        console.store.dispose()


def test_wrong_passwords_are_refused_audited_and_rate_limited(console: Console) -> None:
    client = console.client()
    response = console.sign_in(client, "admin", "not the password")
    assert response.status_code == 401 and "Wrong user name or password" in response.text
    assert console.store.audit_entries()[0].action == "sign-in-refused"
    statuses = [
        console.sign_in(client, "nobody", "guess guess guess").status_code for _ in range(10)
    ]
    assert statuses[-1] == 429 and statuses.count(429) == 1


def test_the_sign_in_limit_is_shared_through_redis_and_kept_in_process_without_it(
    console: Console, tmp_path: Path
) -> None:
    # another web process on the same Redis
    other = Console(
        load_settings(data_dir=tmp_path / "other", redis_url=console.settings.redis_url)
    )
    try:
        statuses = [
            console.sign_in(app.app.test_client(), "nobody", "guess guess guess").status_code
            for app in [console, other] * 6
        ]
        assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
        page = console.sign_in(console.client(), "admin").text
        assert "Too many sign-in attempts; wait a minute." in page
    finally:
        other.store.dispose()
    settings = load_settings(
        data_dir=tmp_path / "down", redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    down = Console(settings)  # Redis does not answer: counted in this process
    try:
        client = down.client()
        statuses = [down.sign_in(client, "nobody", "x").status_code for _ in range(11)]
        assert statuses == [401] * 10 + [429]
    finally:
        down.store.dispose()


def test_next_never_leaves_the_console(console: Console) -> None:
    client = console.client()
    for target in ("https://evil.example/", "//evil.example/", "/fhir/notify/x"):
        response = console.sign_in(client, "admin", next=target)
        assert response.headers["Location"] == "/console/"
        client.post("/console/logout", data={"csrf_token": console.token(client, "/console/")})
    response = console.sign_in(client, "admin", next="/console/audit")
    assert response.headers["Location"] == "/console/audit"


def test_posts_without_a_csrf_token_are_refused(console: Console) -> None:
    job_id = _failed_job(console.store)
    client = console.client("admin")
    response = client.post(f"/console/jobs/{job_id}/retry")
    assert response.status_code == 400 and "CSRF" in response.text
    assert console.store.job(job_id).state == "failed"
    bad = client.post(f"/console/jobs/{job_id}/retry", data={"csrf_token": "forged"})
    assert bad.status_code == 400
    fresh = console.client()
    assert (
        fresh.post("/console/login", data={"username": "admin", "password": PASSWORD}).status_code
        == 400
    )
    # The EHR's notifications are not the console's forms: no CSRF token is asked of them.
    assert console.client().post("/fhir/notify/unknown", data=b"{}").status_code == 404


def test_viewers_see_no_actions_and_get_403(console: Console) -> None:
    job_id = _failed_job(console.store)
    client = console.client("viewer")
    page = client.get(f"/console/jobs/{job_id}").get_data(as_text=True)
    assert 'data-action="retry"' not in page and "/retry" not in page
    token = console.token(client, f"/console/jobs/{job_id}")
    for action in ("retry", "regenerate", "cancel"):
        response = client.post(f"/console/jobs/{job_id}/{action}", data={"csrf_token": token})
        assert response.status_code == 403
    subs = client.get("/console/subscriptions").get_data(as_text=True)
    assert "Register" not in subs and "Reconcile now" not in subs
    assert client.post("/console/reconcile", data={"csrf_token": token}).status_code == 403
    assert console.store.job(job_id).state == "failed"
    assert console.queued() == []


def test_an_admin_retries_a_failed_job_and_it_is_enqueued(console: Console) -> None:
    job_id = _failed_job(console.store)
    client = console.client("admin")
    page = client.get(f"/console/jobs/{job_id}").get_data(as_text=True)
    assert 'data-action="retry"' in page and 'data-action="regenerate"' not in page
    token = console.token(client, f"/console/jobs/{job_id}")
    response = client.post(f"/console/jobs/{job_id}/retry", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith(job_id)
    assert console.store.job(job_id).state == "received"
    (message,) = console.queued("io")
    assert message["headers"]["task"] == "fhirgen.read_stay"
    assert json.loads(base64.b64decode(message["body"]))[0] == [job_id]
    followed = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Retrying the job." in followed
    again = client.post(f"/console/jobs/{job_id}/retry", data={"csrf_token": token})
    assert "only a failed or cancelled job" in client.get(again.headers["Location"]).text


def test_every_job_page_view_is_audited(console: Console) -> None:
    job_id = _failed_job(console.store)
    client = console.client("viewer")
    client.get(f"/console/jobs/{job_id}")
    client.get(f"/console/jobs/{job_id}")
    views = [e for e in console.store.audit_entries() if e.action == "view-job"]
    assert [(e.actor, e.job_id) for e in views] == [("viewer", job_id)] * 2
    assert client.get("/console/jobs/no-such-job").status_code == 404
    audit = client.get(f"/console/audit?action=view-job&job={job_id}").get_data(as_text=True)
    assert audit.count('class="audit-view-job"') == 2


def test_the_job_page_shows_each_topic_as_the_lead_in_of_its_paragraph(console: Console) -> None:
    from types import SimpleNamespace

    from fhirgen.drafting.documents.base import Draft, Section, Sentence
    from fhirgen.service.jobs import _drafts_view

    sentences = (
        Sentence("Treated with antibiotics.", ("f1",), "Pneumonia"),
        Sentence("Fever settled.", ("f1",), "Pneumonia"),
        Sentence("Went home.", ("f1",)),
        Sentence("Kept on lisinopril.", ("f1",), "Hypertension"),
    )
    draft = Draft("discharge-summary", "Discharge summary",
                  (Section("hospital_course", "Hospital course", sentences),), "template", "t")  # fmt: skip
    view = _drafts_view(SimpleNamespace(drafts={"discharge-summary": draft}))
    (section,) = view["discharge-summary"]
    assert [s["topic"] for s in section["sentences"]] == [
        "Pneumonia",
        "Pneumonia",
        "",
        "Hypertension",
    ]
    job_id = _failed_job(console.store)
    console.store.put_artifact(job_id, "drafts", json.dumps(view).encode())
    page = console.client("viewer").get(f"/console/jobs/{job_id}").get_data(as_text=True)
    assert page.count('<b class="topic">') == 2  # once per paragraph, not per sentence
    assert page.count('class="paragraph"') == 2
    assert re.search(
        r'<div class="paragraph" data-topic="Pneumonia">\s*<div class="sentence-row">\s*'
        r'<p class="sentence"><b class="topic">Pneumonia:</b> Treated with antibiotics\.',
        page,
    )
    assert re.search(r'<p class="sentence">Fever settled\.', page)
    assert re.search(r'<p class="sentence">Went home\.', page)
    assert '<b class="topic">Hypertension:</b> Kept on lisinopril.' in page
    # Drafts stored before sentences had topics still render, without lead-ins.
    for s in section["sentences"]:
        del s["topic"]
    older = _failed_job(console.store)
    console.store.put_artifact(older, "drafts", json.dumps(view).encode())
    page = console.client("viewer").get(f"/console/jobs/{older}").get_data(as_text=True)
    assert "Treated with antibiotics." in page and 'class="topic"' not in page


def test_console_responses_carry_security_headers(console: Console) -> None:
    client = console.client("viewer")
    for path in ("/console/", "/console/login", "/console/jobs"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] in ("no-referrer", "same-origin")
        assert headers["Cache-Control"] == "no-store"


def test_every_page_renders_with_charts_and_masked_settings(console: Console) -> None:
    store = console.store
    job_id = _failed_job(store)
    store.add_subscription(id="sub-x", kind="rest-hook", criteria="Encounter?status=finished",
                           status="active", notifications=0, gaps_detected=1, gaps_recovered=1)  # fmt: skip
    beat(store, WorkerInfo("io@box", "box", ("io",), None, None, 1, utcnow()))
    client = console.client("admin")
    overview = client.get("/console/").get_data(as_text=True)
    assert overview.count('<svg class="chart"') == 2
    assert 'data-queue="io"' in overview and "io@box" in overview and "EHR said 404" in overview
    jobs = client.get("/console/jobs?state=failed&q=enc-7&since=2000-01-01&until=2999-01-01")
    assert job_id in jobs.get_data(as_text=True)
    assert "not a date" in client.get("/console/jobs?since=yesterday").get_data(as_text=True)
    subs = client.get("/console/subscriptions").get_data(as_text=True)
    assert "sub-x" in subs and 'data-action="pause"' in subs
    settings = client.get("/console/settings").get_data(as_text=True)
    assert "FHIRGEN_EHR_BASE_URL" in settings and "https://ehr.example/fhir" in settings


def test_pause_resume_and_reconcile_from_the_console(console: Console) -> None:
    console.store.add_subscription(id="sub-y", kind="rest-hook", criteria="c", status="active")
    client = console.client("admin")
    token = console.token(client, "/console/subscriptions")
    client.post("/console/subscriptions/sub-y/pause", data={"csrf_token": token})
    assert console.store.subscription("sub-y").status == "paused"
    client.post("/console/subscriptions/sub-y/resume", data={"csrf_token": token})
    assert console.store.subscription("sub-y").status == "active"
    client.post("/console/reconcile", data={"csrf_token": token})
    assert [m["headers"]["task"] for m in console.queued()] == ["fhirgen.reconcile"]
    assert console.store.audit_entries()[0].action == "reconcile-now"


def test_audit_csv_export(console: Console) -> None:
    job_id = _failed_job(console.store)
    client = console.client("viewer")
    client.get(f"/console/jobs/{job_id}")
    response = client.get("/console/audit.csv?action=view-job")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == list(queries.CSV_HEADER)
    assert [(r[2], r[3], r[4]) for r in rows[1:]] == [("viewer", "view-job", job_id)]
    assert console.store.audit_entries()[0].action == "export-audit"


def test_a_changed_password_ends_open_sessions(console: Console) -> None:
    client = console.client("viewer")
    assert client.get("/console/").status_code == 200
    set_password(console.store, "viewer", PASSWORD + " new")
    assert client.get("/console/").status_code == 302


def test_idle_sessions_expire(console: Console) -> None:
    client = console.client("viewer")
    console.app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=1)
    assert client.get("/console/").status_code == 200
    time.sleep(2.2)
    assert client.get("/console/").status_code == 302


def test_a_registration_form_with_a_bad_value_is_refused_before_the_ehr_is_asked(
    console: Console,
) -> None:
    client = console.client("admin")
    token = console.token(client, "/console/subscriptions")
    for field, value in (("heartbeat", "٣"), ("heartbeat", "-5"), ("content", "everything")):
        data = {"csrf_token": token, "kind": "rest-hook", field: value}
        response = client.post("/console/subscriptions/register", data=data)
        assert response.status_code == 302
        assert response.headers["Location"] == "/console/subscriptions"
        page = client.get("/console/subscriptions").text
        assert f"Registration refused: {field}:" in page
    assert console.store.audit_entries()[0].action == "sign-in"  # nothing registered
