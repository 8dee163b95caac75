"""The discharge summary (LOINC 18842-5): sections and their template text."""

from __future__ import annotations

from fhirgen.documents.base import (
    DocumentKind,
    SectionSpec,
    Sentence,
    absent,
    each,
    listing,
    say,
)
from fhirgen.facts import Fact, FactKind, FactSet
from fhirgen.fhir.values import format_date

LOINC_CODE = "18842-5"
LOINC_DISPLAY = "Discharge summary"

_CHANGE_ORDER = {"new": 0, "changed": 1, "continued": 2, "stopped": 3}


def _stay(facts: FactSet) -> Fact:
    return facts.of_kind(FactKind.STAY)[0]


def reason_for_admission(facts: FactSet) -> tuple[Sentence, ...]:
    stay = _stay(facts)
    admitted = next((v.value for v in stay.values if v.label == "admitted"), "")
    reasons = facts.of_kind(FactKind.REASON)
    if reasons:
        names = listing(list(dict.fromkeys(r.name for r in reasons)))
        return (say(f"The patient was admitted on {admitted} for {names}", [stay, *reasons]),)
    return (say(f"The patient was admitted on {admitted}", [stay]), *absent(facts, "reason"))


def hospital_course(facts: FactSet) -> tuple[Sentence, ...]:
    sentences = [say(_stay(facts).text, [_stay(facts)])]
    sentences.extend(each(facts.of_kind(FactKind.CARE_TEAM)))
    procedures = facts.of_kind(FactKind.PROCEDURE)
    if procedures:
        names = listing([p.name for p in procedures])
        sentences.append(say(f"Procedures during the stay: {names}", procedures))
    given = facts.of_kind(FactKind.INPATIENT_MEDICATION)
    if given:
        names = listing([g.name for g in given])
        sentences.append(say(f"Medications given in hospital included {names}", given))
    abnormal = [f for f in facts.of_kind(FactKind.LAB, FactKind.VITAL) if f.attr("abnormal")]
    if abnormal:
        shown = listing([f"{f.name} ({f.attr('abnormal')})" for f in abnormal])
        sentences.append(say(f"Abnormal results during the stay: {shown}", abnormal))
    sentences.extend(each(facts.of_kind(FactKind.REPORT)))
    notes = facts.of_kind(FactKind.NOTE)
    if notes:
        shown = listing([n.text for n in notes])
        sentences.append(say(f"Clinical notes on file: {shown}", notes))
    return tuple(sentences)


def discharge_diagnoses(facts: FactSet) -> tuple[Sentence, ...]:
    diagnoses = facts.of_kind(FactKind.DIAGNOSIS)
    ordered = sorted(diagnoses, key=lambda f: f.attr("primary") != "yes")
    sentences = list(each(ordered)) or list(absent(facts, "diagnoses"))
    problems = facts.of_kind(FactKind.PROBLEM)
    if problems:
        names = listing([p.name for p in problems])
        sentences.append(say(f"Other active problems: {names}", problems))
    return tuple(sentences)


def procedures(facts: FactSet) -> tuple[Sentence, ...]:
    return each(facts.of_kind(FactKind.PROCEDURE)) or absent(facts, "procedures")


def key_results(facts: FactSet) -> tuple[Sentence, ...]:
    results = facts.of_kind(FactKind.LAB, FactKind.VITAL)
    abnormal = [f for f in results if f.attr("abnormal")]
    sentences = list(each(abnormal))
    sentences.extend(each(facts.of_kind(FactKind.REPORT)))
    normal_labs = [f for f in results if not f.attr("abnormal") and f.kind is FactKind.LAB]
    if normal_labs:
        shown = listing([f"{f.name} {f.attr('last')}" for f in normal_labs])
        sentences.append(say(f"Other laboratory results, last values: {shown}", normal_labs))
    return (*absent(facts, "labs"), *sentences)


def discharge_medications(facts: FactSet) -> tuple[Sentence, ...]:
    medications = sorted(
        facts.of_kind(FactKind.MEDICATION), key=lambda f: _CHANGE_ORDER[f.attr("change")]
    )
    sentences = list(each(medications))
    if not any(f.attr("change") != "stopped" for f in medications):
        sentences[:0] = absent(facts, "discharge-medications")
    return tuple(sentences)


def allergies(facts: FactSet) -> tuple[Sentence, ...]:
    return each(facts.of_kind(FactKind.ALLERGY, FactKind.NO_KNOWN_ALLERGY)) or absent(
        facts, "allergies"
    )


def results_pending(facts: FactSet) -> tuple[Sentence, ...]:
    return each(facts.of_kind(FactKind.PENDING)) or absent(facts, "pending")


def follow_up(facts: FactSet) -> tuple[Sentence, ...]:
    return each(facts.of_kind(FactKind.FOLLOW_UP)) or absent(facts, "follow-up")


def condition_at_discharge(facts: FactSet) -> tuple[Sentence, ...]:
    sentences = list(each(facts.of_kind(FactKind.DISPOSITION)) or absent(facts, "disposition"))
    vitals = facts.of_kind(FactKind.VITAL)
    if vitals:
        shown = listing(
            [f"{v.name} {v.attr('last')} on {format_date(v.attr('last_date'))}" for v in vitals]
        )
        sentences.append(say(f"Last recorded vital signs: {shown}", vitals))
    return tuple(sentences)


def patient_instructions(facts: FactSet) -> tuple[Sentence, ...]:
    sentences: list[Sentence] = []
    medications = sorted(
        facts.of_kind(FactKind.MEDICATION), key=lambda f: _CHANGE_ORDER[f.attr("change")]
    )
    for fact in medications:
        change = fact.attr("change")
        after = next((v.value for v in fact.values if v.label == "after"), "")
        if change == "new":
            how = f": {after}" if after else " as prescribed"
            sentences.append(say(f"Start taking {fact.name}{how}", [fact]))
        elif change == "changed":
            how = f" from now on: {after}" if after else ""
            sentences.append(say(f"Take {fact.name} differently{how}", [fact]))
        elif change == "stopped":
            sentences.append(say(f"Stop taking {fact.name}", [fact]))
    continued = [f for f in medications if f.attr("change") == "continued"]
    if continued:
        names = listing([f.name for f in continued])
        sentences.append(say(f"Keep taking {names} as before", continued))
    allergies = facts.of_kind(FactKind.ALLERGY)
    if allergies:
        names = listing([a.name for a in allergies])
        sentences.append(
            say(f"Tell everyone who treats you about your allergy to {names}", allergies)
        )
    for fact in facts.of_kind(FactKind.FOLLOW_UP):
        sentences.append(say(f"Follow-up: {fact.text}", [fact]))
    pending = facts.of_kind(FactKind.PENDING)
    if pending:
        names = listing([p.name for p in pending])
        sentences.append(
            say(f"Some results were not final when you left hospital: {names}", pending)
        )
    activities = facts.of_kind(FactKind.PLAN_ACTIVITY)
    if activities:
        names = listing([a.name for a in activities])
        sentences.append(say(f"Continue the plan started in hospital: {names}", activities))
    for goal in facts.of_kind(FactKind.GOAL):
        sentences.append(say(f"Your goal: {goal.name}", [goal]))
    if not sentences:
        sentences = [
            *absent(facts, "discharge-medications"),
            *absent(facts, "follow-up"),
        ]
    return tuple(sentences)


KIND = DocumentKind(
    key="discharge-summary",
    title="Discharge summary",
    sections=(
        SectionSpec(
            "reason_for_admission",
            "Reason for admission",
            reason_for_admission,
            "When the patient was admitted and why.",
        ),
        SectionSpec(
            "hospital_course",
            "Hospital course",
            hospital_course,
            "What happened during the stay, in order: treatments, procedures, key results.",
        ),
        SectionSpec(
            "discharge_diagnoses",
            "Discharge diagnoses",
            discharge_diagnoses,
            "The diagnoses of the stay, then other active problems.",
        ),
        SectionSpec("procedures", "Procedures", procedures, "Procedures performed, with dates."),
        SectionSpec(
            "key_results",
            "Key results",
            key_results,
            "Abnormal results, reports' conclusions, trends.",
        ),
        SectionSpec(
            "discharge_medications",
            "Discharge medications",
            discharge_medications,
            "Every medication at discharge: new, changed, continued, and those stopped.",
        ),
        SectionSpec("allergies", "Allergies", allergies, "Allergies and reactions."),
        SectionSpec(
            "results_pending",
            "Results pending at discharge",
            results_pending,
            "Results not final at discharge.",
        ),
        SectionSpec("follow_up", "Follow-up", follow_up, "Appointments and referrals ordered."),
        SectionSpec(
            "condition_at_discharge",
            "Condition and disposition at discharge",
            condition_at_discharge,
            "Where the patient went and the last recorded vital signs.",
        ),
        SectionSpec(
            "patient_instructions",
            "Patient instructions",
            patient_instructions,
            "Plain-language instructions for the patient: medicines, appointments, plans.",
        ),
    ),
)
