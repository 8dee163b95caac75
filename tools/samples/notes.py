"""Clinical notes: DocumentReferences carrying their text as an attachment."""

from __future__ import annotations

from tools.samples.codes import CLINICAL_NOTE
from tools.samples.datatypes import Resource, attachment, coding, concept, loinc, ref
from tools.samples.ids import BASE_URL
from tools.samples.sample import Sample


def note(
    s: Sample,
    key: str,
    *,
    patient_: Resource,
    stay: Resource,
    kind: tuple[str, str],
    title: str,
    when: str,
    author: Resource,
    org: Resource,
    text: str,
    content_type: str = "text/plain",
    doc_status: str = "final",
) -> Resource:
    """A clinical note as a DocumentReference (US Core clinical-note), text in ``data``."""
    return s.add(
        "DocumentReference",
        key,
        {
            "identifier": [
                {"system": f"{BASE_URL}/sid/document-id", "value": s.new_id(f"doc/{key}")}
            ],
            "status": "current",
            "docStatus": doc_status,
            "type": concept(title, loinc(*kind)),
            "category": [CLINICAL_NOTE],
            "subject": ref(patient_),
            "date": when,
            "author": [ref(author)],
            "authenticator": ref(author),
            "custodian": ref(org),
            "description": title,
            "content": [
                {
                    "attachment": attachment(text, f"{content_type}; charset=utf-8", title, when),
                    "format": coding(
                        "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                        "urn:ihe:iti:xds:2017:mimeTypeSufficient",
                        "mimeType Sufficient",
                    ),
                }
            ],
            "context": {
                "encounter": [ref(stay, display=False)],
                "period": {"start": stay["period"]["start"], "end": stay["period"]["end"]},
            },
        },
    )
