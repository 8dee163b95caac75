"""All facts of a stay, family by family in the order a reader meets them."""

from __future__ import annotations

from fhirgen.clinical.facts.allergies import allergies
from fhirgen.clinical.facts.builder import FactBuilder
from fhirgen.clinical.facts.conditions import conditions
from fhirgen.clinical.facts.encounter import care_team, disposition, reasons, stay
from fhirgen.clinical.facts.follow_up import follow_ups, goals, pending, plan_activities
from fhirgen.clinical.facts.medications import inpatient_medications, medications
from fhirgen.clinical.facts.model import FactSet
from fhirgen.clinical.facts.notes import notes, reports
from fhirgen.clinical.facts.procedures import procedures
from fhirgen.clinical.facts.results import results
from fhirgen.clinical.stay import StayContext
from fhirgen.fhir.record import resource_key


def extract_facts(context: StayContext) -> FactSet:
    """All facts of a stay: an immutable, deterministic list."""
    builder = FactBuilder(context)
    stay(builder)
    care_team(builder)
    reasons(builder)
    conditions(builder)
    procedures(builder)
    inpatient_medications(builder)
    medications(builder)
    results(builder)
    reports(builder)
    allergies(builder)
    notes(builder)
    pending(builder)
    follow_ups(builder)
    goals(builder)
    plan_activities(builder)
    disposition(builder)
    return FactSet(resource_key(context.encounter), tuple(builder.facts))
