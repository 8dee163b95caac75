"""The webhook against an attacker (issue 14): what each finding of the outside attack run did,
and what the webhook must do instead.

In-process apps (``create_app``) on a SQLite store in tmp_path; the broker's port is closed, so
every job is recorded and left to the outbox relay ("recorded, not sent"), as the webhook does
when Redis is down.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sekmet.subscriptions.backport import notification_bundle
from sqlalchemy import create_engine, event, text

from fhirgen.caches import RecentCache
from fhirgen.cli.processes import free_port
from fhirgen.config import load_settings
from fhirgen.errors import StoreUnavailable
from fhirgen.fhir.notifications import MAX_COUNT, NotificationError, parse_notification
from fhirgen.logs import loggable
from fhirgen.service.intake import accept
from fhirgen.service.subscriptions import is_subscription_id
from fhirgen.service.vault import Vault, token_hash
from fhirgen.store import Received, Store
from tests.databases import fresh_database
from webhooks import create_app

pytestmark = pytest.mark.usefixtures("clean_environment")

FHIR_JSON = "application/fhir+json"
TOKEN = "bearer-" + "h4R7d2K9" * 5
HMAC_KEY = "hmac-" + "x8C3v6B1" * 5
EHR_BASE = "https://ehr.example.org/fhir"
EHR_SUB = {"resourceType": "Subscription", "id": "ehr-sub", "status": "active", "criteria": "t"}
ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "enc-77",
    "meta": {"versionId": "4"},
    "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
}


class Hook:
    """One app on the store in ``data_dir``, and helpers to post to it."""

    def __init__(self, data_dir: Path, **values: Any) -> None:
        self.settings = load_settings(
            data_dir=data_dir, redis_url=f"redis://127.0.0.1:{free_port()}/0", **values
        )
        self.app = create_app(self.settings)
        self.state = self.app.extensions["fhirgen"]
        self.store: Store = self.state.store
        self.client = self.app.test_client()

    def post(self, sub: str = "sub-1", body: bytes | Any = ENCOUNTER, **kw: Any) -> Any:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {TOKEN}", **kw.pop("headers", {})}
        kw.setdefault("content_type", FHIR_JSON)
        return self.client.post(f"/fhir/notify/{sub}", data=body, headers=headers, **kw)


def _add_subscriptions(hook: Hook) -> None:
    store = hook.store
    for sub, kind in (("sub-1", "rest-hook"), ("topic-1", "topic"), ("our_id-Az09", "rest-hook")):
        store.add_subscription(
            id=sub, kind=kind, criteria="x", status="active", token_hash=token_hash(TOKEN),
            events_since=0, notifications=0, gaps_detected=0, gaps_recovered=0,
        )  # fmt: skip
    store.add_subscription(
        id="sub-hmac", kind="rest-hook", criteria="x", status="active",
        token_hash=token_hash(TOKEN), hmac_secret=Vault(hook.settings).encrypt(HMAC_KEY),
    )  # fmt: skip


@pytest.fixture
def hook(tmp_path: Path) -> Iterator[Hook]:
    webhook = Hook(tmp_path / "data")
    _add_subscriptions(webhook)
    yield webhook
    webhook.store.dispose()


def _outcome(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    (issue,) = body["issue"]
    assert issue["severity"] == "error" and issue["code"] and issue["diagnostics"]
    return issue


def _topic(ntype: str, since: int | str, events: list[dict[str, Any]], **kw: Any) -> bytes:
    return json.dumps(notification_bundle(EHR_SUB, EHR_BASE, ntype, since, events, **kw)).encode()


def _with_json_integers(body: bytes) -> bytes:
    """The same notification with its numbers sent as JSON integers (sekmet sends strings)."""
    data = json.loads(body)
    for param in data["entry"][0]["resource"]["parameter"]:
        for part in [param, *param.get("part", [])]:
            if part["name"] in ("event-number", "events-since-subscription-start"):
                part["valueInteger"] = int(part.pop("valueString"))
    return json.dumps(data).encode()


def _events(*numbers: int | str, encounter: str = "Encounter/enc-{n}") -> list[dict[str, Any]]:
    return [{"number": n, "focus": encounter.format(n=n)} for n in numbers]


# -- 4. per-process caches and subscription ids ---------------------------------------------


@pytest.mark.parametrize(
    "sub",
    ["a" * 65, "a" * 5000, "sub%0A1", "sub%1B[2J", "sub%00", "s%C3%BCb", "sub%201", "sub:1"],
    ids=["65 chars", "5000 chars", "newline", "escape", "nul", "non-ascii", "space", "colon"],
)
def test_an_id_that_cannot_be_a_subscription_is_404_before_any_lookup(hook, sub):
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(hook.store.engine, "before_cursor_execute", seen)
    try:
        response = hook.post(sub)
    finally:
        event.remove(hook.store.engine, "before_cursor_execute", seen)
    _outcome(response, 404)
    assert statements == []  # not even the subscription's row
    assert hook.store.events() == []


def test_our_own_ids_pass_the_syntax_check(hook):
    """``token_urlsafe`` ids have "_" (not a FHIR id character): they must still be served."""
    assert is_subscription_id("our_id-Az09") and is_subscription_id("a" * 64)
    assert not is_subscription_id("a" * 65) and not is_subscription_id("")
    assert hook.post("our_id-Az09").status_code == 200
    assert hook.post("no-such-one").status_code == 404  # known ids only, as before


def test_unknown_ids_leave_nothing_behind_in_the_process(hook):
    """An unauthenticated request must not grow the worker: 2,000 unknown ids, nothing kept
    (the attack run grew a worker by 13 MB with 3,000 such requests)."""
    import gc
    import tracemalloc

    for n in range(200):  # warm up: first-use allocations of Flask, SQLAlchemy, metrics
        _outcome(hook.post(f"warm-{n}-" + "x" * 50), 404)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n in range(2000):
        _outcome(hook.post(f"unknown-{n}-" + "x" * 50), 404)
    gc.collect()
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert grown < 256 * 1024, f"grew by {grown} bytes"


def test_the_recent_cache_is_bounded_in_size_and_age():
    now = [0.0]
    cache: RecentCache[str, int] = RecentCache(3, 10.0, clock=lambda: now[0])
    for n in range(5):
        cache.put(f"k{n}", n)
    assert len(cache) == 3
    assert cache.get("k0") is None and cache.get("k1") is None
    assert cache.get("k2") == 2  # now the most recently used
    cache.put("k5", 5)
    assert cache.get("k3") is None and cache.get("k2") == 2
    now[0] = 10.5
    assert cache.get("k2") is None and cache.get("k5") is None
    assert len(cache) == 1  # the expired ones went as they were asked for
    assert cache.pop("k4") == 4 and len(cache) == 0


def test_hmac_keys_are_held_in_a_bounded_cache(hook):
    from fhirgen.service.subscriptions import _HMAC_KEYS

    body = json.dumps(ENCOUNTER).encode()
    signature = hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()
    assert hook.post("sub-hmac", body, headers={"X-Signature": signature}).status_code == 200
    keys = _HMAC_KEYS[hook.state.vault]
    assert isinstance(keys, RecentCache)
    assert keys.size <= 1024 and keys.seconds <= 3600


# -- 6. numbers out of the store's range ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        _with_json_integers(_topic("event-notification", 1, _events(2**63))),
        _topic("event-notification", 1, _events(2**63)),
        _topic("event-notification", 1, _events("9" * 40)),
        _topic("event-notification", 1, _events(MAX_COUNT + 1)),
        _topic("heartbeat", str(2**64), []),
        _with_json_integers(_topic("heartbeat", 2**63, [])),
    ],
    ids=["json 2^63", "string 2^63", "40 digits", "max+1", "count 2^64", "json count 2^63"],
)
def test_a_number_past_the_store_range_is_refused_and_the_next_notification_records(hook, body):
    issue = _outcome(hook.post("topic-1", body), 422)
    assert issue["code"] == "value"
    assert hook.store.events() == []
    good = hook.post("topic-1", _topic("event-notification", 1, _events(1)))
    assert good.status_code == 200, good.get_data(as_text=True)
    assert [job.encounter_id for job in hook.store.jobs()] == ["enc-1"]


def test_the_largest_number_accepted_is_recorded(hook):
    response = hook.post("topic-1", _topic("event-notification", MAX_COUNT, _events(MAX_COUNT)))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert hook.store.subscription("topic-1").events_since == MAX_COUNT


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_largest_number_accepted_fits_the_store(tmp_path, kind):
    """MAX_COUNT is the store's own limit (PostgreSQL's integer), not a guess."""
    with fresh_database(kind, tmp_path) as url:
        store = Store(url)
        try:
            store.migrate()
            store.add_subscription(
                id="t", kind="topic", criteria="x", status="active",
                events_since=0, notifications=0, gaps_detected=0, gaps_recovered=0,
            )  # fmt: skip
            note = parse_notification(
                "POST",
                _topic("event-notification", MAX_COUNT, _events(MAX_COUNT)),
                content_type=FHIR_JSON,
            )
            accept(store, "t", note)
            assert store.subscription("t").events_since == MAX_COUNT
        finally:
            store.dispose()


# -- 7. headers that are not ASCII ----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Signature": "caf\xc3\xa9"},  # UTF-8 bytes as the WSGI server hands them over
        {"X-Signature": "\xff" * 64},
        {"X-Signature": "00" * 31 + "\xe9\xe9"},
        {"X-Signature": "\x00" * 64},
        {"Authorization": "Bearer caf\xc3\xa9", "X-Signature": "00" * 32},
        {"Authorization": "B\xe9arer " + TOKEN},
    ],
    ids=["utf-8", "latin-1", "hex tail", "nul", "bearer utf-8", "scheme"],
)
def test_a_header_that_is_not_ascii_is_401(hook, headers):
    issue = _outcome(hook.post("sub-hmac", headers=headers), 401)
    assert issue["code"] == "login"
    assert hook.store.jobs() == []


def test_a_body_shorter_than_its_content_length_is_a_400_operation_outcome(hook):
    response = hook.client.post(
        "/fhir/notify/sub-1",
        data=b"",
        headers={"Authorization": f"Bearer {TOKEN}"},
        content_type=FHIR_JSON,
        environ_overrides={"CONTENT_LENGTH": " 5"},
    )
    _outcome(response, 400)
    assert hook.store.events() == []


@pytest.mark.parametrize("path", ["/fhir/notify/sub-1/Encounter", "/fhir/notify/a%2Fb", "/fhir/"])
def test_a_path_under_fhir_that_no_route_serves_is_a_404_operation_outcome(hook, path):
    _outcome(hook.client.post(path, headers={"Authorization": f"Bearer {TOKEN}"}), 404)
    assert hook.client.get("/no-such-page").mimetype == "text/html"  # others: Flask's page


# -- 8. control characters in the log -------------------------------------------------------------


def test_control_characters_from_the_request_are_escaped_in_the_log(hook, caplog):
    with caplog.at_level(logging.DEBUG):
        hook.post("forged%0A2026-01-01 INFO all fine%1B[2J%00")
        hook.post("x" * 200 + "%0Aforged")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("webhooks")]
    assert lines
    for line in lines:
        assert not any(ch in line for ch in "\n\r\x1b\x00"), line
    assert any("forged\\x0a2026-01-01 INFO all fine\\x1b[2J\\x00" in line for line in lines)
    assert not any("forged" in line for line in lines[1:])  # ids are cut at 64 characters


def test_loggable_cuts_and_escapes():
    assert loggable("a\nb\r\x1b[31m\x00\x7f\x85\u2028\u202e\\") == (
        "a\\x0ab\\x0d\\x1b[31m\\x00\\x7f\\x85\\u2028\\u202e\\\\"
    )
    assert loggable("é ok") == "é ok"
    assert loggable("x" * 70) == "x" * 64 + "…"
    assert loggable(ValueError("bad\nthing"), 200) == "bad\\x0athing"


def test_a_500_logs_the_path_escaped(hook, caplog):
    with hook.app.test_request_context("/fhir/notify/a%0Ab%1B"), caplog.at_level(logging.ERROR):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            hook.app.log_exception(sys.exc_info())
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "Exception on /fhir/notify/a\\x0ab\\x1b [GET]"


# -- 9. state shared by the workers ---------------------------------------------------------------


def test_a_pause_holds_at_once_in_every_worker(tmp_path):
    """Two gunicorn workers are two apps on one store: a pause made through one is refused by
    the other on its very next notification (it had just accepted one)."""
    from fhirgen.service.console_actions import pause_subscription, resume_subscription

    first = Hook(tmp_path / "data")
    second = Hook(tmp_path / "data")
    _add_subscriptions(first)
    try:
        assert second.post().status_code == 200
        pause_subscription(first.store, "sub-1", "admin")
        counted = second.store.subscription("sub-1").notifications
        issue = _outcome(second.post(), 404)
        assert "paused" in issue["diagnostics"]
        # Refused in the transaction that would have recorded it: nothing of it is kept.
        assert len(second.store.events("sub-1")) == 1
        assert second.store.subscription("sub-1").notifications == counted
        resume_subscription(first.store, "sub-1", "admin")
        assert second.post().status_code == 200
    finally:
        first.store.dispose()
        second.store.dispose()


def test_readyz_is_503_while_the_store_is_write_locked(hook):
    database = hook.settings.data_dir / "fhirgen.db"
    assert database.exists()
    locker = sqlite3.connect(database, timeout=1)
    try:
        locker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        response = hook.client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["store"] == "StoreUnavailable"
    finally:
        locker.rollback()
        locker.close()
    after = hook.client.get("/readyz").get_json()["checks"]
    assert after["store"] == "ok"  # the broker's port is closed here: only the store is ok
    with hook.store.engine.connect() as connection:  # the pool's busy timeout is back
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_write_check_sees_a_lock_held_elsewhere_and_changes_nothing(tmp_path, kind):
    """Readiness's check on each store: refused within its wait while another connection
    holds what a notification's write needs, fine once released, the pool left as it was."""
    with fresh_database(kind, tmp_path) as url:
        store = Store(url)
        other = create_engine(url)
        try:
            store.migrate()
            store.check_writable(1)
            with other.connect() as connection:
                if kind == "sqlite":
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    connection.execute(text("LOCK TABLE kv IN ACCESS EXCLUSIVE MODE"))
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    store.check_writable(1)
                assert time.monotonic() - started < 5
                connection.rollback()
            store.check_writable(1)
            assert store.get_value("fhirgen.readyz") is None  # nothing written
        finally:
            other.dispose()
            store.dispose()


# -- 10. duplicates at intake, events per notification ---------------------------------------------


def _drafted(store: Store, job_id: str, version: str, final: str = "done") -> None:
    """What the worker does with a job: read (claiming the version), generate, write."""
    job = store.job(job_id)
    assert store.advance(job_id, ("received",), "reading")
    assert store.claim_draft(job_id, job.encounter_id, version) is None
    if final == "reading":
        return
    if final == "failed":
        store.advance(job_id, ("reading",), "failed", reason="EHR said no")
        store.release_draft(job_id)
        return
    for before, after in (
        ("reading", "generating"),
        ("generating", "writing"),
        ("writing", "done"),
    ):
        assert store.advance(job_id, (before,), after, encounter_version=version)


def test_a_duplicate_for_a_drafted_encounter_version_makes_no_job(hook):
    assert hook.post().status_code == 200
    (job,) = hook.store.jobs()
    _drafted(hook.store, job.id, "4")
    assert hook.post().status_code == 200  # recorded, answered, no job
    assert [j.id for j in hook.store.jobs()] == [job.id]
    latest, first = hook.store.events("sub-1")
    assert first.note is None
    assert latest.note == f"Encounter version 4 already drafted (job {job.id})"
    assert latest.job_id == job.id  # the event names the job that drafted it
    newer = hook.post(body=dict(ENCOUNTER, meta={"versionId": "5"}))
    assert newer.status_code == 200
    assert len(hook.store.jobs()) == 2  # a new version is drafted


def test_a_duplicate_while_the_version_is_being_drafted_makes_no_job(hook):
    assert hook.post().status_code == 200
    (job,) = hook.store.jobs()
    _drafted(hook.store, job.id, "4", final="reading")  # claimed, still reading the stay
    assert hook.post().status_code == 200
    assert [j.id for j in hook.store.jobs()] == [job.id]


def test_after_a_failed_job_the_version_gets_a_new_job(hook):
    assert hook.post().status_code == 200
    (job,) = hook.store.jobs()
    _drafted(hook.store, job.id, "4", final="failed")  # the claim is given up
    assert hook.post().status_code == 200
    assert len(hook.store.jobs()) == 2


def test_a_notification_without_a_version_still_gets_a_job(hook):
    assert hook.post().status_code == 200
    (job,) = hook.store.jobs()
    _drafted(hook.store, job.id, "4")
    unversioned = {k: v for k, v in ENCOUNTER.items() if k != "meta"}
    assert hook.post(body=unversioned).status_code == 200
    assert len(hook.store.jobs()) == 2  # which version it is, the job reads
    ids = _topic("event-notification", 1, _events(1, encounter="Encounter/enc-77"))
    assert hook.post("topic-1", ids).status_code == 200
    assert len(hook.store.jobs()) == 2  # the waiting job takes it, as before


@pytest.mark.parametrize("shape", ["full-resource", "versioned id-only"])
def test_topic_duplicates_of_a_drafted_version_make_no_job(hook, shape):
    assert hook.post().status_code == 200
    (job,) = hook.store.jobs()
    _drafted(hook.store, job.id, "4")
    if shape == "full-resource":
        body = _topic("event-notification", 1, _events(1, encounter="Encounter/enc-77"),
                      resources=[ENCOUNTER])  # fmt: skip
    else:
        body = _topic("event-notification", 1, _events(1, encounter="Encounter/enc-77/_history/4"))
    assert hook.post("topic-1", body).status_code == 200
    assert [j.id for j in hook.store.jobs()] == [job.id]
    (topic_event,) = hook.store.events("topic-1")
    assert (topic_event.event_number, topic_event.job_id) == (1, job.id)
    assert "already drafted" in topic_event.note
    assert hook.store.subscription("topic-1").events_since == 1  # event numbers as before


def test_the_store_skips_drafted_versions_only_for_the_encounter_named():
    """Store level: one group, a drafted and an undrafted Encounter, versions per focus."""
    store = Store("sqlite://")
    store.migrate()
    try:
        store.add_subscription(id="s", kind="rest-hook", criteria="x", status="active")
        (made,) = store.record_notifications([Received("s", "rest-hook", ((None, "Encounter/a"),))])
        _drafted(store, made.jobs[0], "1")
        results = store.record_notifications(
            [
                Received("s", "rest-hook", ((None, "Encounter/a"),), versions=(("Encounter/a", "1"),)),
                Received("s", "rest-hook", ((None, "Encounter/b"),), versions=(("Encounter/b", "1"),)),
                Received("s", "rest-hook", ((None, "Encounter/a"),), versions=(("Encounter/a", "2"),)),
            ]
        )  # fmt: skip
        assert [len(r.jobs) for r in results] == [0, 1, 1]
        assert results[0].notes == (f"Encounter version 1 already drafted (job {made.jobs[0]})",)
    finally:
        store.dispose()


def test_events_over_the_cap_are_413_and_nothing_is_recorded(tmp_path):
    hook = Hook(tmp_path / "data", max_notification_events=5)
    _add_subscriptions(hook)
    try:
        issue = _outcome(
            hook.post("topic-1", _topic("event-notification", 6, _events(*range(1, 7)))), 413
        )
        assert issue["code"] == "too-costly"
        assert hook.store.events() == [] and hook.store.jobs() == []
        assert hook.store.subscription("topic-1").events_since == 0
        ok = hook.post("topic-1", _topic("event-notification", 5, _events(*range(1, 6))))
        assert ok.status_code == 200
        assert len(hook.store.jobs()) == 5
    finally:
        hook.store.dispose()


def test_the_event_cap_defaults_to_a_hundred(tmp_path):
    assert load_settings(data_dir=tmp_path).max_notification_events == 100
    body = _topic("event-notification", 101, _events(*range(1, 102)))
    with pytest.raises(NotificationError) as caught:
        parse_notification("POST", body, content_type=FHIR_JSON, max_events=100)
    assert (caught.value.status, caught.value.code) == (413, "too-costly")
    parse_notification("POST", body, content_type=FHIR_JSON)  # the parser alone has no cap


# -- the client's address behind the shipped proxy ---------------------------------------------


@pytest.mark.parametrize(("trusted", "seen"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_the_clients_address_comes_from_x_forwarded_for_only_behind_trusted_proxies(
    tmp_path: Path, trusted: int, seen: str
) -> None:
    from flask import request

    webhook = Hook(tmp_path / "data", trusted_proxies=trusted)
    webhook.app.add_url_rule("/peer", "peer", lambda: request.remote_addr or "")
    # A forged value first, then the one the proxy appended: only the proxy's is believed.
    forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
    answer = webhook.client.get(
        "/peer", headers=forwarded, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    )
    assert answer.get_data(as_text=True) == seen
    webhook.store.dispose()
