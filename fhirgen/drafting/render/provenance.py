"""The Device that wrote the drafts (``Author``) and the Provenance tying them to it and to the
chart resources they cite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhirgen import __version__
from fhirgen.clinical.facts import FactSet
from fhirgen.drafting.documents.base import Draft
from fhirgen.drafting.render.labels import AIAST

DEVICE_SYSTEM = "urn:fhirgen:device"


@dataclass(frozen=True)
class Author:
    """What wrote the drafts: the backend and its model, named on the Device."""

    backend: str
    model: str
    version: str

    @property
    def identifier(self) -> str:
        return f"{self.backend}/{self.model}/{self.version}"


def device_resource(author: Author) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "identifier": [{"system": DEVICE_SYSTEM, "value": author.identifier}],
        "status": "active",
        "deviceName": [
            {"name": f"fhirgen {author.backend} backend", "type": "user-friendly-name"},
            {"name": author.model, "type": "model-name"},
        ],
        "type": {"text": "AI text-generation software"},
        "version": [{"value": f"fhirgen {__version__}; {author.model} {author.version}"}],
    }


def provenance_resource(
    provenance_id: str,
    targets: Sequence[str],
    device_url: str,
    cited: Sequence[str],
    generated_at: str,
) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "id": provenance_id,
        "meta": {"security": [AIAST]},
        "target": [{"reference": t} for t in targets],
        "recorded": generated_at,
        "reason": [{"coding": [AIAST]}],
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                    "display": "create",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "provenance-participant-type",
                            "code": "author",
                            "display": "Author",
                        }
                    ]
                },
                "who": {"reference": device_url},
            }
        ],
        "entity": [{"role": "source", "what": {"reference": source}} for source in cited],
    }


def cited_sources(facts: FactSet, drafts: Sequence[Draft]) -> list[str]:
    """Every chart resource a sentence of the drafts rests on, sorted, each once."""
    sources: set[str] = set()
    for draft in drafts:
        for fact_id in draft.cited():
            fact = facts.get(fact_id)
            if fact is not None:
                sources.update(fact.sources)
    return sorted(sources)
