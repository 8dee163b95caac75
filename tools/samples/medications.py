"""Medications: Medication, requests, statements, dispenses and administrations, dosages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.samples.datatypes import Resource, coding, concept, days, ref
from tools.samples.sample import Sample
from tools.samples.systems import COURSE, DOSE_RATE, MED_CATEGORY


def medication(
    s: Sample,
    key: str,
    *,
    text: str,
    code: dict[str, Any],
    form: dict[str, Any],
    ingredient: dict[str, Any],
    strength: tuple[dict[str, Any], dict[str, Any]],
) -> Resource:
    """A Medication resource (what ``medicationReference`` points to)."""
    return s.add(
        "Medication",
        key,
        {
            "code": concept(text, code),
            "status": "active",
            "form": form,
            "ingredient": [
                {
                    "itemCodeableConcept": ingredient,
                    "isActive": True,
                    "strength": {"numerator": strength[0], "denominator": strength[1]},
                }
            ],
        },
    )


def med_concept(text: str, *codes: dict[str, Any]) -> dict[str, Any]:
    return concept(text, *codes)


def _medication_field(drug: dict[str, Any]) -> dict[str, Any]:
    if drug.get("resourceType") == "Medication":
        return {"medicationReference": ref(drug)}
    return {"medicationCodeableConcept": drug}


def dosage(
    text: str,
    *,
    dose: dict[str, Any] | None = None,
    dose_range: tuple[dict[str, Any], dict[str, Any]] | None = None,
    every: tuple[int, float, str] | None = None,
    route: dict[str, Any] | None = None,
    as_needed: bool | dict[str, Any] = False,
    bound_days: int | None = None,
    when: list[str] | None = None,
    patient_text: str | None = None,
) -> dict[str, Any]:
    """One dosage instruction; ``every`` = (frequency, period, periodUnit)."""
    found: dict[str, Any] = {"sequence": 1, "text": text}
    if patient_text:
        found["patientInstruction"] = patient_text
    if every or bound_days or when:
        repeat: dict[str, Any] = {}
        if bound_days:
            repeat["boundsDuration"] = days(bound_days)
        if every:
            repeat.update(frequency=every[0], period=every[1], periodUnit=every[2])
        if when:
            repeat["when"] = when
        found["timing"] = {"repeat": repeat}
    if isinstance(as_needed, dict):
        found["asNeededCodeableConcept"] = as_needed
    elif as_needed:
        found["asNeededBoolean"] = True
    if route:
        found["route"] = route
    if dose or dose_range:
        rate: dict[str, Any] = {"type": concept("Ordered", coding(DOSE_RATE, "ordered", "Ordered"))}
        if dose:
            rate["doseQuantity"] = dose
        else:
            assert dose_range is not None
            rate["doseRange"] = {"low": dose_range[0], "high": dose_range[1]}
        found["doseAndRate"] = [rate]
    return found


def dispense(
    start: str,
    until: str,
    amount: dict[str, Any],
    supply_days: int,
    refills: int = 0,
) -> dict[str, Any]:
    return {
        "validityPeriod": {"start": start, "end": until},
        "numberOfRepeatsAllowed": refills,
        "quantity": amount,
        "expectedSupplyDuration": days(supply_days),
    }


MED_CATEGORIES = {
    "inpatient": "Inpatient",
    "outpatient": "Outpatient",
    "community": "Community",
    "discharge": "Discharge",
}


def med_request(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    drug: dict[str, Any],
    category: str,
    authored: str,
    requester: Resource,
    instruction: dict[str, Any],
    status: str = "active",
    stay: Resource | None = None,
    reasons: Iterable[Resource] = (),
    supply: dict[str, Any] | None = None,
    course: str | None = None,
    note: str | None = None,
) -> Resource:
    """A MedicationRequest; ``category`` is inpatient | outpatient | community | discharge."""
    body: dict[str, Any] = {
        "status": status,
        "intent": "order",
        "category": [
            concept(
                MED_CATEGORIES[category], coding(MED_CATEGORY, category, MED_CATEGORIES[category])
            )
        ],
        **_medication_field(drug),
        "subject": ref(patient_),
    }
    if stay is not None:
        body["encounter"] = ref(stay, display=False)
    body["authoredOn"] = authored
    body["requester"] = ref(requester)
    found = [ref(r, display=False) for r in reasons]
    if found:
        body["reasonReference"] = found
    if course:
        label = {
            "continuous": "Continuous long term therapy",
            "acute": "Short course (acute) therapy",
        }
        body["courseOfTherapyType"] = concept(label[course], coding(COURSE, course, label[course]))
    if note:
        body["note"] = [{"text": note}]
    body["dosageInstruction"] = [instruction]
    if supply:
        body["dispenseRequest"] = supply
    return s.add("MedicationRequest", key, body)


def med_statement(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    drug: dict[str, Any],
    start: str,
    asserted: str,
    instruction: dict[str, Any],
    status: str = "active",
    end: str | None = None,
    status_reason: dict[str, Any] | None = None,
    reasons: Iterable[Resource] = (),
    source: Resource | None = None,
    note: str | None = None,
) -> Resource:
    """A MedicationStatement (a medication the patient takes at home, as reported)."""
    body: dict[str, Any] = {"status": status}
    if status_reason:
        body["statusReason"] = [status_reason]
    body.update(_medication_field(drug))
    body["subject"] = ref(patient_)
    period = {"start": start}
    if end:
        period["end"] = end
    body["effectivePeriod"] = period
    body["dateAsserted"] = asserted
    if source is not None:
        body["informationSource"] = ref(source)
    found = [ref(r, display=False) for r in reasons]
    if found:
        body["reasonReference"] = found
    if note:
        body["note"] = [{"text": note}]
    body["dosage"] = [instruction]
    return s.add("MedicationStatement", key, body)


def administer(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    stay: Resource,
    order: Resource,
    when: str,
    nurse: Resource,
    dose: dict[str, Any],
    route: dict[str, Any],
    text: str,
) -> Resource:
    """A completed MedicationAdministration of an inpatient order."""
    drug_field = {k: v for k, v in order.items() if k.startswith("medication")}
    return s.add(
        "MedicationAdministration",
        key,
        {
            "status": "completed",
            **drug_field,
            "subject": ref(patient_),
            "context": ref(stay, display=False),
            "effectiveDateTime": when,
            "performer": [{"actor": ref(nurse)}],
            "request": ref(order, display=False),
            "dosage": {"text": text, "route": route, "dose": dose},
        },
    )
