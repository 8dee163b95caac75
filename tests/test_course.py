"""The hospital course as a hospitalist reads it: one paragraph per problem, each fact once.

Run on the sample stays with the template backend: what presented, what was done, how it
responded, in words that match the numbers, and nothing told twice.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from fhirgen.clinical.course import plan_course
from fhirgen.clinical.facts import FactKind
from fhirgen.drafting.documents import discharge_summary
from fhirgen.drafting.generation.template import TemplateGenerator
from fhirgen.drafting.pipeline import StayDraft, draft_stay
from fhirgen.fhir.record import PatientRecord
from tests.conftest import SAMPLES


def _stay(name: str) -> StayDraft:
    bundle = json.loads((SAMPLES / "stays" / f"{name}.json").read_text())
    resources = [entry["resource"] for entry in bundle["entry"]]
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    record = PatientRecord(patient, resources)
    encounter = next(
        r
        for r in resources
        if r["resourceType"] == "Encounter" and r.get("class", {}).get("code") in {"IMP", "OBSENC"}
    )
    return draft_stay(record, encounter, TemplateGenerator(), identifier_system="urn:x")


@pytest.fixture(scope="module")
def stays() -> dict[str, StayDraft]:
    names = ("heart-failure", "pneumonia", "hip-fracture", "chest-pain-observation")
    return {name: _stay(name) for name in names}


def _paragraphs(result: StayDraft) -> dict[str, str]:
    course = result.drafts[discharge_summary.KIND.key].section("hospital_course")
    assert course is not None
    found: dict[str, list[str]] = {}
    for sentence in course.sentences:
        found.setdefault(sentence.topic, []).append(sentence.text)
    return {topic: " ".join(texts) for topic, texts in found.items()}


def test_heart_failure_course_tells_diuresis_weight_and_kidney(stays):
    paragraphs = _paragraphs(stays["heart-failure"])
    assert list(paragraphs)[:4] == [
        "",
        "Acute on chronic systolic heart failure",  # the principal diagnosis first
        "Acute kidney injury",
        "Hypokalemia",
    ]
    failure = paragraphs["Acute on chronic systolic heart failure"]
    assert "furosemide" in failure and "intravenous" in failure
    assert "Weight fell from 88.4 to 84.5 kg" in failure
    assert "NT-proBNP fell from 8450 to 3120 pg/mL" in failure
    assert "LVEF 30%" in failure
    kidney = paragraphs["Acute kidney injury"]
    assert "Creatinine rose from 1.3 to a peak of 1.8 mg/dL" in kidney
    assert "potassium" not in kidney.lower()  # told under hypokalaemia
    assert (
        "Potassium rose from 3.3 to 4.3 mmol/L, returning to normal" in (paragraphs["Hypokalemia"])
    )


def test_pneumonia_course_tells_defervescence_on_antibiotics(stays):
    paragraphs = _paragraphs(stays["pneumonia"])
    pneumonia = paragraphs["Community-acquired pneumonia"]
    assert "Temperature fell from 38.9 to 36.9 °C" in pneumonia
    assert "ceftriaxone" in pneumonia.lower() and "azithromycin" in pneumonia
    assert "WBC fell from 16.8 to 8.6 ×10³/µL, returning to normal" in pneumonia
    assert "SpO2 rose from 88% to 95%" in paragraphs["Hypoxemia"]


def test_chest_pain_course_keeps_the_facts_that_decide_discharge(stays):
    chest = _paragraphs(stays["chest-pain-observation"])["Chest pain"]
    assert "troponin" in chest.lower() and "stable" in chest
    assert "stress test" in chest


def test_no_trend_word_is_stable_across_a_large_change(stays):
    for result in stays.values():
        for fact in result.facts.of_kind(FactKind.LAB, FactKind.VITAL):
            if "stable" in fact.attr("course") and fact.attr("threshold"):
                numbers = [
                    float(v.value) for v in fact.values if v.label == "result" and _numeric(v.value)
                ]
                assert max(numbers) - min(numbers) < float(fact.attr("threshold")), fact.text


def test_each_fact_is_told_once_in_the_course(stays):
    for result in stays.values():
        plan = plan_course(result.facts)
        anchors = {p.problem.id for p in plan.problems}
        course = result.drafts[discharge_summary.KIND.key].section("hospital_course")
        cited = Counter(c for s in course.sentences for c in s.cites if c not in anchors)
        stay_fact = result.facts.of_kind(FactKind.STAY)[0].id
        repeated = {c: n for c, n in cited.items() if n > 1 and c != stay_fact}
        assert repeated == {}, repeated


def test_the_summary_has_no_inventory_sections_and_no_note_titles(stays):
    for result in stays.values():
        draft = result.drafts[discharge_summary.KIND.key]
        keys = [s.key for s in draft.sections]
        assert "key_results" not in keys and "patient_instructions" not in keys
        text = " ".join(s.text for _, s in draft.sentences())
        assert "Progress Note" not in text and "Clinical notes on file" not in text


def _condition(rid: str, code: str, name: str, **extra: object) -> dict:
    """An active Condition of the sample patient (``extra``: encounter, onset…)."""
    from tests.records import concept

    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": concept(code, name),
        "subject": {"reference": "Patient/p1"},
        **extra,
    }


def _numeric(text: str) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?", text) is not None


def test_a_critical_value_no_problem_claims_comes_first():
    from tests.records import lab, small_stay

    phosphate = lab(
        "ph1", "2777-1", "Phosphate", 0.8, "mg/dL", "2026-03-03T06:00:00-05:00", low=2.5, flag="LL"
    )
    record = PatientRecord("p1", [*small_stay(), phosphate])
    result = draft_stay(
        record, record.get("Encounter/e1"), TemplateGenerator(), identifier_system="urn:x"
    )
    course = result.drafts[discharge_summary.KIND.key].section("hospital_course")
    topics = [s.topic for s in course.sentences]
    assert topics[:3] == ["", "Critical results", "Community-acquired pneumonia"]
    assert course.sentences[1].text == "Phosphate 0.8 mg/dL (critically low) on 3 Mar 2026."
    # ... and once: not again among the other findings.
    assert sum("Phosphate" in s.text or "phosphate" in s.text for s in course.sentences) == 1


def test_nothing_is_said_twice_when_problems_or_medicines_look_alike():
    """Two diagnoses nothing is linked to, and two new medicines taken the same way: no
    sentence repeats, and the verifier drops nothing of the template's."""
    from tests.records import discharge_order, small_stay

    resources = [
        *small_stay(),
        _condition("q1", "271807003", "Eruption of skin", encounter={"reference": "Encounter/e1"}),
        _condition(
            "q2", "267036007", "Dyspnea on exertion", encounter={"reference": "Encounter/e1"}
        ),
        discharge_order("n1", "Famotidine 20 MG Oral Tablet", "310273", "1 tablet daily", 1, "1"),
        discharge_order("n2", "Folic acid 1 MG Oral Tablet", "310410", "1 tablet daily", 1, "1"),
    ]
    record = PatientRecord("p1", resources)
    result = draft_stay(
        record, record.get("Encounter/e1"), TemplateGenerator(), identifier_system="urn:x"
    )
    assert all(not report.dropped for report in result.reports.values()), result.reports
    for draft in result.drafts.values():
        texts = [s.text for _, s in draft.sentences()]
        assert len(texts) == len(set(texts)), draft.kind
    course = [
        s.text for s in result.drafts["discharge-summary"].section("hospital_course").sentences
    ]
    assert (
        "No results or treatments of the stay are linked in the record to dyspnea on exertion "
        "and eruption of skin; see the discharge diagnoses for them." in course
    )


def test_social_circumstances_are_social_history_not_active_problems():
    from tests.records import small_stay

    resources = [
        *small_stay(),
        _condition("s1", "160903007", "Full-time employment (finding)", onsetDateTime="2020-01-01"),
        _condition("s2", "422650009", "Social isolation (finding)", onsetDateTime="2020-01-01"),
        _condition(
            "s3",
            "232717009",
            "History of coronary artery bypass grafting (situation)",
            onsetDateTime="2020-01-01",
        ),
    ]
    record = PatientRecord("p1", resources)
    result = draft_stay(
        record, record.get("Encounter/e1"), TemplateGenerator(), identifier_system="urn:x"
    )
    lines = [
        s.text for s in result.drafts["discharge-summary"].section("discharge_diagnoses").sentences
    ]
    assert "Other active problems: hypertensive disorder." in lines
    assert "Past history on file: history of coronary artery bypass grafting." in lines
    assert "Social history on file: full-time employment and social isolation." in lines
