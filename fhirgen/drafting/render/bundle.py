"""One stay's drafts as the transaction Bundle POSTed to the EHR: conditional creates on our
identifiers, the Provenance PUT to a deterministic id, so a replay leaves one of each."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from fhirgen.clinical.facts import FactSet
from fhirgen.clinical.stay import StayContext
from fhirgen.drafting.documents import discharge_summary, patient_instructions
from fhirgen.drafting.documents.base import Draft
from fhirgen.drafting.render.document import document_reference
from fhirgen.drafting.render.identifiers import draft_ids
from fhirgen.drafting.render.plan import care_plan_resource
from fhirgen.drafting.render.provenance import (
    DEVICE_SYSTEM,
    Author,
    cited_sources,
    device_resource,
    provenance_resource,
)


def render_bundle(
    context: StayContext,
    facts: FactSet,
    summary: Draft,
    plan: Draft,
    instructions: Draft,
    *,
    author: Author,
    generated_at: str,
    identifier_system: str,
    replaces: str | None = None,
    regeneration: int = 0,
    identifier_key: bytes | None = None,
) -> dict[str, Any]:
    """The transaction Bundle for one stay, exactly as it is POSTed to the EHR.

    Entries: the Device, the discharge summary, the CarePlan, the patient instructions, the
    Provenance. ``replaces`` (the summary an earlier draft wrote) goes on the summary only: the
    store keeps no earlier instructions' id, so a regenerated instructions document stands new.
    ``identifier_key`` makes the identifiers keyed hashes (``draft_ids``).
    """
    ids = draft_ids(context, identifier_system, regeneration, identifier_key)
    urls = {
        "document": _urn(identifier_system, ids.document),
        "care_plan": _urn(identifier_system, ids.care_plan),
        "instructions": _urn(identifier_system, ids.instructions),
    }
    device_url = _urn(DEVICE_SYSTEM, author.identifier)
    device = device_resource(author)
    document = document_reference(
        context,
        facts,
        summary,
        ids.document,
        identifier_system,
        device_url,
        generated_at,
        loinc=(discharge_summary.LOINC_CODE, discharge_summary.LOINC_DISPLAY),
        type_text="Discharge summary (AI-generated draft)",
        description=(
            "AI-generated draft discharge summary; preliminary until a clinician reviews and "
            "signs it."
        ),
    )
    if replaces:
        document["relatesTo"] = [{"code": "replaces", "target": {"reference": replaces}}]
    plan_resource = care_plan_resource(
        context, facts, plan, instructions, ids.care_plan, identifier_system, device_url,
        generated_at,
    )  # fmt: skip
    leaflet = document_reference(
        context,
        facts,
        instructions,
        ids.instructions,
        identifier_system,
        device_url,
        generated_at,
        loinc=(patient_instructions.LOINC_CODE, patient_instructions.LOINC_DISPLAY),
        type_text="Hospital discharge instructions (AI-generated draft)",
        description=(
            "AI-generated draft patient instructions in plain language; preliminary until a "
            "clinician reviews and signs them."
        ),
    )
    cited = cited_sources(facts, (summary, plan, instructions))
    provenance = provenance_resource(
        ids.provenance_id,
        [urls["document"], urls["care_plan"], urls["instructions"]],
        device_url,
        cited,
        generated_at,
    )
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _conditional_post(device_url, device, DEVICE_SYSTEM, author.identifier),
            _conditional_post(urls["document"], document, identifier_system, ids.document),
            _conditional_post(urls["care_plan"], plan_resource, identifier_system, ids.care_plan),
            _conditional_post(urls["instructions"], leaflet, identifier_system, ids.instructions),
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, ids.provenance_id)}",
                "resource": provenance,
                "request": {"method": "PUT", "url": f"Provenance/{ids.provenance_id}"},
            },
        ],
    }


def _conditional_post(url: str, resource: dict[str, Any], system: str, value: str) -> dict:
    rtype = resource["resourceType"]
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": rtype,
            "ifNoneExist": urlencode({"identifier": f"{system}|{value}"}),
        },
    }


def _urn(system: str, value: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{system}|{value}')}"
