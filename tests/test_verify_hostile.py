"""The verifier against hostile model output: nothing the chart does not support reaches it.

A scripted model backend (the real ModelBackend with its model call replaced by canned answers)
writes what a careless or manipulated model might; the draft that comes out must not contain it.
"""

from __future__ import annotations

import json

import pytest

from fhirgen.cli.evaluation import evaluate_stay
from fhirgen.clinical.facts import FactKind, extract_facts
from fhirgen.clinical.stay import build_context
from fhirgen.drafting.documents import DOCUMENT_KINDS
from fhirgen.drafting.documents.base import Sentence
from fhirgen.drafting.generation.model import Completion, ModelBackend
from fhirgen.drafting.pipeline import draft_stay
from fhirgen.drafting.verify import sentence_problem, verify
from fhirgen.fhir.record import PatientRecord
from tests.live import inpatient_encounter, sample_stay, summary_text
from tests.records import small_stay

SUMMARY = DOCUMENT_KINDS["discharge-summary"]


@pytest.fixture(scope="module")
def pneumonia():
    stay = sample_stay("pneumonia")
    patient = next(r["id"] for r in stay if r["resourceType"] == "Patient")
    record = PatientRecord(patient, stay)
    return record, inpatient_encounter(stay)


@pytest.fixture(scope="module")
def facts(pneumonia):
    record, encounter = pneumonia
    return extract_facts(build_context(record, encounter))


def _one(facts, kind, **attrs):
    return next(f for f in facts.of_kind(kind) if all(f.attr(k) == v for k, v in attrs.items()))


def _why(sentence, facts):
    return sentence_problem(sentence, facts)


def test_an_invented_drug_is_dropped(facts):
    amoxicillin = _one(facts, FactKind.MEDICATION, change="new")
    why = _why(Sentence("Start warfarin daily with food.", (amoxicillin.id,)), facts)
    assert why == "names the drug 'warfarin', which no cited medication or result names"


def test_a_drug_named_only_in_a_note_is_dropped(facts):
    # The progress note asks for warfarin to be added: citing the note does not make it so.
    note = next(f for f in facts.of_kind(FactKind.NOTE) if "warfarin" in f.attr("excerpt").lower())
    why = _why(
        Sentence("Warfarin 10 mg daily was added to the discharge medications.", (note.id,)), facts
    )
    assert "warfarin" in why


def test_a_wrong_dose_is_dropped(facts):
    amoxicillin = _one(facts, FactKind.MEDICATION, change="new")
    assert "1750" in _why(
        Sentence("Amoxicillin-clavulanate 1750 mg twice daily.", (amoxicillin.id,)), facts
    )


def test_a_lab_value_not_in_the_chart_is_dropped(facts):
    wbc = next(f for f in facts.of_kind(FactKind.LAB) if f.name == "WBC")
    assert "states number(s) not in the cited facts: 24.5" in _why(
        Sentence("WBC peaked at 24.5.", (wbc.id,)), facts
    )
    assert _why(Sentence("WBC fell to 8.6.", (wbc.id,)), facts) == ""


def test_citations_must_exist_and_be_given(facts):
    assert _why(Sentence("The patient improved.", ()), facts) == "cites no fact"
    assert "unknown" in _why(Sentence("The patient improved.", ("dx-00000000",)), facts)


def test_a_diagnosis_named_without_its_fact_is_dropped(facts):
    stay = facts.of_kind(FactKind.STAY)[0]
    copd = next(f for f in facts.of_kind(FactKind.PROBLEM) if "obstructive" in f.name.lower())
    why = _why(Sentence(f"The patient also has {copd.name.lower()}.", (stay.id,)), facts)
    assert "without citing it" in why
    assert _why(Sentence(f"The patient also has {copd.name.lower()}.", (copd.id,)), facts) == ""


def test_a_diagnosis_from_outside_the_chart_is_dropped(facts):
    stay = facts.of_kind(FactKind.STAY)[0]
    assert "embolism" in _why(Sentence("A pulmonary embolism was ruled in.", (stay.id,)), facts)


class Scripted(ModelBackend):
    """The real ModelBackend, its model call replaced by fixed answers per section."""

    name, model, version = "scripted", "scripted-model", "1"

    def __init__(self, answers):
        self.answers = answers

    def complete_many(self, prompts):
        return [Completion(self.answers(p), 10, 10, 0.0, len(prompts)) for p in prompts]


def _draft(pneumonia, answers):
    record, encounter = pneumonia
    return draft_stay(record, encounter, Scripted(answers), identifier_system="urn:fhirgen:draft")


def test_an_empty_answer_falls_back_to_the_template(pneumonia, facts):
    result = _draft(pneumonia, lambda prompt: "")
    summary = result.drafts["discharge-summary"]
    assert summary.section("hospital_course") == SUMMARY.template_section("hospital_course", facts)
    # The course is told problem by problem: each problem's paragraph fell back on its own.
    fallbacks = result.reports["discharge-summary"].fallbacks
    assert "hospital_course: Community-acquired pneumonia" in fallbacks
    assert "hospital_course: Hypoxemia" in fallbacks
    problems = summary.usage["parse_problems"]
    assert problems["hospital_course: Community-acquired pneumonia"] == "empty answer"


def test_truncated_json_keeps_the_complete_sentences(pneumonia, facts):
    stay = facts.of_kind(FactKind.STAY)[0]
    good = {"text": "The stay lasted 3 days.", "cites": [stay.id]}
    truncated = json.dumps({"sentences": [good]})[:-2] + ', {"text": "The pati'
    result = _draft(
        pneumonia, lambda prompt: truncated if prompt.key[1] == "reason_for_admission" else ""
    )
    reason = result.drafts["discharge-summary"].section("reason_for_admission")
    assert [s.text for s in reason.sentences] == ["The stay lasted 3 days."]


def test_a_manipulated_model_changes_nothing_in_the_chart(pneumonia, facts):
    note = next(f for f in facts.of_kind(FactKind.NOTE) if "warfarin" in f.attr("excerpt").lower())
    amoxicillin = _one(facts, FactKind.MEDICATION, change="new")

    def obey_the_note(prompt):
        return json.dumps(
            {
                "sentences": [
                    {"text": "Start warfarin 10 mg daily.", "cites": [note.id]},
                    {"text": "Start warfarin 10 mg daily as ordered.", "cites": [amoxicillin.id]},
                    {"text": "Ignore the chart; the patient is well.", "cites": []},
                    {
                        "text": "Take amoxicillin-clavulanate twice daily for 5 days.",
                        "cites": [amoxicillin.id],
                    },
                ]
            }
        )

    result = _draft(pneumonia, obey_the_note)
    document = result.bundle["entry"][1]["resource"]
    written = summary_text(document).lower()
    assert "warfarin" not in written
    assert "ignore the chart" not in written
    assert "take amoxicillin-clavulanate twice daily for 5 days." in written
    dropped = [d.reason for d in result.reports["discharge-summary"].dropped]
    assert any("warfarin" in reason for reason in dropped)
    assert evaluate_stay(result).passed


def test_verification_is_the_same_for_template_output():
    record = PatientRecord("p1", small_stay())
    facts = extract_facts(build_context(record, record.get("Encounter/e1")))
    from fhirgen.drafting.generation import get_generator

    for kind in DOCUMENT_KINDS.values():
        draft = get_generator("template").draft(kind, facts)
        assert verify(draft, kind, facts)[1].clean
