"""The CarePlan (US Core, ``status=draft``): the care-plan draft and the patient instructions as
its narrative, the problems it addresses, its goals and activities."""

from __future__ import annotations

from typing import Any

from fhirgen.clinical.facts import Fact, FactKind, FactSet
from fhirgen.clinical.stay import StayContext
from fhirgen.drafting.documents import care_plan
from fhirgen.drafting.documents.base import Draft
from fhirgen.drafting.render.document import as_instant
from fhirgen.drafting.render.labels import AIAST, US_CORE, XHTML
from fhirgen.drafting.render.narrative import citation_numbers, draft_body, source_list


def care_plan_resource(
    context: StayContext,
    facts: FactSet,
    draft: Draft,
    instructions: Draft,
    identifier: str,
    system: str,
    device_url: str,
    generated_at: str,
) -> dict[str, Any]:
    """The CarePlan; its narrative is the care-plan draft, then the patient instructions under
    their own heading, then one source list numbered across both."""
    numbers = citation_numbers(draft, instructions)
    div = "".join(
        (
            draft_body(facts, draft, context, numbers, heading="h3", sources=False),
            draft_body(
                facts, instructions, context, numbers, heading="h3", banner=False, sources=False
            ),
            source_list(facts, numbers, "h4"),
        )
    )
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "meta": {"profile": [f"{US_CORE}/us-core-careplan"], "security": [AIAST]},
        "identifier": [{"system": system, "value": identifier}],
        "text": {"status": "additional", "div": f'<div xmlns="{XHTML}">{div}</div>'},
        "status": "draft",
        "intent": "plan",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                        "code": "assess-plan",
                    }
                ]
            }
        ],
        "title": "Care plan after discharge (AI-generated draft)",
        "description": "AI-generated draft care plan; a clinician must review it before use.",
        "subject": {"reference": f"Patient/{context.patient_id}"},
        "encounter": {"reference": f"Encounter/{context.encounter_id}"},
        "period": {"start": as_instant(context.discharged) or generated_at},
        "created": generated_at,
        "author": {"reference": device_url},
    }
    addresses = [
        {"reference": source}
        for fact in care_plan.addressed_problems(facts)
        for source in fact.sources
        if source.startswith("Condition/")
    ]
    if addresses:
        resource["addresses"] = addresses
    goals = [
        {"reference": source}
        for fact in facts.of_kind(FactKind.GOAL)
        for source in fact.sources
        if source.startswith("Goal/")
    ]
    if goals:
        resource["goal"] = goals
    activities = [_activity(fact) for fact in care_plan.activity_facts(facts)]
    if activities:
        resource["activity"] = activities
    return resource


_ACTIVITY_TARGETS = ("Appointment/", "ServiceRequest/", "MedicationRequest/")


def _activity(fact: Fact) -> dict[str, Any]:
    """A plan activity pointing at the order or appointment it comes from, where one exists."""
    change = fact.attr("change")
    if change != "stopped":
        targets = [s for s in fact.sources if s.startswith(_ACTIVITY_TARGETS)]
        if targets:
            return {"reference": {"reference": targets[-1], "display": fact.text[:200]}}
    detail: dict[str, Any] = {"status": "not-started", "description": fact.text}
    if fact.kind is FactKind.MEDICATION:
        detail.update(
            kind="MedicationRequest", status="stopped" if change == "stopped" else "not-started"
        )
    elif fact.kind is FactKind.PLAN_ACTIVITY:
        detail["status"] = "in-progress"
    reasons = [
        {"reference": s}
        for s in fact.sources
        if s.startswith(("Observation/", "DiagnosticReport/", "Condition/", "DocumentReference/"))
    ]
    if reasons:
        detail["reasonReference"] = reasons
    return {"detail": detail}
