"""Our Subscription on the EHR, the checks a notification must pass, and what intake records.

Real parts throughout: a SQLite store in tmp_path, a sekmet-fhir EHR process for registration
and topic discovery, notification bodies as sekmet builds them, parsed by ``parse_notification``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.subscription import Subscription as R4BSubscription
from sekmet.subscriptions.backport import notification_bundle

from fhirgen.config import load_settings
from fhirgen.errors import ConfigError
from fhirgen.fhir.client import FhirClient
from fhirgen.fhir.notifications import parse_notification
from fhirgen.service.intake import accept
from fhirgen.service.subscriptions import (
    BACKPORT,
    CLASSIC_CRITERIA,
    MEDPLUM_SECRET_EXT,
    discover_topics,
    pick_discharge_topic,
    register,
    subscription_resource,
    verify,
)
from fhirgen.service.vault import Vault, token_hash
from fhirgen.store import Store
from tests.ehr import SekmetServer

FHIR_JSON = "application/fhir+json"
TOKEN = "tok-" + "A1b2C3d4" * 5
HMAC_KEY = "key-" + "Z9y8X7w6" * 5
ENDPOINT = "https://fhirgen.example.org/fhir/notify/sub-1"
TOPIC = "http://sekmet.dev/fhir/SubscriptionTopic/encounter-complete"
EHR_BASE = "https://ehr.example.org/fhir"
EHR_SUB = {"resourceType": "Subscription", "id": "ehr-sub-1", "status": "active", "criteria": TOPIC}
ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "enc-1",
    "meta": {"versionId": "3"},
    "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
    "subject": {"reference": "Patient/pat-1"},
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test alone, never from the developer's FHIRGEN_* variables."""
    for name in list(os.environ):
        if name.startswith("FHIRGEN_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    return load_settings(data_dir=tmp_path / "data", secret_key="test passphrase")


@pytest.fixture
def store(settings: Any) -> Iterator[Store]:
    store = Store.from_settings(settings)
    store.migrate()
    yield store
    store.dispose()


def _signature(body: bytes, key: str = HMAC_KEY) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def _subscription(store: Store, sub_id: str = "sub-1", **values: Any) -> Any:
    values = {"kind": "topic", "criteria": TOPIC, "status": "active", **values}
    store.add_subscription(id=sub_id, **values)
    return store.subscription(sub_id)


# -- verify: the bearer token and the HMAC signature ------------------------------------------


@pytest.fixture
def token_row(store: Store) -> Any:
    return _subscription(store, token_hash=token_hash(TOKEN))


@pytest.fixture
def hmac_row(store: Store, settings: Any) -> Any:
    return _subscription(
        store,
        "sub-hmac",
        token_hash=token_hash(TOKEN),
        hmac_secret=Vault(settings).encrypt(HMAC_KEY),
    )


def test_the_stored_row_holds_neither_secret_in_the_clear(hmac_row):
    values = json.dumps({k: str(v) for k, v in hmac_row._mapping.items()})
    assert TOKEN not in values
    assert HMAC_KEY not in values


def test_the_right_bearer_token_passes(token_row, settings):
    assert verify(token_row, {"Authorization": f"Bearer {TOKEN}"}, b"{}", Vault(settings)) == ""
    assert verify(token_row, {"Authorization": f"bearer  {TOKEN}"}, b"{}", None) == ""


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": ""}, "missing bearer token"),
        ({"Authorization": "Bearer"}, "missing bearer token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing bearer token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "bad bearer token"),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, "bad bearer token"),
        ({"Authorization": f"Bearer {token_hash(TOKEN)}"}, "bad bearer token"),  # not the hash
    ],
)
def test_a_wrong_or_missing_bearer_token_fails(token_row, settings, headers, why):
    problem = verify(token_row, headers, b"{}", Vault(settings))
    assert problem == why
    assert TOKEN not in problem


def test_hmac_over_the_exact_raw_bytes_passes(hmac_row, settings):
    raw = b'{ "resourceType" : "Encounter",\n  "id" : "enc-1" }'
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Signature": _signature(raw)}
    assert verify(hmac_row, headers, raw, Vault(settings)) == ""


def test_a_re_serialised_body_fails_the_signature(hmac_row, settings):
    raw = b'{ "resourceType" : "Encounter",\n  "id" : "enc-1" }'
    same_json = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert json.loads(same_json) == json.loads(raw)
    assert same_json != raw
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Signature": _signature(raw)}
    assert verify(hmac_row, headers, same_json, Vault(settings)) == "bad signature"


@pytest.mark.parametrize(
    ("signature", "why"),
    [
        (None, "missing X-Signature"),
        ("", "missing X-Signature"),
        ("0" * 64, "bad signature"),
        (_signature(b"{}", key="another key"), "bad signature"),
        (_signature(b"{}", key=TOKEN), "bad signature"),  # the bearer token is not the HMAC key
    ],
)
def test_a_wrong_or_missing_signature_fails(hmac_row, settings, signature, why):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if signature is not None:
        headers["X-Signature"] = signature
    problem = verify(hmac_row, headers, b"{}", Vault(settings))
    assert problem == why
    for secret in (TOKEN, HMAC_KEY, _signature(b"{}")):
        assert secret not in problem


def test_every_check_must_pass_with_both_configured(hmac_row, settings):
    body = b"{}"
    good = {"Authorization": f"Bearer {TOKEN}", "X-Signature": _signature(body)}
    assert verify(hmac_row, good, body, Vault(settings)) == ""
    no_token = {"X-Signature": _signature(body)}
    assert verify(hmac_row, no_token, body, Vault(settings)) == "missing bearer token"
    assert verify(hmac_row, good, body, None) == "bad signature"  # no key to check with


def test_a_subscription_without_any_secret_is_refused(store):
    row = _subscription(store, "open")
    assert verify(row, {"Authorization": f"Bearer {TOKEN}"}, b"{}", None) != ""


# -- the Subscription resource the EHR receives ------------------------------------------------


def _valid_r4(resource: dict[str, Any]) -> None:
    """The R4 Subscription parses as FHIR (R4B's Subscription is R4's)."""
    R4BSubscription.model_validate(resource)


def test_a_classic_subscription_has_criteria_and_the_bearer_header():
    resource = subscription_resource(
        ENDPOINT,
        TOKEN,
        topic=None,
        criteria=CLASSIC_CRITERIA,
        content="id-only",
        heartbeat=None,
        hmac_key=None,
    )
    _valid_r4(resource)
    assert resource["resourceType"] == "Subscription"
    assert resource["status"] == "requested"
    assert resource["criteria"] == "Encounter?status=finished"
    assert resource["reason"]
    channel = resource["channel"]
    assert channel["type"] == "rest-hook"
    assert channel["endpoint"] == ENDPOINT
    assert channel["payload"] == FHIR_JSON
    assert channel["header"] == [f"Authorization: Bearer {TOKEN}"]
    assert "meta" not in resource
    assert "extension" not in resource


def test_a_classic_subscription_without_payload_asks_for_pings():
    resource = subscription_resource(
        ENDPOINT,
        TOKEN,
        topic=None,
        criteria=CLASSIC_CRITERIA,
        content="id-only",
        heartbeat=None,
        hmac_key=None,
        payload=False,
    )
    _valid_r4(resource)
    assert "payload" not in resource["channel"]  # R4: no payload means an empty notification
    assert resource["channel"]["header"] == [f"Authorization: Bearer {TOKEN}"]
    assert resource["criteria"] == CLASSIC_CRITERIA


def test_a_topic_subscription_follows_the_backport_profile():
    resource = subscription_resource(
        ENDPOINT,
        TOKEN,
        topic=TOPIC,
        criteria=CLASSIC_CRITERIA,
        content="id-only",
        heartbeat=60,
        hmac_key=None,
    )
    _valid_r4(resource)
    assert f"{BACKPORT}/backport-subscription" in resource["meta"]["profile"]
    assert resource["criteria"] == TOPIC
    channel = resource["channel"]
    assert channel["header"] == [f"Authorization: Bearer {TOKEN}"]
    assert channel["_payload"]["extension"] == [
        {"url": f"{BACKPORT}/backport-payload-content", "valueCode": "id-only"}
    ]
    assert channel["extension"] == [
        {"url": f"{BACKPORT}/backport-heartbeat-period", "valueUnsignedInt": 60}
    ]


def test_a_topic_subscription_without_heartbeat_asks_for_none():
    resource = subscription_resource(
        ENDPOINT, TOKEN, topic=TOPIC, criteria="", content="empty", heartbeat=None, hmac_key=None
    )
    assert "extension" not in resource["channel"]
    assert resource["channel"]["_payload"]["extension"][0]["valueCode"] == "empty"


def test_an_hmac_subscription_carries_medplums_secret_extension():
    resource = subscription_resource(
        ENDPOINT,
        TOKEN,
        topic=None,
        criteria=CLASSIC_CRITERIA,
        content="id-only",
        heartbeat=None,
        hmac_key=HMAC_KEY,
    )
    _valid_r4(resource)
    assert resource["extension"] == [{"url": MEDPLUM_SECRET_EXT, "valueString": HMAC_KEY}]


def test_pick_discharge_topic_by_name():
    base = "https://ehr.example.org/SubscriptionTopic"
    topics = [f"{base}/encounter-start", f"{base}/encounter-complete/", f"{base}/patient-change"]
    assert pick_discharge_topic(topics) == f"{base}/encounter-complete/"
    assert pick_discharge_topic([f"{base}/encounter-start"]) is None
    assert pick_discharge_topic([]) is None


# -- against a real EHR -----------------------------------------------------------------------


@pytest.fixture
def ehr_client(ehr: SekmetServer) -> Iterator[FhirClient]:
    with FhirClient(ehr.base_url, timeout=30) as client:
        yield client


def test_the_encounter_complete_topic_is_discovered(ehr_client):
    topics = discover_topics(ehr_client)
    assert TOPIC in topics
    assert topics == sorted(set(topics))
    assert pick_discharge_topic(topics) == TOPIC


@pytest.fixture
def registering(tmp_path: Path, ehr: SekmetServer) -> Any:
    """Settings whose public URL nobody answers (the EHR's handshake goes nowhere)."""
    return load_settings(
        data_dir=tmp_path / "data",
        public_url="http://127.0.0.1:9/hospital-gw/",
        ehr_base_url=ehr.base_url,
    )


def _read_back(ehr: SekmetServer, ehr_id: str) -> dict[str, Any]:
    response = httpx.get(f"{ehr.base_url}/Subscription/{ehr_id}", timeout=30)
    response.raise_for_status()
    return response.json()


def test_register_creates_the_subscription_on_the_ehr(ehr, ehr_client, registering):
    store = Store.from_settings(registering)
    store.migrate()
    try:
        registration = register(store, ehr_client, registering)
        assert registration.endpoint == (
            f"http://127.0.0.1:9/hospital-gw/fhir/notify/{registration.id}"
        )
        assert registration.kind == "rest-hook"
        assert registration.token not in repr(registration)
        on_ehr = _read_back(ehr, registration.ehr_id)
        assert on_ehr["criteria"] == CLASSIC_CRITERIA
        assert on_ehr["channel"]["type"] == "rest-hook"
        assert on_ehr["channel"]["endpoint"] == registration.endpoint
        assert on_ehr["channel"]["header"] == [f"Authorization: Bearer {registration.token}"]
        row = store.subscription(registration.id)
        assert row.ehr_id == registration.ehr_id
        assert row.token_hash == hashlib.sha256(registration.token.encode()).hexdigest()
        assert registration.token not in json.dumps({k: str(v) for k, v in row._mapping.items()})
        assert row.hmac_secret is None
        assert verify(row, {"Authorization": f"Bearer {registration.token}"}, b"", None) == ""
    finally:
        store.dispose()


def test_register_without_payload_records_empty_content(ehr, ehr_client, registering):
    store = Store.from_settings(registering)
    store.migrate()
    try:
        registration = register(store, ehr_client, registering, payload=False)
        assert "payload" not in _read_back(ehr, registration.ehr_id)["channel"]
        assert store.subscription(registration.id).content == "empty"
        assert registration.hmac_key is None
    finally:
        store.dispose()


def test_register_a_topic_subscription_with_hmac(ehr, ehr_client, registering):
    store = Store.from_settings(registering)
    store.migrate()
    try:
        registration = register(store, ehr_client, registering, topic=TOPIC, heartbeat=60)
        unsigned = store.subscription(registration.id)
        assert unsigned.hmac_secret is None
        signed = register(store, ehr_client, registering, topic=TOPIC, use_hmac=True)
        assert signed.id != registration.id
        assert signed.token != registration.token
        on_ehr = _read_back(ehr, signed.ehr_id)
        assert on_ehr["criteria"] == TOPIC
        assert f"{BACKPORT}/backport-subscription" in on_ehr["meta"]["profile"]
        assert on_ehr["channel"]["endpoint"] == signed.endpoint
        (key,) = [e["valueString"] for e in on_ehr["extension"] if e["url"] == MEDPLUM_SECRET_EXT]
        assert key == signed.hmac_key
        assert key not in repr(signed)
        row = store.subscription(signed.id)
        assert (row.kind, row.criteria, row.content) == ("topic", TOPIC, "id-only")
        assert key not in row.hmac_secret
        assert Vault(registering).decrypt(row.hmac_secret) == key
        body = b'{"resourceType":"Bundle"}'
        headers = {"Authorization": f"Bearer {signed.token}", "X-Signature": _signature(body, key)}
        assert verify(row, headers, body, Vault(registering)) == ""
        assert store.subscription(registration.id).heartbeat_period == 60
    finally:
        store.dispose()


# -- intake: what each kind of notification records --------------------------------------------


def _bundle(ntype: str, since: int, events: list[dict[str, Any]] | None = None, **kw: Any) -> Any:
    """A notification as sekmet sends it, parsed from its bytes."""
    body = json.dumps(notification_bundle(EHR_SUB, EHR_BASE, ntype, since, events, **kw))
    return parse_notification("POST", body.encode(), content_type=FHIR_JSON)


def test_a_rest_hook_notification_makes_a_job(store):
    _subscription(store, kind="rest-hook")
    notification = parse_notification(
        "PUT",
        json.dumps(ENCOUNTER).encode(),
        content_type=FHIR_JSON,
        path_type="Encounter",
        path_id="enc-1",
    )
    result = accept(store, "sub-1", notification)
    assert len(result.jobs) == 1
    assert not result.reconcile
    job = store.job(result.jobs[0])
    assert (job.encounter_id, job.state, job.subscription_id) == ("enc-1", "received", "sub-1")
    assert store.subscription("sub-1").notifications == 1


def test_a_ping_asks_for_reconciliation_and_makes_no_job(store):
    _subscription(store, kind="rest-hook")
    result = accept(store, "sub-1", parse_notification("POST", b"", content_type=None))
    assert (result.jobs, result.reconcile) == ((), True)
    assert store.jobs() == []
    assert [e.kind for e in store.events("sub-1")] == ["ping"]


def test_a_handshake_activates_the_subscription(store):
    _subscription(store)
    store.update_subscription("sub-1", status="requested", error="earlier trouble")
    result = accept(store, "sub-1", _bundle("handshake", 0, status="requested"))
    assert result.jobs == ()
    row = store.subscription("sub-1")
    assert (row.status, row.error) == ("active", None)


def test_a_heartbeat_is_recorded_and_makes_no_job(store):
    _subscription(store)
    assert store.subscription("sub-1").last_heartbeat_at is None
    result = accept(store, "sub-1", _bundle("heartbeat", 0))
    assert (result.jobs, result.gap, result.reconcile) == ((), None, False)
    assert store.subscription("sub-1").last_heartbeat_at is not None
    assert store.jobs() == []


def test_a_heartbeat_counting_unseen_events_is_a_gap(store):
    _subscription(store)
    result = accept(store, "sub-1", _bundle("heartbeat", 2))
    assert result.gap == (1, 2)
    assert result.reconcile
    assert store.subscription("sub-1").gaps_detected == 1


def test_an_id_only_event_makes_a_job_per_encounter(store):
    _subscription(store)
    events = [
        {"number": 1, "focus": "Encounter/enc-1", "context": ["Patient/pat-1"]},
        {"number": 2, "focus": "Encounter/enc-2", "context": ["Patient/pat-2"]},
    ]
    result = accept(store, "sub-1", _bundle("event-notification", 2, events))
    assert (result.gap, result.reconcile) == (None, False)
    assert sorted(store.job(j).encounter_id for j in result.jobs) == ["enc-1", "enc-2"]
    assert store.subscription("sub-1").events_since == 2


def test_a_full_resource_event_makes_a_job_from_the_focus_only(store):
    _subscription(store)
    events = [{"number": 1, "focus": "Encounter/enc-1", "context": ["Patient/pat-1"]}]
    note = _bundle("event-notification", 1, events, resources=[ENCOUNTER])
    assert note.content == "full-resource"
    result = accept(store, "sub-1", note)
    assert [store.job(j).encounter_id for j in result.jobs] == ["enc-1"]


def test_an_empty_event_asks_for_reconciliation(store):
    _subscription(store)
    result = accept(store, "sub-1", _bundle("event-notification", 1, [{"number": 1}]))
    assert (result.jobs, result.reconcile) == ((), True)
    assert store.subscription("sub-1").events_since == 1


def test_an_event_about_another_resource_type_makes_no_job(store):
    _subscription(store)
    events = [{"number": 1, "focus": "DiagnosticReport/dr-1", "context": ["Patient/pat-1"]}]
    result = accept(store, "sub-1", _bundle("event-notification", 1, events))
    assert result.jobs == ()
    assert store.jobs() == []
    assert [e.event_number for e in store.events("sub-1")] == [1]


def test_an_event_about_another_resource_type_keeps_its_focus_and_needs_no_search(store):
    _subscription(store)
    events = [{"number": 1, "focus": "DiagnosticReport/dr-1", "context": ["Patient/pat-1"]}]
    result = accept(store, "sub-1", _bundle("event-notification", 1, events))
    assert [e.focus for e in store.events("sub-1")] == ["DiagnosticReport/dr-1"]
    assert not result.reconcile


def test_an_error_status_marks_the_subscription(store):
    _subscription(store)
    accept(store, "sub-1", _bundle("heartbeat", 0, status="error"))
    row = store.subscription("sub-1")
    assert row.status == "error"
    assert row.error


# -- the vault for HMAC keys --------------------------------------------------------------------


def test_with_a_secret_key_no_key_file_is_written(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data", secret_key="correct horse battery")
    vault = Vault(settings)
    sealed = vault.encrypt(HMAC_KEY)
    assert HMAC_KEY not in sealed
    assert Vault(settings).decrypt(sealed) == HMAC_KEY
    assert not (tmp_path / "data" / "secret.key").exists()


def test_without_a_secret_key_a_private_key_file_is_made_and_reused(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data")
    sealed = Vault(settings).encrypt(HMAC_KEY)
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    written = key_file.read_bytes()
    assert Vault(load_settings(data_dir=tmp_path / "data")).decrypt(sealed) == HMAC_KEY
    assert key_file.read_bytes() == written


def test_a_changed_secret_key_is_a_config_error(tmp_path):
    sealed = Vault(load_settings(data_dir=tmp_path, secret_key="first key")).encrypt(HMAC_KEY)
    other = Vault(load_settings(data_dir=tmp_path, secret_key="second key"))
    with pytest.raises(ConfigError, match="FHIRGEN_SECRET_KEY") as caught:
        other.decrypt(sealed)
    for secret in ("first key", "second key", HMAC_KEY):
        assert secret not in str(caught.value)


def test_a_shared_database_without_a_secret_key_is_refused(tmp_path):
    settings = load_settings(
        data_dir=tmp_path / "data", database_url="postgresql+psycopg://fhirgen@db.example.org/x"
    )
    with pytest.raises(ConfigError, match="FHIRGEN_SECRET_KEY"):
        Vault(settings)
    assert not (tmp_path / "data" / "secret.key").exists()
