"""Parsing Subscription notifications: every shape the EHRs send, and every refusal with its status."""

from __future__ import annotations

import dataclasses
import json
import pickle
from typing import Any

import pytest
from sekmet.subscriptions.backport import notification_bundle

from fhirgen.errors import InputError, PermanentError
from fhirgen.fhir.notifications import (
    Notification,
    NotificationError,
    NotificationEvent,
    is_fhir_json,
    parse_notification,
)

FHIR_JSON = "application/fhir+json; charset=utf-8"
BASE = "https://ehr.example.org/fhir"
TOPIC = "http://hl7.org/fhir/uv/subscriptions-backport/SubscriptionTopic/r4-encounter-complete"
SUBSCRIPTION = f"{BASE}/Subscription/admission"
STAMP = "2024-05-29T11:44:13.1882432-05:00"

ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "enc-1",
    "meta": {"versionId": "3", "lastUpdated": "2024-05-29T16:44:12.000Z"},
    "status": "finished",
    "class": {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "IMP",
        "display": "inpatient encounter",
    },
    "subject": {"reference": "Patient/pat-1", "display": "Jane Doe"},
    "period": {"start": "2024-05-25T08:00:00Z", "end": "2024-05-29T16:40:00Z"},
    "hospitalization": {
        "dischargeDisposition": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                    "code": "home",
                }
            ]
        }
    },
}
PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "pat-1",
    "name": [{"family": "Doe", "given": ["Jane"]}],
}


def dumps(resource: Any) -> bytes:
    return json.dumps(resource).encode()


def parse(resource: Any, method: str = "POST", **kwargs: Any) -> Notification:
    kwargs.setdefault("content_type", FHIR_JSON)
    return parse_notification(method, dumps(resource), **kwargs)


def refused(body: bytes, method: str = "POST", **kwargs: Any) -> NotificationError:
    kwargs.setdefault("content_type", FHIR_JSON)
    with pytest.raises(NotificationError) as caught:
        parse_notification(method, body, **kwargs)
    message = str(caught.value)
    assert message and "\n" not in message
    return caught.value


# ---------------- R4 Backport IG bundles, shaped like the IG's examples ----------------


def r4_status(ntype: str, since: int | None, status: str = "active", events=()) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": SUBSCRIPTION}},
        {"name": "topic", "valueCanonical": TOPIC},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": ntype},
    ]
    if since is not None:
        params.append({"name": "events-since-subscription-start", "valueString": str(since)})
    for number, focus, context in events:
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(number)},
            {"name": "timestamp", "valueInstant": STAMP},
        ]
        if focus:
            parts.append({"name": "focus", "valueReference": {"reference": focus}})
        if context:
            parts.append({"name": "additional-context", "valueReference": {"reference": context}})
        params.append({"name": "notification-event", "part": parts})
    return {
        "resourceType": "Parameters",
        "id": "9e41ff6d-5be6-4e6a-8b85-abd4e7f58400",
        "meta": {
            "profile": [
                "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"
            ]
        },
        "parameter": params,
    }


def bundle(
    status: dict[str, Any], *entries: dict[str, Any], btype: str = "history"
) -> dict[str, Any]:
    first = {
        "fullUrl": f"urn:uuid:{status.get('id', '63c28e8a-f402-43e4-beb2-75b1c0f6833f')}",
        "resource": status,
        "request": {"method": "GET", "url": f"{SUBSCRIPTION}/$status"},
        "response": {"status": "200"},
    }
    return {
        "resourceType": "Bundle",
        "id": "notification-1",
        "type": btype,
        "timestamp": STAMP,
        "entry": [first, *entries],
    }


def full_entry(resource: dict[str, Any], method: str = "PUT") -> dict[str, Any]:
    rtype, rid = resource["resourceType"], resource["id"]
    return {
        "fullUrl": f"{BASE}/{rtype}/{rid}",
        "resource": resource,
        "request": {"method": method, "url": f"{rtype}/{rid}"},
        "response": {"status": "200"},
    }


# ---------------- R4 rest-hook ----------------


def test_medplum_posts_the_resource():
    note = parse(ENCOUNTER)
    assert note.kind == "rest-hook"
    assert note.focus == ("Encounter/enc-1",)
    assert note.version == "3"
    assert note.content == "resource"
    assert note.events == () and note.events_since is None and note.subscription is None


def test_medplum_posts_an_empty_object_on_delete():
    note = parse({})
    assert note.kind == "deleted"
    assert note.focus == ()
    assert note.content == "none"


def test_hapi_puts_the_resource_to_its_path():
    note = parse(ENCOUNTER, "PUT", path_type="Encounter", path_id="enc-1")
    assert note.kind == "rest-hook"
    assert note.focus == ("Encounter/enc-1",)
    assert note.version == "3"


def test_hapi_deletes_the_path():
    note = parse_notification(
        "DELETE", b"", content_type=None, path_type="Encounter", path_id="enc-1"
    )
    assert note.kind == "deleted"
    assert note.focus == ("Encounter/enc-1",)


def test_a_resource_without_version_has_none():
    resource = {key: value for key, value in ENCOUNTER.items() if key != "meta"}
    assert parse(resource).version is None


@pytest.mark.parametrize("body", [b"", b"  \r\n\t"])
@pytest.mark.parametrize("content_type", [None, FHIR_JSON, "text/plain"])
def test_an_empty_post_is_a_ping(body, content_type):
    note = parse_notification("POST", body, content_type=content_type)
    assert note.kind == "ping"
    assert note.focus == ()
    assert note.content == "none"


def test_a_utf8_byte_order_mark_is_tolerated():
    note = parse_notification("POST", b"\xef\xbb\xbf" + dumps(ENCOUNTER), content_type=FHIR_JSON)
    assert note.focus == ("Encounter/enc-1",)


# ---------------- R4 Backport IG (Parameters in a history Bundle) ----------------


def test_r4_handshake():
    note = parse(bundle(r4_status("handshake", 0, status="requested")))
    assert note.kind == "handshake"
    assert note.subscription == "Subscription/admission"
    assert note.topic == TOPIC
    assert note.status == "requested"
    assert note.events_since == 0
    assert note.events == () and note.focus == ()


def test_r4_heartbeat():
    note = parse(bundle(r4_status("heartbeat", 2)))
    assert note.kind == "heartbeat"
    assert note.status == "active"
    assert note.events_since == 2
    assert note.events == ()


def test_r4_event_notification_empty():
    note = parse(bundle(r4_status("event-notification", 2, events=[(2, None, None)])))
    assert note.kind == "event-notification"
    assert note.events_since == 2
    assert note.events == (NotificationEvent(number=2, focus=None, timestamp=STAMP),)
    assert note.focus == ()
    assert note.content == "empty"


def test_r4_event_notification_id_only():
    status = r4_status("event-notification", 2, events=[(2, f"{BASE}/Encounter/enc-1", None)])
    note = parse(bundle(status))
    assert [e.number for e in note.events] == [2]
    assert note.events[0].focus == "Encounter/enc-1"
    assert note.focus == ("Encounter/enc-1",)
    assert note.content == "id-only"


def test_r4_event_notification_full_resource_gives_references_only():
    status = r4_status(
        "event-notification", 2, events=[(2, f"{BASE}/Encounter/enc-1", f"{BASE}/Patient/pat-1")]
    )
    note = parse(bundle(status, full_entry(ENCOUNTER, "POST"), full_entry(PATIENT, "GET")))
    assert note.content == "full-resource"
    assert note.events[0].focus == "Encounter/enc-1"
    assert note.focus == ("Encounter/enc-1", "Patient/pat-1")
    # No resource bodies leave the parser: every field is a plain value or a tuple of them.
    for field in dataclasses.fields(note):
        assert not isinstance(getattr(note, field.name), dict)
    assert "Doe" not in repr(note)


def test_r4_camel_case_names_and_integer_numbers():
    status = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/admission"}},
            {"name": "topic", "valueUri": TOPIC},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            {"name": "eventsSinceSubscriptionStart", "valueUnsignedInt": 12},
            {
                "name": "notificationEvent",
                "part": [
                    {"name": "eventNumber", "valueInteger": 11},
                    {"name": "focus", "valueReference": {"reference": "Encounter/enc-1"}},
                ],
            },
            {
                "name": "notificationEvent",
                "part": [
                    {"name": "eventNumber", "valueUnsignedInt": 12},
                    {"name": "focus", "valueReference": {"reference": "Encounter/enc-2"}},
                    {"name": "additionalContext", "valueReference": {"reference": "Patient/pat-1"}},
                ],
            },
        ],
    }
    note = parse(bundle(status))
    assert note.topic == TOPIC
    assert note.events_since == 12
    assert [e.number for e in note.events] == [11, 12]
    assert note.focus == ("Encounter/enc-1", "Encounter/enc-2")


def test_focus_references_are_reduced_to_type_and_id():
    status = r4_status(
        "event-notification",
        3,
        events=[(3, f"{BASE}/Encounter/enc-1/_history/4", None), (4, "Encounter/enc-1", None)],
    )
    note = parse(bundle(status))
    assert [e.focus for e in note.events] == ["Encounter/enc-1", "Encounter/enc-1"]
    assert note.focus == ("Encounter/enc-1",)


def test_urn_focus_is_resolved_through_the_bundle():
    status = r4_status(
        "event-notification", 5, events=[(5, "urn:uuid:1d7c7a2e-5c1f-4f36-a8b8-6f0c0a0b4e21", None)]
    )
    entry = {
        "fullUrl": "urn:uuid:1d7c7a2e-5c1f-4f36-a8b8-6f0c0a0b4e21",
        "resource": ENCOUNTER,
        "request": {"method": "GET", "url": "Encounter/enc-1"},
    }
    note = parse(bundle(status, entry))
    assert note.events[0].focus == "Encounter/enc-1"
    assert note.focus == ("Encounter/enc-1",)


def test_r4_query_status_with_error():
    status = r4_status("query-status", 3, status="error")
    status["parameter"].append(
        {
            "name": "error",
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/subscription-error",
                        "code": "no-response",
                    }
                ]
            },
        }
    )
    note = parse(bundle(status))
    assert note.kind == "query-status"
    assert note.status == "error"
    assert note.events_since == 3
    assert note.events == ()


def test_r4_query_event():
    status = r4_status(
        "query-event",
        9,
        events=[(7, f"{BASE}/Encounter/enc-7", None), (8, f"{BASE}/Encounter/enc-8", None)],
    )
    note = parse(bundle(status))
    assert note.kind == "query-event"
    assert [e.number for e in note.events] == [7, 8]
    assert note.focus == ("Encounter/enc-7", "Encounter/enc-8")


# ---------------- R4B / R5 (SubscriptionStatus) ----------------


def test_r4b_subscription_status_event():
    status = {
        "resourceType": "SubscriptionStatus",
        "id": "r4b-notification-status",
        "status": "active",
        "type": "event-notification",
        "eventsSinceSubscriptionStart": "2",
        "notificationEvent": [
            {
                "eventNumber": "2",
                "timestamp": STAMP,
                "focus": {"reference": f"{BASE}/Encounter/enc-1"},
                "additionalContext": [{"reference": f"{BASE}/Patient/pat-1"}],
            }
        ],
        "subscription": {"reference": SUBSCRIPTION},
        "topic": TOPIC,
    }
    note = parse(bundle(status))
    assert note.kind == "event-notification"
    assert note.subscription == "Subscription/admission"
    assert note.events_since == 2
    assert note.events == (NotificationEvent(number=2, focus="Encounter/enc-1", timestamp=STAMP),)
    assert note.focus == ("Encounter/enc-1",)
    assert note.content == "id-only"


def test_r5_subscription_notification_bundle_full_resource():
    status = {
        "resourceType": "SubscriptionStatus",
        "status": "active",
        "type": "event-notification",
        "eventsSinceSubscriptionStart": 31,
        "notificationEvent": [
            {"eventNumber": 30, "focus": {"reference": "Encounter/enc-1"}},
            {"eventNumber": "31", "focus": {"reference": "Encounter/enc-2"}},
        ],
        "subscription": {"reference": "Subscription/admission"},
        "topic": TOPIC,
    }
    encounter_2 = dict(ENCOUNTER, id="enc-2")
    note = parse(
        bundle(
            status,
            full_entry(ENCOUNTER),
            full_entry(encounter_2),
            btype="subscription-notification",
        )
    )
    assert note.events_since == 31
    assert [e.number for e in note.events] == [30, 31]
    assert note.focus == ("Encounter/enc-1", "Encounter/enc-2")
    assert note.content == "full-resource"


def test_r5_heartbeat():
    status = {
        "resourceType": "SubscriptionStatus",
        "status": "active",
        "type": "heartbeat",
        "eventsSinceSubscriptionStart": "40",
        "subscription": {"reference": "Subscription/admission"},
    }
    note = parse(bundle(status, btype="subscription-notification"))
    assert note.kind == "heartbeat"
    assert note.events_since == 40
    assert note.topic is None


# ---------------- what sekmet-fhir sends ----------------

SEKMET_SUB = {
    "resourceType": "Subscription",
    "id": "sub-1",
    "status": "active",
    "criteria": "http://sekmet.dev/fhir/SubscriptionTopic/encounter-complete",
}


def sekmet_bundle(ntype: str, since: int, events=None, resources=None, status=None) -> dict:
    return notification_bundle(SEKMET_SUB, BASE, ntype, since, events, resources, status)


def test_sekmet_handshake_and_heartbeat():
    handshake = parse(sekmet_bundle("handshake", 0, status="requested"))
    assert (handshake.kind, handshake.status, handshake.events_since) == (
        "handshake",
        "requested",
        0,
    )
    assert handshake.subscription == "Subscription/sub-1"
    assert handshake.topic == SEKMET_SUB["criteria"]
    heartbeat = parse(sekmet_bundle("heartbeat", 4))
    assert (heartbeat.kind, heartbeat.events_since, heartbeat.events) == ("heartbeat", 4, ())


def test_sekmet_event_empty():
    note = parse(sekmet_bundle("event-notification", 5, [{"number": 5}]))
    assert [e.number for e in note.events] == [5]
    assert note.events[0].timestamp
    assert note.focus == ()
    assert note.content == "empty"


def test_sekmet_event_id_only():
    events = [{"number": 6, "focus": "Encounter/enc-1", "context": ["Patient/pat-1"]}]
    note = parse(sekmet_bundle("event-notification", 6, events))
    assert note.events_since == 6
    assert [(e.number, e.focus) for e in note.events] == [(6, "Encounter/enc-1")]
    assert note.focus == ("Encounter/enc-1",)
    assert note.content == "id-only"


def test_sekmet_event_full_resource():
    events = [{"number": 7, "focus": "Encounter/enc-1", "context": ["Patient/pat-1"]}]
    note = parse(sekmet_bundle("event-notification", 7, events, [ENCOUNTER]))
    assert note.events[0].number == 7
    assert note.focus == ("Encounter/enc-1",)
    assert note.content == "full-resource"


# ---------------- refusals ----------------


@pytest.mark.parametrize("body", [b"{not json", b'{"resourceType": "Encounter",', b"\xff\xfe{}"])
def test_invalid_json_is_400_invalid(body):
    error = refused(body)
    assert (error.status, error.code) == (400, "invalid")


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"Encounter"', b"42", b"null", b'{"id": "enc-1"}', b'{"resourceType": 5}'],
)
def test_json_that_is_not_a_resource_is_400_structure(body):
    error = refused(body)
    assert (error.status, error.code) == (400, "structure")


def test_an_unknown_resource_type_is_400_structure():
    error = refused(dumps({"resourceType": "Encounterr", "id": "enc-1"}))
    assert (error.status, error.code) == (400, "structure")
    assert "Encounterr" not in str(error)


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": ENCOUNTER}]},
        {"resourceType": "Bundle", "type": "transaction", "entry": []},
        {"resourceType": "Bundle", "type": "history", "entry": [{"resource": ENCOUNTER}]},
        {"resourceType": "Bundle", "type": "history"},
        {"resourceType": "Bundle"},
        {"resourceType": "Parameters", "parameter": []},
    ],
    ids=["searchset", "transaction", "plain-history", "no-entries", "no-type", "bare-parameters"],
)
def test_a_bundle_that_is_no_notification_is_422_not_supported(resource):
    error = refused(dumps(resource))
    assert (error.status, error.code) == (422, "not-supported")


def test_a_status_without_type_is_422():
    status = r4_status("heartbeat", 1)
    status["parameter"] = [p for p in status["parameter"] if p["name"] != "type"]
    error = refused(dumps(bundle(status)))
    assert (error.status, error.code) == (422, "required")


def test_an_unknown_notification_type_is_422():
    error = refused(dumps(bundle(r4_status("surprise", 1))))
    assert (error.status, error.code) == (422, "code-invalid")


@pytest.mark.parametrize("number", ["two", "-1", "1.5", "", 2.5, -3, True])
def test_an_event_number_that_is_not_a_count_is_422(number):
    status = r4_status("event-notification", 2, events=[(2, None, None)])
    status["parameter"][-1]["part"][0] = {"name": "event-number", "valueString": number}
    error = refused(dumps(bundle(status)))
    assert (error.status, error.code) == (422, "value")


def test_a_rest_hook_resource_without_id_is_422():
    resource = {key: value for key, value in ENCOUNTER.items() if key != "id"}
    error = refused(dumps(resource))
    assert (error.status, error.code) == (422, "required")


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/xml",
        "application/fhir+xml",
        "application/x-www-form-urlencoded",
    ],
)
def test_a_body_with_the_wrong_media_type_is_415(content_type):
    error = refused(dumps(ENCOUNTER), content_type=content_type)
    assert (error.status, error.code) == (415, "not-supported")


def test_put_without_a_path_is_400():
    error = refused(dumps(ENCOUNTER), "PUT")
    assert error.status == 400


def test_put_without_a_body_is_400():
    error = refused(b"", "PUT", path_type="Encounter", path_id="enc-1")
    assert error.status == 400


@pytest.mark.parametrize(
    ("path_type", "path_id"),
    [("Patient", "enc-1"), ("Encounter", "enc-2"), ("Encounter", "ENC-1")],
)
def test_put_whose_body_does_not_match_the_path_is_400(path_type, path_id):
    error = refused(dumps(ENCOUNTER), "PUT", path_type=path_type, path_id=path_id)
    assert (error.status, error.code) == (400, "invalid")


def test_put_whose_body_has_no_id_is_400():
    resource = {key: value for key, value in ENCOUNTER.items() if key != "id"}
    error = refused(dumps(resource), "PUT", path_type="Encounter", path_id="enc-1")
    assert error.status == 400


@pytest.mark.parametrize(
    ("path_type", "path_id"),
    [("Encounter", None), (None, "enc-1"), ("encounter", "enc-1"), ("Encounter", "a b")],
)
def test_a_malformed_path_is_400(path_type, path_id):
    error = refused(dumps(ENCOUNTER), "PUT", path_type=path_type, path_id=path_id)
    assert error.status == 400


def test_other_methods_are_405():
    error = refused(b"", "GET", content_type=None)
    assert (error.status, error.code) == (405, "not-supported")


def test_messages_never_echo_the_body():
    secret = "Jane-Doe-MRN-0042"
    bodies = [
        dumps({"resourceType": secret}),
        dumps({"resourceType": "Bundle", "type": secret}),
        dumps(bundle(r4_status(secret, 1))),
        dumps(bundle(r4_status("event-notification", 1, events=[(secret, None, None)]))),
        dumps(dict(ENCOUNTER, id=secret + " x")),
        b'{"resourceType": "' + secret.encode() + b'"',
    ]
    for body in bodies:
        assert secret not in str(refused(body))


def test_notification_error_sits_in_the_error_tree_and_pickles():
    error = refused(b"[]")
    assert isinstance(error, InputError) and isinstance(error, PermanentError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.code, str(copy)) == (error.status, error.code, str(error))


# ---------------- media types, immutability, speed ----------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/fhir+json", True),
        ("application/json", True),
        ("application/json+fhir", True),
        ("Application/FHIR+JSON;charset=UTF-8", True),
        ("application/fhir+json; fhirVersion=4.0", True),
        (" application/json ; charset=utf-8", True),
        ("application/fhir+xml", False),
        ("text/json", False),
        ("", False),
        (None, False),
    ],
)
def test_is_fhir_json(content_type, expected):
    assert is_fhir_json(content_type) is expected


@pytest.mark.parametrize("content_type", ["application/json", "application/json+fhir"])
def test_json_aliases_are_accepted(content_type):
    assert parse(ENCOUNTER, content_type=content_type).kind == "rest-hook"


def test_notifications_are_immutable():
    note = parse(ENCOUNTER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        note.kind = "ping"  # type: ignore[misc]
