"""The care plan after discharge: problems addressed, goals, activities (FHIR CarePlan)."""

from __future__ import annotations

from fhirgen.clinical.facts import Fact, FactKind, FactSet
from fhirgen.clinical.wording import in_sentence, plain_name
from fhirgen.drafting.documents.base import DocumentKind, SectionSpec, Sentence, absent, each, say


def addressed_problems(facts: FactSet) -> tuple[Fact, ...]:
    """Diagnoses of the stay still active at discharge: what the plan addresses."""
    return tuple(f for f in facts.of_kind(FactKind.DIAGNOSIS) if f.attr("status") != "resolved")


def activity_facts(facts: FactSet) -> tuple[Fact, ...]:
    """Facts that become plan activities: follow-ups, monitoring, medication changes, plans."""
    changes = [
        f
        for f in facts.of_kind(FactKind.MEDICATION)
        if f.attr("change") in {"new", "changed", "stopped"}
    ]
    return (
        *facts.of_kind(FactKind.FOLLOW_UP),
        *facts.of_kind(FactKind.PENDING),
        *changes,
        *facts.of_kind(FactKind.PLAN_ACTIVITY),
    )


def problems(facts: FactSet) -> tuple[Sentence, ...]:
    found = addressed_problems(facts)
    if found:
        return tuple(say(f"Addresses {in_sentence(plain_name(f.name))}", [f]) for f in found)
    return absent(facts, "diagnoses") or (
        say(
            "All diagnoses of the stay were resolved by discharge",
            facts.of_kind(FactKind.DIAGNOSIS),
        ),
    )


def goals(facts: FactSet) -> tuple[Sentence, ...]:
    return each(facts.of_kind(FactKind.GOAL)) or absent(facts, "goals")


def activities(facts: FactSet) -> tuple[Sentence, ...]:
    sentences: list[Sentence] = []
    for fact in activity_facts(facts):
        if fact.kind is FactKind.FOLLOW_UP:
            sentences.append(say(f"Follow-up: {fact.text}", [fact]))
        elif fact.kind is FactKind.PENDING:
            sentences.append(say(f"Follow up the pending result: {fact.text}", [fact]))
        elif fact.kind is FactKind.MEDICATION:
            sentences.append(say(f"Medication change: {fact.text}", [fact]))
        else:
            sentences.append(say(f"Continue: {fact.text}", [fact]))
    return tuple(sentences) or absent(facts, "follow-up")


KIND = DocumentKind(
    key="care-plan",
    title="Care plan after discharge",
    sections=(
        SectionSpec("problems", "Problems addressed", problems, "The problems the plan addresses."),
        SectionSpec("goals", "Goals", goals, "Goals the record supports, with targets."),
        SectionSpec(
            "activities",
            "Activities",
            activities,
            "Follow-up appointments, monitoring of pending results, medication changes.",
        ),
    ),
)
