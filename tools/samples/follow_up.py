"""What follows the stay: appointments, service requests (orders, referrals) and goals."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.samples.datatypes import Resource, coding, concept, ref
from tools.samples.sample import Sample
from tools.samples.systems import TERMINOLOGY
from tools.samples.times import later


def appointment(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    clinician: Resource,
    place: Resource,
    start: str,
    minutes: int,
    created: str,
    service: dict[str, Any],
    description: str,
    reasons: Iterable[Resource] = (),
    instructions: str | None = None,
) -> Resource:
    body: dict[str, Any] = {
        "status": "booked",
        "serviceType": [service],
        "appointmentType": concept(
            "Follow-up",
            coding(
                TERMINOLOGY + "v2-0276", "FOLLOWUP", "A follow up visit from a previous appointment"
            ),
        ),
    }
    found = [ref(r, display=False) for r in reasons]
    if found:
        body["reasonReference"] = found
    body.update(
        {
            "description": description,
            "start": start,
            "end": later(start, minutes=minutes),
            "minutesDuration": minutes,
            "created": created,
        }
    )
    if instructions:
        body["patientInstruction"] = instructions
    body["participant"] = [
        {"actor": ref(patient_), "required": "required", "status": "accepted"},
        {"actor": ref(clinician), "required": "required", "status": "accepted"},
        {"actor": ref(place), "required": "required", "status": "accepted"},
    ]
    return s.add("Appointment", key, body)


def service_request(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    stay: Resource,
    code: dict[str, Any],
    category: dict[str, Any],
    authored: str,
    requester: Resource,
    status: str = "active",
    occurrence: str | None = None,
    performer: Resource | None = None,
    reasons: Iterable[Resource] = (),
    note_text: str | None = None,
    priority: str = "routine",
) -> Resource:
    body: dict[str, Any] = {
        "status": status,
        "intent": "order",
        "category": [category],
        "priority": priority,
        "code": code,
        "subject": ref(patient_),
        "encounter": ref(stay, display=False),
    }
    if occurrence:
        body["occurrenceDateTime"] = occurrence
    body["authoredOn"] = authored
    body["requester"] = ref(requester)
    if performer is not None:
        body["performer"] = [ref(performer)]
    found = [ref(r, display=False) for r in reasons]
    if found:
        body["reasonReference"] = found
    if note_text:
        body["note"] = [{"text": note_text}]
    return s.add("ServiceRequest", key, body)


def goal(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    text: str,
    start: str,
    target: dict[str, Any],
    expressed_by: Resource,
    addresses: Iterable[Resource] = (),
    category: dict[str, Any] | None = None,
) -> Resource:
    body: dict[str, Any] = {
        "lifecycleStatus": "active",
        "achievementStatus": concept(
            "In Progress",
            coding(TERMINOLOGY + "goal-achievement", "in-progress", "In Progress"),
        ),
    }
    if category:
        body["category"] = [category]
    body.update(
        {
            "description": concept(text),
            "subject": ref(patient_),
            "startDate": start,
            "target": [target],
            "statusDate": start,
            "expressedBy": ref(expressed_by),
        }
    )
    found = [ref(r, display=False) for r in addresses]
    if found:
        body["addresses"] = found
    return s.add("Goal", key, body)
