"""Patient instructions (LOINC 8653-8 Hospital discharge instructions), in plain language.

Written to the patient: short sentences, short words, "you". Doses and dates are copied as the
chart writes them (the verifier drops a sentence whose numbers its cited facts do not hold), so
only the words around them are ours. ``READING_EASE`` is the Flesch score the sample stays must
reach (``fhirgen.clinical.readability``, with medicine and test names counted as plain words).
"""

from __future__ import annotations

import re

from fhirgen.clinical.course import plan_course
from fhirgen.clinical.facts import Fact, FactKind, FactSet
from fhirgen.clinical.lexicon import FAMILIES
from fhirgen.clinical.medications import ingredient_key, readable_drug_name
from fhirgen.drafting.documents.base import DocumentKind, SectionSpec, Sentence, listing, say

# "Nothing recorded" in words a patient reads, citing the same absence facts as the summary.
_NOTHING = {
    "discharge-medications": "We have no list of medicines for you. Ask your doctor which "
    "medicines to take",
    "follow-up": "No visits are booked for you yet. Ask your doctor when to come back",
    "pending": "All your test results were back before you left the hospital",
    "goals": "Your care team did not write down goals for you",
}


def _nothing(facts: FactSet, about: str) -> tuple[Sentence, ...]:
    fact = facts.absent(about)
    if fact is None:
        return ()
    return tuple(say(part, [fact]) for part in _NOTHING[about].split(". "))


def _how(dosage: str) -> str:
    """A dosage after 'How to take X:': 'Take 1 tablet daily' -> '1 tablet daily'."""
    text = _lower(dosage)
    return text[5:] if text.startswith("take ") else text


def _short(fact: Fact) -> str:
    """The medicine's ingredients, as a patient says it: 'spironolactone'."""
    return ingredient_key(fact.name) or _drug(fact)


def _drug(fact: Fact) -> str:
    """The medicine as prescribed, its first word in sentence case (brand names keep theirs)."""
    return _lower(readable_drug_name(fact.name))


LOINC_CODE = "8653-8"
LOINC_DISPLAY = "Hospital discharge instructions"
READING_EASE = 60.0

_CHANGE_ORDER = {"new": 0, "changed": 1, "stopped": 2, "continued": 3}
_PLAIN = (
    " Write to the patient: short sentences, short everyday words, 'you'; "
    "no abbreviations where a plain word exists; copy doses and dates exactly as the facts "
    "give them."
)


def _after(fact: Fact) -> str:
    """How to take a medicine from now on, as the discharge prescription says it."""
    return next((v.value for v in fact.values if v.label == "after"), "")


def _lower(text: str) -> str:
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first[1:].islower() and first[:1].isupper() else text


def medicines(facts: FactSet) -> tuple[Sentence, ...]:
    """What changed: medicines to start, to take differently, to stop, and to keep taking."""
    found = sorted(
        facts.of_kind(FactKind.MEDICATION),
        key=lambda f: _CHANGE_ORDER.get(f.attr("change"), len(_CHANGE_ORDER)),
    )
    sentences: list[Sentence] = []
    for fact in found:
        change, after = fact.attr("change"), _after(fact)
        if change == "new":
            sentences.append(say(f"Start taking {_drug(fact)}", [fact]))
            if after:  # named: two new medicines may be taken the same way
                sentences.append(say(f"How to take {_short(fact)}: {_how(after)}", [fact]))
        elif change == "changed":
            if after:
                sentences.append(say(f"Take {_drug(fact)} in a new way", [fact]))
                sentences.append(
                    say(f"From now on, take {_short(fact)} like this: {_how(after)}", [fact])
                )
            else:
                sentences.append(say(f"Your doctor changed how you take {_drug(fact)}", [fact]))
        elif change == "stopped":
            sentences.append(say(f"Stop taking {_drug(fact)}", [fact]))
    kept = [f for f in found if f.attr("change") == "continued"]
    if kept:
        names = listing([_drug(f) for f in kept])
        sentences.append(say(f"Keep taking {names} as before", kept))
    if not any(f.attr("change") != "stopped" for f in found):
        sentences[:0] = _nothing(facts, "discharge-medications")
    allergies = facts.of_kind(FactKind.ALLERGY)
    if allergies:
        names = listing([a.name for a in allergies])
        sentences.append(
            say(f"Tell everyone who treats you that you are allergic to {names}", allergies)
        )
    return tuple(sentences)


def appointments(facts: FactSet) -> tuple[Sentence, ...]:
    """Follow-up visits and tests, then the results still to come."""
    sentences: list[Sentence] = []
    for fact in facts.of_kind(FactKind.FOLLOW_UP):
        if any(s.startswith("Appointment/") for s in fact.sources):
            sentences.append(say(f"Go to your appointment: {fact.text}", [fact]))
        else:
            sentences.append(say(f"Your doctor asked for this test or visit: {fact.text}", [fact]))
    pending = facts.of_kind(FactKind.PENDING)
    if pending:
        names = listing(list(dict.fromkeys(p.name for p in pending)))
        sentences.append(say(f"We are waiting for some test results: {names}", pending))
        sentences.append(say("Your doctor will tell you the results", pending))
    return tuple(sentences) or (*_nothing(facts, "follow-up"), *_nothing(facts, "pending"))


def _names_in(fact: Fact, text: str) -> bool:
    lowered = text.lower()
    return any(
        len(n) >= 4 and re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", lowered)
        for n in fact.names
    )


def warning_signs(facts: FactSet) -> tuple[Sentence, ...]:
    """When to get help: the warning signs of each problem of the stay, then a general line."""
    sentences: list[Sentence] = []
    said: set[str] = set()
    reasons = facts.of_kind(FactKind.REASON)  # the symptoms the warning signs speak of
    for problem in plan_course(facts).problems:
        family = next((f for f in FAMILIES if f.key == problem.family), None)
        if family is None or not family.warning or family.warning in said:
            continue
        said.add(family.warning)
        for part in re.split(r"(?<=\.) ", family.warning):
            # A warning about weight or fever also cites the weights or the fever the chart
            # records (the verifier wants every chart item a sentence names cited).
            named = [f for f in (*problem.results, *reasons) if _names_in(f, part)]
            sentences.append(say(part, [problem.problem, *named]))
    sentences.append(
        say(
            "If you feel worse or have a new problem, call your doctor or come back to the "
            "hospital",
            facts.of_kind(FactKind.STAY),
        )
    )
    return tuple(sentences)


def goals(facts: FactSet) -> tuple[Sentence, ...]:
    """The goals the record supports, and the plan started in hospital."""
    sentences = [say(f"Your goal: {goal.name}", [goal]) for goal in facts.of_kind(FactKind.GOAL)]
    activities = facts.of_kind(FactKind.PLAN_ACTIVITY)
    if activities:
        names = listing(list(dict.fromkeys(a.name for a in activities)))
        sentences.append(say(f"Keep up the plan you started in the hospital: {names}", activities))
    return tuple(sentences) or _nothing(facts, "goals")


def plain_names(facts: FactSet) -> tuple[str, ...]:
    """Medicine, allergen and test names (results to come, tests ordered): words a patient
    reads off the bottle or the letter, which ``flesch_reading_ease`` counts as plain words."""
    tests = [
        f
        for f in facts.of_kind(FactKind.FOLLOW_UP)
        if not any(s.startswith("Appointment/") for s in f.sources)
    ]
    found = (*facts.of_kind(FactKind.MEDICATION, FactKind.ALLERGY, FactKind.PENDING), *tests)
    return tuple(dict.fromkeys(name for f in found for name in f.names))


KIND = DocumentKind(
    key="patient-instructions",
    title="Patient instructions",
    sections=(
        SectionSpec(
            "your_medicines",
            "Your medicines",
            medicines,
            "Which medicines to start, which to take in a new way (with the new dose), which to "
            "stop, and which to keep taking as before; allergies to tell others about." + _PLAIN,
        ),
        SectionSpec(
            "appointments_and_tests",
            "Appointments and tests",
            appointments,
            "The appointments and tests booked after the stay, with their dates; test results "
            "not back yet, and that the doctor will tell the patient." + _PLAIN,
        ),
        SectionSpec(
            "warning_signs",
            "Warning signs",
            warning_signs,
            "When to call the doctor or come back to the hospital." + _PLAIN,
        ),
        SectionSpec(
            "your_goals",
            "Your goals",
            goals,
            "The goals the record supports, and the plans started in hospital to keep up." + _PLAIN,
        ),
    ),
)
