"""The stay model: ``StayContext``, everything the record says about one inpatient stay, and the
``Note`` it carries for each clinical note. Built by ``builder.build_context``; never mutated.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhirgen.fhir.problems import Problem
from fhirgen.fhir.record import Resource
from fhirgen.fhir.values import concept_name


@dataclass(frozen=True)
class Note:
    """Text of a clinical note written before discharge (HTML stripped)."""

    source: str
    title: str
    date: str | None
    text: str


@dataclass(frozen=True)
class StayContext:
    """Everything the record says about one inpatient stay; built once, never mutated."""

    patient: Resource
    encounter: Resource
    admitted: str | None
    discharged: str | None
    reasons: tuple[Resource, ...]  # Conditions named as the reason for admission
    diagnoses: tuple[Resource, ...]  # encounter diagnoses
    problems: tuple[Resource, ...]  # other conditions active during the stay
    procedures: tuple[Resource, ...]
    meds_before: tuple[Resource, ...]  # home medications at admission
    meds_during: tuple[Resource, ...]  # inpatient orders
    administrations: tuple[Resource, ...]
    meds_discharge: tuple[Resource, ...]  # prescriptions for after discharge
    observations: tuple[Resource, ...]  # labs and vital signs of the stay
    reports: tuple[Resource, ...]
    allergies: tuple[Resource, ...]
    notes: tuple[Note, ...]
    pending: tuple[Resource, ...]  # results not final at discharge, orders without result
    follow_ups: tuple[Resource, ...]  # appointments and referrals after discharge
    goals: tuple[Resource, ...]
    care_plans: tuple[Resource, ...]  # plans recorded during the stay
    referenced: Mapping[str, Resource]  # resolved Medication, Practitioner, … by Type/id
    excluded_documents: tuple[str, ...]  # existing discharge summaries we did not read
    warnings: tuple[Problem, ...]

    @property
    def encounter_id(self) -> str:
        return str(self.encounter["id"])

    @property
    def patient_id(self) -> str:
        return str(self.patient["id"])

    def resolved(self, reference: Any) -> Resource | None:
        """A referenced resource we resolved (practitioner, organization, medication…)."""
        if isinstance(reference, Mapping) and isinstance(reference.get("reference"), str):
            return self.referenced.get(reference["reference"])
        return None

    def name_of(self, reference: Any) -> str:
        """Display of a referenced resource we resolved (practitioner, organization…)."""
        if isinstance(reference, Mapping):
            key = reference.get("reference")
            found = self.referenced.get(key) if isinstance(key, str) else None
            if found is not None:
                return _resource_display(found)
            return str(reference.get("display") or "")
        return ""


def _resource_display(resource: Resource) -> str:
    names = resource.get("name")
    if isinstance(names, str):
        return names
    if isinstance(names, list) and names and isinstance(names[0], Mapping):
        name = names[0]
        if name.get("text"):
            return str(name["text"])
        given = " ".join(str(g) for g in name.get("given") or [])
        prefix = " ".join(str(p) for p in name.get("prefix") or [])
        return " ".join(p for p in (prefix, given, str(name.get("family") or "")) if p).strip()
    if resource.get("code"):
        return concept_name(resource["code"])
    return html.unescape(str(resource.get("id", "")))
