"""A draft as a US Core clinical-note DocumentReference (``docStatus=preliminary``), its text
and HTML as attachments."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from fhirgen.clinical.facts import FactSet
from fhirgen.clinical.stay import StayContext
from fhirgen.drafting.documents.base import Draft
from fhirgen.drafting.render.labels import AIAST, US_CORE
from fhirgen.drafting.render.narrative import document_html, document_text
from fhirgen.fhir.record import reference_key
from fhirgen.fhir.values import LOINC, parse_time


def document_reference(
    context: StayContext,
    facts: FactSet,
    draft: Draft,
    identifier: str,
    system: str,
    device_url: str,
    generated_at: str,
    *,
    loinc: tuple[str, str],
    type_text: str,
    description: str,
) -> dict[str, Any]:
    plain = document_text(facts, draft, context).encode()
    rich = document_html(facts, draft, context).encode()
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {
            "profile": [f"{US_CORE}/us-core-documentreference"],
            "security": [AIAST],
        },
        "identifier": [{"system": system, "value": identifier}],
        "status": "current",
        "docStatus": "preliminary",
        "type": {
            "coding": [{"system": LOINC, "code": loinc[0], "display": loinc[1]}],
            "text": type_text,
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/"
                        "us-core-documentreference-category",
                        "code": "clinical-note",
                        "display": "Clinical Note",
                    }
                ]
            }
        ],
        "subject": {"reference": f"Patient/{context.patient_id}"},
        "date": generated_at,
        "author": [{"reference": device_url}],
        "description": description,
        "content": [
            _content(plain, "text/plain; charset=utf-8", draft.title, generated_at),
            _content(rich, "text/html; charset=utf-8", draft.title, generated_at),
        ],
        "context": {
            "encounter": [{"reference": f"Encounter/{context.encounter_id}"}],
            "period": _period(context),
        },
    }
    custodian = _custodian(context)
    if custodian:
        resource["custodian"] = custodian
    return resource


def _content(data: bytes, content_type: str, title: str, created: str) -> dict[str, Any]:
    return {
        "attachment": {
            "contentType": content_type,
            "language": "en",
            "data": base64.b64encode(data).decode("ascii"),
            "size": len(data),
            "hash": base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode(),
            "title": title,
            "creation": created,
        },
        "format": {
            "system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
            "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient",
            "display": "mimeType Sufficient",
        },
    }


def _period(context: StayContext) -> dict[str, str]:
    period = {}
    start, end = as_instant(context.admitted), as_instant(context.discharged)
    if start:
        period["start"] = start
    if end:
        period["end"] = end
    return period


def as_instant(value: str | None) -> str | None:
    """A dateTime as written when it has a time and zone; a bare date as midnight UTC."""
    if not value:
        return None
    if "T" in value and (value.endswith("Z") or value[-6] in "+-"):
        return value
    moment = parse_time(value)
    return moment.isoformat() if moment else None


def _custodian(context: StayContext) -> dict[str, str] | None:
    provider = context.encounter.get("serviceProvider")
    key = reference_key(provider)
    resolved = context.referenced.get(key or "") or context.referenced.get(
        str((provider or {}).get("reference"))
    )
    if resolved is not None:
        return {"reference": f"Organization/{resolved['id']}"}
    if key and key.startswith("Organization/"):
        return {"reference": key}
    return None
