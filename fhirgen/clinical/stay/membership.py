"""Which resources belong to the stay: one that names the Encounter does; one naming no
encounter at all does when it falls inside the stay's period. Discharge summaries that already
exist (physician, nursing, or drafts we wrote) are never input.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fhirgen.fhir.problems import Problem
from fhirgen.fhir.record import PatientRecord, Resource, resource_key
from fhirgen.fhir.values import LOINC, codings, concept_name, parse_time, period_bounds

# LOINC document types that are discharge summaries of some kind: never input to a new one.
DISCHARGE_SUMMARY_TYPES = frozenset(
    {
        "18842-5",  # Discharge summary
        "34745-0",  # Nurse discharge summary
        "34105-7",  # Hospital discharge summary
        "11490-0",  # Physician discharge summary
        "28655-9",  # Attending physician discharge summary
        "34106-5",  # Physician hospital discharge summary
        "59258-4",  # Emergency department discharge summary
        "74213-0",  # Deprecated discharge summary
        "78513-9",  # Inpatient medical record discharge summary
    }
)
AI_ASSERTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "AIAST")


class StayMembership:
    """One stay's bounds in a record, and the warnings and resolved references gathered so far."""

    def __init__(self, record: PatientRecord, encounter: Resource) -> None:
        self.record = record
        self.encounter = encounter
        self.key = resource_key(encounter)
        self.where = record.origin(self.key) or self.key
        self.admitted, self.discharged = period_bounds(encounter, "period")
        self.start = parse_time(self.admitted)
        self.end = parse_time(self.discharged) or self.start
        self.warnings: list[Problem] = []
        self.referenced: dict[str, Resource] = {}

    def _linked(self, resource: Resource, *fields: str) -> bool | None:
        """True if a field names this Encounter, False if it names another, None if none."""
        for name in fields:
            value = resource.get(name)
            if value:
                return self.record.key(value) == self.key
        return None

    def _within(self, when: str | None, slack: timedelta = timedelta(0)) -> bool:
        moment = parse_time(when)
        if moment is None or self.start is None:
            return False
        return self.start - slack <= moment <= (self.end or self.start) + slack

    def _in_stay(self, resource: Resource, when: str | None, *fields: str) -> bool:
        linked = self._linked(resource, *(fields or ("encounter",)))
        return linked if linked is not None else self._within(when)

    def _warn(self, resource: Resource, message: str) -> None:
        key = resource_key(resource)
        self.warnings.append(Problem(self.record.origin(key) or key, message, "warning"))

    def _remember(self, reference: Any) -> Resource | None:
        key = self.record.key(reference)
        found = self.record.get(key) if key else None
        if found is not None and key:
            # Keyed by Type/id and by the reference as written, so facts can look up either.
            self.referenced[key] = found
            if isinstance(reference, Mapping) and isinstance(reference.get("reference"), str):
                self.referenced[reference["reference"]] = found
        return found


def ai_asserted(resource: Resource) -> bool:
    system, code = AI_ASSERTED
    return any(
        tag.get("system") == system and tag.get("code") == code
        for tag in (resource.get("meta") or {}).get("security") or []
        if isinstance(tag, Mapping)
    )


def is_discharge_summary(concept: Any, resource: Resource) -> bool:
    """Existing discharge summaries, and anything fhirgen wrote, are not input."""
    if ai_asserted(resource):
        return True
    concepts = concept if isinstance(concept, list) else [concept]
    for item in concepts:
        if not isinstance(item, Mapping):
            continue
        if any(
            c.get("system") == LOINC and c.get("code") in DISCHARGE_SUMMARY_TYPES
            for c in codings(item)
        ):
            return True
        if "discharge summary" in concept_name(item).lower():
            return True
    return False


def time_key(*fields: str) -> Any:
    """Sort key by the time in ``fields`` (none: first), then Type/id."""

    def key(resource: Resource) -> tuple[datetime, str]:
        when, _ = period_bounds(resource, *fields)
        moment = parse_time(when) or parse_time("0001-01-01")
        return (moment, resource_key(resource))  # type: ignore[return-value]

    return key
