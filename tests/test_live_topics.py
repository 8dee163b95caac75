"""The live path with a topic-based Subscription (R4 Subscriptions Backport IG).

sekmet-fhir offers an encounter-complete topic: ``subscribe(topic=...)`` registers on it; the EHR
sends a handshake (we answer, the subscription becomes active), heartbeats, and an
event-notification per discharge, which ends as one draft in the EHR.
"""

from __future__ import annotations

import time

import pytest

from fhirgen.service.jobs import stale_subscriptions
from fhirgen.service.subscriptions import discover_topics, pick_discharge_topic
from tests.live import LiveSystem, admitted, discharged, drafts_in_ehr, sample_stay, wait_until

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def system(ehr, tmp_path_factory):
    live = LiveSystem(tmp_path_factory.mktemp("fhirgen"), ehr.base_url).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def subscription(system):
    with system.ehr_client() as client:
        topic = pick_discharge_topic(discover_topics(client))
    assert topic and topic.endswith("encounter-complete")
    return system.subscribe(topic=topic, content="id-only", heartbeat=1)


def test_handshake_makes_the_subscription_active(system, subscription):
    row = wait_until(
        lambda: (r := system.store.subscription(subscription.id)) and r.status == "active" and r,
        what="the handshake",
    )
    assert row.kind == "topic"
    kinds = [e.kind for e in system.store.events(subscription.id)]
    assert "handshake" in kinds


def test_heartbeats_are_recorded(system, subscription):
    row = wait_until(
        lambda: (r := system.store.subscription(subscription.id)) and r.last_heartbeat_at and r,
        timeout=30,
        what="a heartbeat",
    )
    assert row.last_heartbeat_at is not None
    assert any(e.kind == "heartbeat" for e in system.store.events(subscription.id))


def test_an_event_notification_drafts_the_stay_once(ehr, system, subscription):
    stay = sample_stay("heart-failure")
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    wait_until(
        lambda: drafts_in_ehr(ehr, encounter["id"])["Provenance"], timeout=90, what="the draft"
    )
    time.sleep(1.5)
    found = drafts_in_ehr(ehr, encounter["id"])
    assert {k: len(v) for k, v in found.items()} == {
        "DocumentReference": 1,
        "PatientInstructions": 1,
        "CarePlan": 1,
        "Provenance": 1,
    }
    events = [e for e in system.store.events(subscription.id) if e.kind == "event-notification"]
    foci = {e.focus: e for e in events}
    assert f"Encounter/{encounter['id']}" in foci
    # The record's earlier clinic visit was loaded finished too: its event names no stay.
    clinic = next(
        r for r in stay if r["resourceType"] == "Encounter" and r["class"]["code"] == "AMB"
    )
    assert f"Encounter/{clinic['id']}" in foci
    clinic_job = system.store.jobs(encounter_id=clinic["id"])[0]
    wait_until(lambda: system.store.job(clinic_job.id).state == "skipped", what="the clinic job")
    numbers = sorted(e.event_number for e in events)
    assert numbers == list(range(1, len(numbers) + 1))  # none missing
    # sekmet delivers from a pool of four threads, so event 2 (or a heartbeat counting it) can
    # arrive before event 1: that is a gap when seen, and a late arrival fills it. Every gap the
    # webhook counted must have been filled so.
    late = [e for e in system.store.events(subscription.id) if e.note and "arrived late" in e.note]
    assert system.store.subscription(subscription.id).gaps_detected <= len(late)


def test_silent_subscription_is_checked_with_status(system, subscription):
    # As if heartbeats had stopped: the watchdog asks the EHR's $status and records its count.
    from dataclasses import replace

    from workers.runtime import services as _unused  # noqa: F401 - the worker's wiring imports

    services = _services(system)
    later = system.store.subscription(subscription.id).last_notification_at
    assert later is not None
    behind = stale_subscriptions(replace(services), now=_far_future())
    assert behind == []  # the EHR's count matches what we received: no gap
    statuses = [e for e in system.store.events(subscription.id) if e.kind == "query-status"]
    assert statuses


def _services(system):
    from fhirgen.drafting.generation import get_generator
    from fhirgen.service.jobs import Services

    return Services(
        store=system.store,
        settings=system.settings,
        client=system.ehr_client,
        generator=lambda: get_generator("template"),
    )


def _far_future():
    from datetime import timedelta

    from fhirgen.store import utcnow

    return utcnow() + timedelta(hours=1)
