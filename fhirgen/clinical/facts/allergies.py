"""Facts of the allergies: each allergy with its reactions, or "no known allergies"."""

from __future__ import annotations

from fhirgen.clinical.facts.builder import FactBuilder
from fhirgen.clinical.facts.model import FactKind
from fhirgen.fhir.record import Resource, resource_key
from fhirgen.fhir.values import concept_name, concept_names, has_code

NO_KNOWN_ALLERGY_CODES = ("716186003", "409137002", "428607008", "429625007")


def allergies(builder: FactBuilder) -> None:
    ctx = builder.ctx
    real = [a for a in ctx.allergies if not _no_known_allergy(a)]
    for allergy in real:
        name = allergen(concept_name(allergy.get("code"), "unnamed substance"))
        details = []
        for reaction in allergy.get("reaction") or []:
            shown = ", ".join(
                concept_name(m).lower() for m in (reaction or {}).get("manifestation") or []
            )
            if shown:
                severity = (reaction or {}).get("severity")
                details.append(f"{shown} ({severity})" if severity else shown)
        text = f"Allergy to {name}"
        if details:
            text += f": {'; '.join(details)}"
        if allergy.get("criticality"):
            text += f"; criticality {allergy['criticality']}"
        builder.add(
            FactKind.ALLERGY,
            text,
            [resource_key(allergy)],
            names=[name, *concept_names(allergy.get("code"))],
            criticality=str(allergy.get("criticality") or ""),
        )
    if real:
        return
    none_known = [a for a in ctx.allergies if _no_known_allergy(a)]
    if none_known:
        builder.add(
            FactKind.NO_KNOWN_ALLERGY,
            "No known allergies",
            [resource_key(a) for a in none_known],
            names=[concept_name(none_known[0].get("code"))],
        )
    else:
        builder.nothing("allergies", "No allergies are recorded.", builder.patient)


def allergen(name: str) -> str:
    """The substance of an allergy name: 'Allergy to penicillin' -> 'penicillin'."""
    lowered = name.lower()
    for prefix in ("allergy to ", "allergic to ", "allergy: "):
        if lowered.startswith(prefix):
            return name[len(prefix) :]
    return name


def _no_known_allergy(allergy: Resource) -> bool:
    return has_code(allergy.get("code"), None, *NO_KNOWN_ALLERGY_CODES)
