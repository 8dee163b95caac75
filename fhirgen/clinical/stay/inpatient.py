"""The inpatient rules: which Encounters are inpatient stays (finished, of an inpatient class),
and ``find_stays``, a record's stays oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fhirgen.fhir.record import PatientRecord, Resource
from fhirgen.fhir.values import concept_codes, period_bounds


def encounter_class_codes(encounter: Resource) -> set[str]:
    """Class codes of an Encounter (R4 ``class`` is a Coding; R5 a list of concepts)."""
    value = encounter.get("class")
    if isinstance(value, Mapping):
        return {str(value["code"])} if value.get("code") else set()
    if isinstance(value, list):
        return concept_codes(value)
    return set()


def is_inpatient_stay(encounter: Resource, classes: Iterable[str]) -> bool:
    """A finished Encounter whose class is one of ``classes``."""
    return encounter.get("status") == "finished" and bool(
        encounter_class_codes(encounter) & set(classes)
    )


def encounter_version(encounter: Resource) -> str:
    """The Encounter's version for deduplication: ``meta.versionId``, else its lastUpdated."""
    meta = encounter.get("meta") or {}
    return str(meta.get("versionId") or meta.get("lastUpdated") or "1")


def find_stays(record: PatientRecord, classes: Iterable[str]) -> list[Resource]:
    """The finished inpatient Encounters of a record, oldest first."""
    wanted = set(classes)
    stays = [e for e in record.of_type("Encounter") if is_inpatient_stay(e, wanted)]
    return sorted(stays, key=lambda e: (_start(e) or "", str(e.get("id"))))


def _start(resource: Resource) -> str | None:
    return period_bounds(resource, "period")[0]
