"""The discharge summary (LOINC 18842-5): the clinician's document, and its template text.

The hospital course is told problem by problem (``fhirgen.clinical.course``): for each problem
what was found, what was done and how it responded, each fact once; what no problem claims is
summarised at the end, markedly abnormal results with their values, the rest in one line.
Instructions for the patient are a document of their own (``patient_instructions``).
"""

from __future__ import annotations

from collections.abc import Sequence

from fhirgen.clinical.course import CoursePlan, ProblemCourse, plan_course
from fhirgen.clinical.facts import Fact, FactKind, FactSet, date_span
from fhirgen.clinical.lexicon import is_social_history
from fhirgen.clinical.wording import distinct_names, in_sentence, plain_name
from fhirgen.drafting.documents.base import (
    DocumentKind,
    SectionSpec,
    Sentence,
    absent,
    each,
    listing,
    say,
)
from fhirgen.fhir.values import format_date

LOINC_CODE = "18842-5"
LOINC_DISPLAY = "Discharge summary"

_CHANGE_ORDER = {"new": 0, "changed": 1, "continued": 2, "stopped": 3}
OTHER_FINDINGS = "Other findings"
CRITICAL = "Critical results"
# A paragraph lists at most this many medicines with their doses; more are named only.
_MAX_DOSED_MEDICINES = 4


def _stay(facts: FactSet) -> Fact:
    return facts.of_kind(FactKind.STAY)[0]


def _value(fact: Fact, label: str) -> str:
    return next((v.value for v in fact.values if v.label == label), "")


def reason_for_admission(facts: FactSet) -> tuple[Sentence, ...]:
    stay = _stay(facts)
    admitted = _value(stay, "admitted")
    reasons = facts.of_kind(FactKind.REASON)
    # The encounter's reason codes are what the patient came with; Conditions named as the
    # reason are what it was found to be.
    complaints = [r for r in reasons if not any(s.startswith("Condition/") for s in r.sources)]
    conditions = [r for r in reasons if r not in complaints]
    seen: list[str] = []
    parts = []
    for group, word in ((complaints, "with"), (conditions, "for")):
        names = [n for n in distinct_names(plain_name(r.name) for r in group)]
        names = [n for n in names if len(distinct_names([*seen, n])) > len(seen)]
        seen.extend(names)
        if names:
            joined = "; ".join if any(" and " in n for n in names) else listing
            parts.append(f"{word} {joined([in_sentence(n) for n in names])}")
    if parts:
        return (say(f"Admitted on {admitted} {', '.join(parts)}", [stay, *reasons]),)
    return (say(f"Admitted on {admitted}", [stay]), *absent(facts, "reason"))


def hospital_course(facts: FactSet) -> tuple[Sentence, ...]:
    plan = plan_course(facts)
    stay = _stay(facts)
    team = facts.of_kind(FactKind.CARE_TEAM)
    opening = _stay_sentence(stay)
    if team:
        opening += "; " + team[0].text[:1].lower() + team[0].text[1:]
    sentences = [say(opening, [stay, *team])]
    # A critical value no problem accounts for is the first thing a reader must see.
    for result in plan.other_results:
        if _critical(result):
            sentences.append(say(_result_text(result), [result], CRITICAL))
    for problem in plan.problems:
        sentences.extend(problem_course(problem))
    sentences.extend(_untold(plan.problems))
    sentences.extend(other_findings(plan))
    return tuple(sentences)


def _critical(result: Fact) -> bool:
    return any(f.startswith("critically") for f in result.attr("abnormal").split(", "))


def _result_text(result: Fact) -> str:
    if result.attr("course"):
        return f"{_capital(result.name)} {result.attr('course')}"
    return _single_result(result, first=True)


def _stay_sentence(stay: Fact) -> str:
    days = _value(stay, "length of stay")
    span = date_span(_value_when(stay, "admitted"), _value_when(stay, "discharged"))
    if days == "0":
        return f"Same-day stay on {span}"
    if days:
        return f"{days}-day stay, {span}" if days != "1" else f"1-day stay, {span}"
    return f"Stay from {span}"


def _value_when(fact: Fact, label: str) -> str | None:
    return next((v.when for v in fact.values if v.label == label), None)


def problem_course(problem: ProblemCourse) -> list[Sentence]:
    """One problem's paragraph: work-up, treatment, response, state at discharge."""
    topic = problem.topic
    out: list[Sentence] = []
    anchor: list[Fact] = [problem.problem]  # the first sentence also cites the problem itself

    def add(text: str, cited: Sequence[Fact]) -> None:
        out.append(say(text, [*anchor, *cited], topic))
        anchor.clear()

    single = [r for r in problem.results if not r.attr("course")]
    if single:
        texts = [_single_result(r, first=n == 0) for n, r in enumerate(single)]
        add(listing(texts, sep="; "), single)
    for report in problem.reports:
        add(report.text, [report])
    unreported = [p for p in problem.procedures if not _reported(p, problem.reports)]
    if unreported:
        names = listing([in_sentence(plain_name(p.name)) for p in unreported])
        add(f"Procedures: {names}", unreported)
    if problem.medications:
        add(f"Treated with {_medicines(problem.medications)}", problem.medications)
    for result in problem.results:
        if result.attr("course"):
            add(f"{_capital(result.name)} {result.attr('course')}", [result])
    for change in problem.changes:
        add(_change_sentence(change), [change])
    if problem.problem.attr("status") == "resolved":
        # Named, so that two resolved problems never share one sentence.
        add(f"{_capital(in_sentence(topic))} resolved by discharge", [problem.problem])
    return out


def _untold(problems: Sequence[ProblemCourse]) -> list[Sentence]:
    """Problems the record links nothing of the stay to: one line for all of them."""
    quiet = [p for p in problems if not problem_course(p)]
    if not quiet:
        return []
    names = listing([in_sentence(p.topic) for p in quiet])
    them = "it" if len(quiet) == 1 else "them"
    return [
        say(
            f"No results or treatments of the stay are linked in the record to {names}; "
            f"see the discharge diagnoses for {them}",
            [p.problem for p in quiet],
        )
    ]


_CHANGE_VERBS = {"new": "started", "changed": "changed", "stopped": "stopped"}


def _change_sentence(change: Fact) -> str:
    """'Amlodipine 5 mg tablet stopped; reason recorded: hypotension'."""
    verb = _CHANGE_VERBS.get(change.attr("change"), "continued")
    reason = in_sentence(change.attr("reason"))
    return f"{_capital(change.name)} {verb}; reason recorded: {reason}"


def _single_result(result: Fact, *, first: bool) -> str:
    """'Glucose 142 mg/dL (high) on 12 Jan 2026' from a one-reading result fact."""
    if not result.attr("last_date") or result.attr("first") != result.attr("last"):
        return result.text if first else _lower_first(result.text)  # two non-numeric readings
    name = _capital(result.name) if first else result.name
    return f"{name} {result.attr('last')} on {format_date(result.attr('last_date'))}"


def other_findings(plan: CoursePlan) -> list[Sentence]:
    """What no problem claims: marked abnormalities in full, the rest in one line."""
    topic = OTHER_FINDINGS
    out: list[Sentence] = []
    labs = [r for r in plan.other_results if r.kind is FactKind.LAB and not _critical(r)]
    marked = [r for r in labs if r.attr("marked")]
    for result in marked:
        out.append(say(_result_text(result), [result], topic))
    mild = [r for r in labs if r.attr("abnormal") and not r.attr("marked")]
    normal = [r for r in labs if not r.attr("abnormal")]
    parts = []
    if mild:
        parts.append(f"mildly abnormal ({listing([r.name for r in mild])})")
    if normal:
        # Not "normal": many records give no reference range to judge by.
        parts.append(f"not flagged as abnormal ({listing([r.name for r in normal])})")
    if parts:
        out.append(say(f"Other results were {' or '.join(parts)}", [*mild, *normal], topic))
    for report in plan.other_reports:
        out.append(say(report.text, [report], topic))
    if plan.other_medications:
        names = listing([_medicine_name(m) for m in plan.other_medications])
        out.append(
            say(f"Other medicines given in hospital: {names}", plan.other_medications, topic)
        )
    return out


def _medicines(medications: Sequence[Fact]) -> str:
    if len(medications) <= _MAX_DOSED_MEDICINES:
        return listing([_lower_first(m.text) for m in medications], sep="; ")
    return listing([_medicine_name(m) for m in medications])


def _medicine_name(fact: Fact) -> str:
    return _lower_first(fact.text.split(",", 1)[0].split(" (", 1)[0])


def _reported(procedure: Fact, reports: Sequence[Fact]) -> bool:
    """A report of the same study says more than the procedure's name and date."""
    words = {w for w in procedure.name.lower().split() if len(w) > 3}
    return any(words & set(r.text.lower().split()) for r in reports)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0]
    if first[:1].isupper() and first[1:].islower():
        return text[:1].lower() + text[1:]
    return text


def discharge_diagnoses(facts: FactSet) -> tuple[Sentence, ...]:
    diagnoses = sorted(facts.of_kind(FactKind.DIAGNOSIS), key=lambda f: f.attr("primary") != "yes")
    sentences: list[Sentence] = []
    shown: list[str] = []
    for fact in diagnoses:
        name = plain_name(fact.name)
        if len(distinct_names([*shown, name])) == len(shown):
            continue  # the same diagnosis coded twice
        shown.append(name)
        notes = []
        if fact.attr("primary") == "yes":
            notes.append("principal diagnosis")
        if fact.attr("status") == "resolved":
            notes.append("resolved during the stay")
        text = _capital(name) + (f" ({', '.join(notes)})" if notes else "")
        sentences.append(say(text, [fact]))
    if not sentences:
        sentences = list(absent(facts, "diagnoses"))
    problems = facts.of_kind(FactKind.PROBLEM)
    social = [p for p in problems if is_social_history(p.name)]
    past = [p for p in problems if p.name.lower().startswith("history of") and p not in social]
    medical = [p for p in problems if p not in social and p not in past]
    for group, lead in (
        (medical, "Other active problems"),
        (past, "Past history on file"),
        (social, "Social history on file"),
    ):
        names = distinct_names(plain_name(p.name) for p in group)
        names = [n for n in names if len(distinct_names([*shown, n])) > len(shown)]
        if names:
            sentences.append(say(f"{lead}: {listing([in_sentence(n) for n in names])}", group))
    return tuple(sentences)


def procedures(facts: FactSet) -> tuple[Sentence, ...]:
    found = facts.of_kind(FactKind.PROCEDURE)
    return tuple(say(_capital(plain_name(p.text)), [p]) for p in found) or absent(
        facts, "procedures"
    )


def discharge_medications(facts: FactSet) -> tuple[Sentence, ...]:
    medications = sorted(
        facts.of_kind(FactKind.MEDICATION), key=lambda f: _CHANGE_ORDER[f.attr("change")]
    )
    sentences = list(each(medications))
    if not any(f.attr("change") != "stopped" for f in medications):
        sentences[:0] = absent(facts, "discharge-medications")
    sentences.extend(say(f"Check: {c.text}", [c]) for c in facts.of_kind(FactKind.MEDICATION_CHECK))
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
    told = plan_course(facts).claimed_vitals
    vitals = [v for v in facts.of_kind(FactKind.VITAL) if v.id not in told]
    if vitals:
        dates = {format_date(v.attr("last_date")) for v in vitals}
        if len(dates) == 1:
            shown = listing([f"{v.name} {v.attr('last')}" for v in vitals], sep=", ")
            text = f"Last recorded vital signs ({dates.pop()}): {shown}"
        else:
            shown = listing(
                [f"{v.name} {v.attr('last')} ({format_date(v.attr('last_date'))})" for v in vitals],
                sep=", ",
            )
            text = f"Last recorded vital signs: {shown}"
        sentences.append(say(text, vitals))
    return tuple(sentences)


KIND = DocumentKind(
    key="discharge-summary",
    title="Discharge summary",
    sections=(
        SectionSpec(
            "reason_for_admission",
            "Reason for admission",
            reason_for_admission,
            "When the patient was admitted and why, in one sentence.",
        ),
        SectionSpec(
            "hospital_course",
            "Hospital course",
            hospital_course,
            "The course of one problem of the stay: how it presented (the decisive findings), "
            "what was done (medicines with route and dates, procedures), how it responded (the "
            "measurements' course in words, with numbers) and its state at discharge. Each fact "
            "once; no lists of every value.",
        ),
        SectionSpec(
            "discharge_diagnoses",
            "Discharge diagnoses",
            discharge_diagnoses,
            "The diagnoses of the stay, then other active problems.",
        ),
        SectionSpec("procedures", "Procedures", procedures, "Procedures performed, with dates."),
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
    ),
)
