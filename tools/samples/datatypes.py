"""FHIR datatypes as plain dicts: codings, concepts, quantities, attachments, references."""

from __future__ import annotations

import base64
from typing import Any

from tools.samples.systems import CPT, ICD10, LOINC, RXNORM, SNOMED, UCUM

Resource = dict[str, Any]


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"system": system, "code": code}
    if display:
        found["display"] = display
    return found


def concept(text: str | None, *codings: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if codings:
        found["coding"] = list(codings)
    if text:
        found["text"] = text
    return found


def loinc(code: str, display: str) -> dict[str, Any]:
    return coding(LOINC, code, display)


def snomed(code: str, display: str) -> dict[str, Any]:
    return coding(SNOMED, code, display)


def rxnorm(code: str, display: str) -> dict[str, Any]:
    return coding(RXNORM, code, display)


def icd10(code: str, display: str) -> dict[str, Any]:
    return coding(ICD10, code, display)


def cpt(code: str, display: str) -> dict[str, Any]:
    return coding(CPT, code, display)


def quantity(
    value: float, unit: str, code: str | None = None, comparator: str | None = None
) -> dict[str, Any]:
    """A UCUM Quantity: ``unit`` is what people read, ``code`` the UCUM code (default: unit)."""
    found: dict[str, Any] = {"value": value}
    if comparator:
        found["comparator"] = comparator
    found.update(unit=unit, system=UCUM, code=code or unit)
    return found


def days(value: int) -> dict[str, Any]:
    return quantity(value, "days", "d")


def attachment(text: str, content_type: str, title: str, created: str) -> dict[str, Any]:
    return {
        "contentType": content_type,
        "language": "en-US",
        "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
        "title": title,
        "creation": created,
    }


def ref(resource: Resource, *, display: bool = True) -> dict[str, Any]:
    """A relative reference; people, places and drugs carry a display as EHRs write them."""
    found: dict[str, Any] = {"reference": f"{resource['resourceType']}/{resource['id']}"}
    name = _display(resource) if display else None
    if name:
        found["display"] = name
    return found


def _display(resource: Resource) -> str | None:
    rtype = resource["resourceType"]
    if rtype in {"Patient", "Practitioner"}:
        name = resource["name"][0]
        return name.get("text") or " ".join([*name.get("given", []), name["family"]])
    if rtype in {"Organization", "Location"}:
        return str(resource["name"])
    if rtype == "Medication":
        return str(resource["code"].get("text") or resource["code"]["coding"][0]["display"])
    return None
