"""The builder every family of facts adds to: stable ids, and the "nothing recorded" facts.

An ``absent`` fact cites the Encounter or Patient whose record was searched, so "nothing
recorded" is a statement with a source too. Also the concept helpers several families share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from fhirgen.clinical.facts.model import Fact, FactKind, Value
from fhirgen.clinical.stay import StayContext
from fhirgen.fhir.record import Resource, resource_key
from fhirgen.fhir.values import concept_codes, concept_key, concept_name

_PREFIX = {
    FactKind.STAY: "stay",
    FactKind.CARE_TEAM: "team",
    FactKind.REASON: "rsn",
    FactKind.DIAGNOSIS: "dx",
    FactKind.PROBLEM: "prob",
    FactKind.PROCEDURE: "proc",
    FactKind.INPATIENT_MEDICATION: "iprx",
    FactKind.MEDICATION: "med",
    FactKind.MEDICATION_CHECK: "mchk",
    FactKind.LAB: "lab",
    FactKind.VITAL: "vital",
    FactKind.REPORT: "rpt",
    FactKind.ALLERGY: "alg",
    FactKind.NO_KNOWN_ALLERGY: "nka",
    FactKind.NOTE: "note",
    FactKind.PENDING: "pend",
    FactKind.FOLLOW_UP: "fu",
    FactKind.GOAL: "goal",
    FactKind.PLAN_ACTIVITY: "plan",
    FactKind.DISPOSITION: "disp",
    FactKind.ABSENT: "none",
}


class FactBuilder:
    """The facts of one stay as the families add them, each id unique within the stay."""

    def __init__(self, context: StayContext) -> None:
        self.ctx = context
        self.encounter = resource_key(context.encounter)
        self.patient = resource_key(context.patient)
        self.facts: list[Fact] = []
        self._ids: set[str] = set()

    def add(
        self,
        kind: FactKind,
        text: str,
        sources: Iterable[str],
        *,
        names: Iterable[str] = (),
        values: Iterable[Value] = (),
        date: str | None = None,
        **attrs: str,
    ) -> Fact:
        cited = tuple(dict.fromkeys(sources))
        digest = hashlib.sha1(
            "|".join((kind.value, *cited, attrs.get("about", ""))).encode(), usedforsecurity=False
        ).hexdigest()
        fact_id = f"{_PREFIX[kind]}-{digest[:8]}"
        suffix = 2
        while fact_id in self._ids:
            fact_id = f"{_PREFIX[kind]}-{digest[:8]}-{suffix}"
            suffix += 1
        self._ids.add(fact_id)
        fact = Fact(
            id=fact_id,
            kind=kind,
            text=text,
            sources=cited,
            names=tuple(dict.fromkeys(n for n in names if n)),
            values=tuple(values),
            date=date,
            attrs=tuple(sorted((k, v) for k, v in attrs.items() if v)),
        )
        self.facts.append(fact)
        return fact

    def nothing(self, about: str, text: str, source: str | None = None) -> None:
        self.add(FactKind.ABSENT, text, [source or self.encounter], about=about)


def codes_of(concept: Any) -> str:
    return ",".join(sorted(concept_codes(concept))) if isinstance(concept, Mapping) else ""


def group_by_concept(resources: Iterable[Resource], field: str) -> list[list[Resource]]:
    """Resources of one concept together; one code with different names stays apart.

    Records reuse a generic code for distinct things (two nebulised drugs under one SNOMED
    procedure code, told apart only by their text), so the name is part of the key.
    """
    groups: dict[tuple[str, str], list[Resource]] = {}
    for resource in resources:
        concept = resource.get(field)
        key = (concept_key(concept), concept_name(concept).lower())
        groups.setdefault(key, []).append(resource)
    return sorted(
        groups.values(), key=lambda g: (concept_name(g[0].get(field)).lower(), resource_key(g[0]))
    )
