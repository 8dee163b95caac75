"""Facts of the conditions: the stay's diagnoses and the problems active before and during it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhirgen.clinical.facts.builder import FactBuilder, codes_of, group_by_concept
from fhirgen.clinical.facts.model import FactKind
from fhirgen.fhir.record import Resource, resource_key
from fhirgen.fhir.values import SNOMED, concept_name, concept_names, parse_time, period_bounds


def conditions(builder: FactBuilder) -> None:
    ctx = builder.ctx
    primary = {
        self_key
        for item in ctx.encounter.get("diagnosis") or []
        if isinstance(item, Mapping) and item.get("rank") == 1
        for self_key in [str((item.get("condition") or {}).get("reference"))]
    }
    for group in group_by_concept(ctx.diagnoses, "code"):
        first = group[0]
        name = concept_name(first.get("code"), "unnamed condition")
        resolved = _resolved_by(first, ctx.discharged)
        qualifiers = [_code_labels(first.get("code"))]
        if resolved:
            qualifiers.append("resolved during the stay")
        shown = "; ".join(q for q in qualifiers if q)
        text = f"{name} ({shown})" if shown else name
        builder.add(
            FactKind.DIAGNOSIS,
            text,
            [resource_key(c) for c in group],
            names=concept_names(first.get("code")),
            date=_onset(first),
            status="resolved" if resolved else "active",
            primary="yes" if any(resource_key(c) in primary for c in group) else "",
            codes=codes_of(first.get("code")),
        )
    if not ctx.diagnoses:
        builder.nothing("diagnoses", "No diagnoses are recorded for this stay.")
    for group in group_by_concept(ctx.problems, "code"):
        first = group[0]
        name = concept_name(first.get("code"), "unnamed condition")
        builder.add(
            FactKind.PROBLEM,
            f"{name} (active problem before and during the stay)",
            [resource_key(c) for c in group],
            names=concept_names(first.get("code")),
            date=_onset(first),
            codes=codes_of(first.get("code")),
        )


def _code_labels(concept: Any) -> str:
    labels = {
        "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
        "http://hl7.org/fhir/sid/icd-10": "ICD-10",
        SNOMED: "SNOMED CT",
    }
    found = []
    for coding in (concept or {}).get("coding") or []:
        label = labels.get(str(coding.get("system")))
        if label and coding.get("code"):
            found.append(f"{label} {coding['code']}")
    return ", ".join(found)


def _onset(condition: Resource) -> str | None:
    onset, _ = period_bounds(condition, "onsetDateTime", "onsetPeriod")
    return onset or condition.get("recordedDate")


def _resolved_by(condition: Resource, discharged: str | None) -> bool:
    abated, _ = period_bounds(condition, "abatementDateTime", "abatementPeriod")
    moment, end = parse_time(abated), parse_time(discharged)
    return moment is not None and end is not None and moment <= end
