"""Nothing lost: missed notifications are recovered, and every delivery style drafts the stay.

Each scenario has its own EHR (sekmet-fhir) so that one scenario's notifications cannot
rescue another's: a gap in event numbers, an empty rest-hook ping, no notification at all
(the scheduled reconciliation), and a Medplum-style POST of the resource, signed with HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from sekmet.subscriptions.backport import notification_bundle

from tests.ehr import SekmetServer
from tests.live import LiveSystem, admitted, discharged, drafts_in_ehr, sample_stay, wait_until

pytestmark = pytest.mark.live


@pytest.fixture
def make(tmp_path):
    started: list = []

    def build(*, beat: bool = False, notify_method: str = "put-resource", **env: str):
        ehr = SekmetServer(tmp_path / f"ehr{len(started)}", notify_method=notify_method).start()
        started.append(ehr)
        live = LiveSystem(tmp_path / f"fhirgen{len(started)}", ehr.base_url, extra_env=env)
        started.append(live)
        return ehr, live.start(beat=beat)

    yield build
    for thing in reversed(started):
        thing.stop()


def _event_bundle(registration, number, focus):
    subscription = {"id": registration.id, "criteria": "test", "status": "active", "channel": {}}
    events = [{"number": number, "timestamp": "2026-03-06T12:00:00Z", "focus": focus}]
    return notification_bundle(subscription, "http://ehr", "event-notification", number, events)


def _drafted(ehr, encounter_id):
    return drafts_in_ehr(ehr, encounter_id)["Provenance"]


def test_a_gap_in_event_numbers_is_recovered_by_reconciliation(make):
    ehr, system = make()
    subscription = system.local_subscription("topic")
    first, missed = sample_stay("pneumonia"), sample_stay("hip-fracture")
    for stay in (first, missed):
        ehr.put_all(admitted(stay))
        ehr.put_all([discharged(stay)])
    first_id, missed_id = discharged(first)["id"], discharged(missed)["id"]
    assert (
        system.notify(
            subscription, _event_bundle(subscription, 1, f"Encounter/{first_id}")
        ).status_code
        == 200
    )
    wait_until(lambda: _drafted(ehr, first_id), timeout=90, what="the first draft")
    assert not _drafted(ehr, missed_id)
    # Event 2 (the hip fracture's discharge) never arrives; event 3 repeats the first stay.
    assert (
        system.notify(
            subscription, _event_bundle(subscription, 3, f"Encounter/{first_id}")
        ).status_code
        == 200
    )
    wait_until(lambda: _drafted(ehr, missed_id), timeout=90, what="the recovered draft")
    row = wait_until(
        lambda: (r := system.store.subscription(subscription.id)) and r.gaps_recovered and r,
        what="the recovery to be counted",
    )
    assert (row.gaps_detected, row.gaps_recovered, row.events_since) == (1, 1, 3)
    assert len(drafts_in_ehr(ehr, first_id)["DocumentReference"]) == 1


def test_an_empty_ping_searches_the_ehr(make):
    ehr, system = make()
    registration = system.subscribe(payload=False)
    stay = sample_stay("pneumonia")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    wait_until(lambda: _drafted(ehr, encounter["id"]), timeout=90, what="the draft after a ping")
    kinds = {e.kind for e in system.store.events(registration.id)}
    assert kinds == {"ping"}
    assert system.store.jobs(encounter_id=encounter["id"])[0].source == "reconcile"


def test_without_any_notification_the_schedule_reconciles(make):
    ehr, _system = make(beat=True, FHIRGEN_RECONCILE_INTERVAL="2")
    stay = sample_stay("heart-failure")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])  # no subscription: the EHR tells fhirgen nothing
    wait_until(lambda: _drafted(ehr, encounter["id"]), timeout=90, what="the reconciled draft")
    time.sleep(5)  # two more reconciliations must not draft it again
    assert len(drafts_in_ehr(ehr, encounter["id"])["DocumentReference"]) == 1


def test_a_posted_resource_is_a_notification_too(make):
    ehr, system = make(notify_method="post-endpoint")
    registration = system.subscribe()
    stay = sample_stay("chest-pain-observation")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    wait_until(lambda: _drafted(ehr, encounter["id"]), timeout=90, what="the draft")
    events = [
        e for e in system.store.events(registration.id) if e.focus == f"Encounter/{encounter['id']}"
    ]
    assert events and all(e.kind == "rest-hook" for e in events)


def test_medplum_style_signed_post(make):
    ehr, system = make()
    key = "s3cret-hmac-key-for-this-test"
    subscription = system.local_subscription("rest-hook", hmac_key=key)
    stay = sample_stay("hip-fracture")
    ehr.put_all(admitted(stay))
    ehr.put_all([discharged(stay)])
    encounter = ehr.search("Encounter", _id=discharged(stay)["id"])[0]
    body = json.dumps(encounter, separators=(",", ":")).encode()
    signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    unsigned = system.notify(subscription, body)
    assert unsigned.status_code == 401
    tampered = system.notify(
        subscription,
        body.replace(b'"finished"', b'"finished" '),
        headers={"X-Signature": signature},
    )
    assert tampered.status_code == 401, "the signature covers the exact bytes"
    signed = system.notify(subscription, body, headers={"X-Signature": signature})
    assert signed.status_code == 200
    wait_until(lambda: _drafted(ehr, encounter["id"]), timeout=90, what="the draft")
