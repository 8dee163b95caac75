"""The verifier keeps unsupported sentences out; the eval catches what a draft leaves out."""

from __future__ import annotations

import json

import pytest

from fhirgen.cli.evaluation import evaluate_stay
from fhirgen.clinical.facts import FactKind, extract_facts
from fhirgen.clinical.stay import build_context
from fhirgen.drafting.documents import DOCUMENT_KINDS
from fhirgen.drafting.documents.base import Draft, Section, Sentence
from fhirgen.drafting.pipeline import draft_stay
from fhirgen.drafting.verify import numbers_in, verify
from fhirgen.fhir.record import PatientRecord
from tests.records import as_collection, small_stay, write_json

SUMMARY = DOCUMENT_KINDS["discharge-summary"]


@pytest.fixture
def facts():
    record = PatientRecord("p1", small_stay())
    return extract_facts(build_context(record, record.get("Encounter/e1")))


def _draft(sentences_by_section: dict[str, list[Sentence]]) -> Draft:
    sections = tuple(
        Section(spec.key, spec.title, tuple(sentences_by_section.get(spec.key, ())))
        for spec in SUMMARY.sections
    )
    return Draft(SUMMARY.key, SUMMARY.title, sections, "test", "test-model")


def _medication_fact(facts, change):
    return next(f for f in facts.of_kind(FactKind.MEDICATION) if f.attr("change") == change)


def test_sentences_without_support_are_dropped(facts):
    amoxicillin = _medication_fact(facts, "new")
    kept = Sentence("Amoxicillin 500 mg three times daily was started.", (amoxicillin.id,))
    uncited = Sentence("The patient did well.", ())
    unknown = Sentence("Warfarin was started.", ("med-00000000",))
    wrong_dose = Sentence("Amoxicillin 750 mg three times daily was started.", (amoxicillin.id,))
    draft = _draft({"discharge_medications": [kept, uncited, unknown, wrong_dose]})
    verified, report = verify(draft, SUMMARY, facts)
    assert verified.section("discharge_medications").sentences == (kept,)
    assert [(d.text, d.reason) for d in report.dropped] == [
        ("The patient did well.", "cites no fact"),
        ("Warfarin was started.", "cites unknown fact(s): med-00000000"),
        (
            "Amoxicillin 750 mg three times daily was started.",
            "states number(s) not in the cited facts: 750",
        ),
    ]


def test_a_section_left_empty_falls_back_to_its_template(facts):
    verified, report = verify(_draft({}), SUMMARY, facts)
    assert set(report.fallbacks) == {spec.key for spec in SUMMARY.sections}
    assert verified.section("allergies") == SUMMARY.template_section("allergies", facts)


def test_template_drafts_pass_verification_unchanged(facts):
    from fhirgen.drafting.generation import get_generator

    for kind in DOCUMENT_KINDS.values():
        draft = get_generator("template").draft(kind, facts)
        verified, report = verify(draft, kind, facts)
        assert report.clean, report
        assert verified == draft


def test_numbers_in_normalises():
    assert numbers_in("40.0 mg, 1,000 units, 0.50 and 2026-03-02") == {
        "40",
        "1000",
        "0.5",
        "2026",
        "3",
        "2",
    }


class OnlySaysTheStay:
    """A backend that writes one true, cited sentence per section and nothing else."""

    name, model, version = "lazy", "lazy", "1"

    def draft(self, kind, facts):
        stay = facts.of_kind(FactKind.STAY)[0]
        sections = tuple(
            # A different true sentence in each section (a repeat would be dropped).
            Section(spec.key, spec.title, (Sentence(f"{stay.text}: {spec.title}.", (stay.id,)),))
            for spec in kind.sections
        )
        return Draft(kind.key, kind.title, sections, self.name, self.model)

    def draft_many(self, requests):
        return [self.draft(kind, facts) for kind, facts in requests]


def test_eval_fails_a_draft_that_leaves_out_the_chart():
    record = PatientRecord("p1", small_stay())
    result = draft_stay(
        record, record.get("Encounter/e1"), OnlySaysTheStay(), identifier_system="urn:x"
    )
    evaluation = evaluate_stay(result)
    assert not evaluation.passed
    assert evaluation.valid and not evaluation.sections_missing and not evaluation.uncited_sentences
    # The verifier gives back each problem's paragraph the backend left out of the course, so
    # the diagnosis is told there; what the backend left out elsewhere is still caught.
    assert result.reports["discharge-summary"].fallbacks == (
        "hospital_course: Community-acquired pneumonia",
        "hospital_course: Other findings",
    )
    assert evaluation.coverage["diagnoses"].missing == ()
    assert evaluation.coverage["procedures"].missing == ()  # the course paragraph names it
    assert evaluation.coverage["allergies"].missing == ("Allergy to penicillin",)
    assert set(evaluation.coverage["discharge_medications"].missing) == {
        "Amoxicillin 500 MG Oral Capsule",
        "Lisinopril 10 MG Oral Tablet",
    }


def test_eval_passes_the_template_backend(facts):
    from fhirgen.drafting.generation import get_generator

    record = PatientRecord("p1", small_stay())
    result = draft_stay(
        record, record.get("Encounter/e1"), get_generator("template"), identifier_system="urn:x"
    )
    evaluation = evaluate_stay(result)
    assert evaluation.passed, evaluation
    assert evaluation.coverage["discharge_medications"].expected == 2


def test_eval_cli_reports_json_and_exit_status(tmp_path, run_cli):
    source = write_json(tmp_path / "record.json", as_collection(small_stay()))
    result = run_cli("eval", source, "--json")
    report = json.loads(result.stdout)
    stay = report["stays"][0]
    for measure in ("body_words", "repeated_sentences", "artefacts", "trend_contradictions"):
        assert measure in stay, measure
    assert result.code == 0, (report["overall"]["run_failures"], stay)
    assert report["overall"]["stays"] == 1
    assert report["overall"]["repeated_sentences"] == report["overall"]["raw_codes"] == 0
    assert report["overall"]["valid_fhir_percent"] == 100.0
    assert report["overall"]["uncited_sentences"] == 0
    assert report["stays"][0]["coverage"]["procedures"] == {
        "expected": 1,
        "mentioned": 1,
        "missing": [],
    }
    empty = run_cli("eval", write_json(tmp_path / "none.json", as_collection(small_stay()[:1])))
    assert empty.code == 1, "no stay evaluated is not a pass"
