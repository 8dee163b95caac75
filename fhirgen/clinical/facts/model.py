"""The fact model: a fact's kind, the values it states, one fact, and the facts of a stay.

A fact is one short statement about the stay that cites the FHIR resources it came from; its id
is derived from its kind and sources (see builder.py), so the same record yields the same ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from enum import StrEnum


class FactKind(StrEnum):
    """The families of facts, in the order a reader meets them."""

    STAY = "stay"
    CARE_TEAM = "care-team"
    REASON = "reason"
    DIAGNOSIS = "diagnosis"
    PROBLEM = "problem"
    PROCEDURE = "procedure"
    INPATIENT_MEDICATION = "inpatient-medication"
    MEDICATION = "medication"  # reconciliation: new, changed, stopped, continued
    MEDICATION_CHECK = "medication-check"  # orders to confirm (duplicates, a missing drug)
    LAB = "lab"
    VITAL = "vital"
    REPORT = "report"
    ALLERGY = "allergy"
    NO_KNOWN_ALLERGY = "no-known-allergy"
    NOTE = "note"
    PENDING = "pending"
    FOLLOW_UP = "follow-up"
    GOAL = "goal"
    PLAN_ACTIVITY = "plan-activity"
    DISPOSITION = "disposition"
    ABSENT = "absent"


@dataclass(frozen=True)
class Value:
    """A value a fact states: a measurement, a dose, a date."""

    label: str
    value: str
    unit: str = ""
    when: str | None = None

    def __str__(self) -> str:
        return f"{self.value} {self.unit}".strip()


@dataclass(frozen=True)
class Fact:
    """One citable statement about the stay."""

    id: str
    kind: FactKind
    text: str
    sources: tuple[str, ...]
    names: tuple[str, ...] = ()
    values: tuple[Value, ...] = ()
    date: str | None = None
    attrs: tuple[tuple[str, str], ...] = ()

    def attr(self, name: str, default: str = "") -> str:
        """One of the fact's attributes (e.g. ``change`` of a medication fact)."""
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    @property
    def name(self) -> str:
        """The fact's main name (what it is about)."""
        return self.names[0] if self.names else self.text


@dataclass(frozen=True)
class FactSet:
    """The facts of one stay, in a stable order, with lookup by id."""

    encounter: str
    facts: tuple[Fact, ...]

    def __post_init__(self) -> None:
        index = {f.id: f for f in self.facts}
        if len(index) != len(self.facts):
            raise ValueError("fact ids must be unique")
        object.__setattr__(self, "_index", index)

    def __iter__(self) -> Iterator[Fact]:
        return iter(self.facts)

    def __len__(self) -> int:
        return len(self.facts)

    def get(self, fact_id: str) -> Fact | None:
        """The fact with this id, or None."""
        return self._index.get(fact_id)  # type: ignore[attr-defined]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._index)  # type: ignore[attr-defined]

    def of_kind(self, *kinds: FactKind) -> tuple[Fact, ...]:
        """Facts of the given kinds, in order."""
        return tuple(f for f in self.facts if f.kind in kinds)

    def fingerprint(self) -> str:
        """A digest of everything the facts say and cite (64 hex digits): equal for two
        readings of a stay that would be drafted alike, whatever else changed in the record
        (an Encounter's coding, billing or version). Sources cite resources without their
        versions, so a new version of an unchanged resource keeps the fingerprint."""
        stated = [[fact.kind.value, *astuple(fact)[2:]] for fact in self.facts]
        text = json.dumps([self.encounter, stated], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def absent(self, about: str) -> Fact | None:
        """The fact saying nothing of ``about`` is recorded, if the record holds none."""
        for fact in self.facts:
            if fact.kind is FactKind.ABSENT and fact.attr("about") == about:
                return fact
        return None
