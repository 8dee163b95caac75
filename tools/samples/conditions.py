"""Conditions, procedures and allergies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.samples.datatypes import Resource, coding, concept, ref
from tools.samples.sample import Sample
from tools.samples.systems import (
    ALLERGY_CLINICAL,
    ALLERGY_VERIFICATION,
    CONDITION_CATEGORY,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
)


def condition(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    text: str,
    codes: Iterable[dict[str, Any]],
    recorded: str,
    onset: str | None = None,
    abatement: str | None = None,
    stay: Resource | None = None,
    recorder: Resource | None = None,
) -> Resource:
    """An encounter diagnosis when ``stay`` is given, else a problem-list item."""
    diagnosis = stay is not None
    category = (
        coding(CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")
        if diagnosis
        else coding(CONDITION_CATEGORY, "problem-list-item", "Problem List Item")
    )
    status = "resolved" if abatement else "active"
    body: dict[str, Any] = {
        "clinicalStatus": concept(
            status.capitalize(), coding(CONDITION_CLINICAL, status, status.capitalize())
        ),
        "verificationStatus": concept(
            "Confirmed", coding(CONDITION_VERIFICATION, "confirmed", "Confirmed")
        ),
        "category": [concept(category["display"], category)],
        "code": concept(text, *codes),
        "subject": ref(patient_),
    }
    if stay is not None:
        body["encounter"] = ref(stay, display=False)
    if onset:
        body["onsetDateTime"] = onset
    if abatement:
        body["abatementDateTime"] = abatement
    body["recordedDate"] = recorded
    if recorder is not None:
        body["recorder"] = ref(recorder)
    return s.add("Condition", key, body, kind="diagnosis" if diagnosis else "problem")


def procedure(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    stay: Resource,
    text: str,
    codes: Iterable[dict[str, Any]],
    performed: str | tuple[str, str],
    performer: Resource,
    place: Resource | None = None,
    reasons: Iterable[Resource] = (),
    body_site: dict[str, Any] | None = None,
    outcome: str | None = None,
    category: dict[str, Any] | None = None,
) -> Resource:
    body: dict[str, Any] = {"status": "completed"}
    if category:
        body["category"] = category
    body.update({"code": concept(text, *codes), "subject": ref(patient_)})
    body["encounter"] = ref(stay, display=False)
    if isinstance(performed, tuple):
        body["performedPeriod"] = {"start": performed[0], "end": performed[1]}
    else:
        body["performedDateTime"] = performed
    body["performer"] = [{"actor": ref(performer)}]
    if place is not None:
        body["location"] = ref(place)
    found = [ref(r, display=False) for r in reasons]
    if found:
        body["reasonReference"] = found
    if body_site:
        body["bodySite"] = [body_site]
    if outcome:
        body["outcome"] = concept(outcome)
    return s.add("Procedure", key, body)


def allergy(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    code: dict[str, Any],
    recorded: str,
    recorder: Resource,
    category: str | None = None,
    criticality: str | None = None,
    reaction: tuple[dict[str, Any], str] | None = None,
    onset: str | None = None,
) -> Resource:
    """An AllergyIntolerance; ``reaction`` = (manifestation concept, severity)."""
    body: dict[str, Any] = {
        "clinicalStatus": concept("Active", coding(ALLERGY_CLINICAL, "active", "Active")),
        "verificationStatus": concept(
            "Confirmed", coding(ALLERGY_VERIFICATION, "confirmed", "Confirmed")
        ),
    }
    if category:
        body["type"] = "allergy"
        body["category"] = [category]
    if criticality:
        body["criticality"] = criticality
    body["code"] = code
    body["patient"] = ref(patient_)
    if onset:
        body["onsetDateTime"] = onset
    body["recordedDate"] = recorded
    body["recorder"] = ref(recorder)
    if reaction:
        body["reaction"] = [{"manifestation": [reaction[0]], "severity": reaction[1]}]
    return s.add("AllergyIntolerance", key, body)
