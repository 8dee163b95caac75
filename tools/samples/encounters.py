"""Encounters: the stay itself and other visits, with their participants and diagnoses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.samples.datatypes import Resource, coding, concept, ref
from tools.samples.ids import BASE_URL
from tools.samples.sample import Sample
from tools.samples.systems import ACT_CODE, ADMIT_SOURCE, DIAGNOSIS_ROLE, DISPOSITION, PARTICIPATION

ENCOUNTER_CLASSES = {
    "IMP": "inpatient encounter",
    "AMB": "ambulatory",
    "EMER": "emergency",
    "OBSENC": "observation encounter",
}
PARTICIPANT_TYPES = {"ADM": "admitter", "ATND": "attender", "DIS": "discharger"}
DIAGNOSIS_ROLES = {
    "AD": "Admission diagnosis",
    "DD": "Discharge diagnosis",
    "CC": "Chief complaint",
}


def encounter(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    cls: str,
    type_: dict[str, Any],
    start: str,
    end: str,
    org: Resource,
    place: Resource,
    participants: Iterable[tuple[str, Resource]],
    reason_codes: Iterable[dict[str, Any]] = (),
    version: str = "1",
    updated: str | None = None,
) -> Resource:
    """A finished Encounter; add ``reasonReference``/``diagnosis``/``hospitalization`` after."""
    body: dict[str, Any] = {}
    if updated:
        body["meta"] = {"versionId": version, "lastUpdated": updated}
    body.update(
        {
            "identifier": [
                {"use": "usual", "system": f"{BASE_URL}/sid/encounter-csn", "value": s.new_id(key)}
            ],
            "status": "finished",
            "class": coding(ACT_CODE, cls, ENCOUNTER_CLASSES[cls]),
            "type": [type_],
            "subject": ref(patient_),
            "participant": [
                {
                    "type": [
                        concept(
                            PARTICIPANT_TYPES[role],
                            coding(PARTICIPATION, role, PARTICIPANT_TYPES[role]),
                        )
                    ],
                    "period": {"start": start, "end": end},
                    "individual": ref(person),
                }
                for role, person in participants
            ],
            "period": {"start": start, "end": end},
        }
    )
    reasons = list(reason_codes)
    if reasons:
        body["reasonCode"] = reasons
    body["location"] = [
        {"location": ref(place), "status": "completed", "period": {"start": start, "end": end}}
    ]
    body["serviceProvider"] = ref(org)
    return s.add("Encounter", key, body)


def hospitalize(
    stay: Resource,
    *,
    reasons: Iterable[Resource],
    diagnoses: Iterable[tuple[Resource, str]],
    admit_source: tuple[str, str],
    disposition: tuple[str, str],
    disposition_text: str,
    destination: Resource | None = None,
) -> None:
    """Complete an inpatient Encounter: reasons, ranked diagnoses and hospitalization."""
    stay["reasonReference"] = [ref(c, display=False) for c in reasons]
    stay["diagnosis"] = [
        {
            "condition": ref(condition_, display=False),
            "use": concept(
                DIAGNOSIS_ROLES[role], coding(DIAGNOSIS_ROLE, role, DIAGNOSIS_ROLES[role])
            ),
            "rank": rank,
        }
        for rank, (condition_, role) in enumerate(diagnoses, start=1)
    ]
    hospitalization: dict[str, Any] = {
        "admitSource": concept(admit_source[1], coding(ADMIT_SOURCE, *admit_source)),
        "dischargeDisposition": concept(disposition_text, coding(DISPOSITION, *disposition)),
    }
    if destination is not None:
        hospitalization["destination"] = ref(destination)
    stay["hospitalization"] = hospitalization
    # Keep the element order EHRs use: hospitalization before location and serviceProvider.
    for name in ("location", "serviceProvider"):
        stay[name] = stay.pop(name)
