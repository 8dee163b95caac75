"""The measures of ``fhirgen eval`` that a physician objects to, on small hand-made texts."""

from __future__ import annotations

import base64
import json

import pytest

from fhirgen.cli.evaluation import (
    MAX_MEDIAN_BODY_WORDS,
    MAX_P95_BODY_WORDS,
    MIN_READING_EASE,
    PATIENT_INSTRUCTIONS_LOINC,
    Artefact,
    Contradiction,
    Coverage,
    EvaluationTotals,
    Repeat,
    StayEvaluation,
    artefacts,
    care_plan_text,
    document_body,
    document_text,
    evaluate_stay,
    reading_ease,
    repeated_sentences,
    sentences_of,
    trend_contradictions,
    word_count,
)
from fhirgen.clinical.facts import Fact, FactKind, FactSet, Value
from fhirgen.clinical.stay import build_context
from fhirgen.drafting.documents.base import Draft, Section, Sentence
from fhirgen.drafting.pipeline import StayDraft
from fhirgen.drafting.verify import result_series
from fhirgen.fhir.record import PatientRecord
from tests.records import SNOMED, as_collection, concept, small_stay, write_json

SUMMARY_LOINC = "18842-5"
HEADER = (
    "DISCHARGE SUMMARY - AI-GENERATED DRAFT\n"
    "Preliminary: written by software from the chart; a clinician must review and sign it.\n"
    "Stay: 2 Mar 2026 to 6 Mar 2026\n"
)


def _text(body: str) -> str:
    return f"{HEADER}\n{body}\n\nSOURCES\n[1] Weight 88.4 kg (Observation/o1)\n"


# --- sentences said twice ---------------------------------------------------------------------


def test_a_sentence_said_twice_is_counted_once_with_its_times():
    body = (
        "HOSPITAL COURSE\n"
        "The patient improved. [3]\n"
        "Oxygen was stopped on day 2. The  patient\timproved.[4][5]\n"
        "FOLLOW-UP\n"
        "THE PATIENT IMPROVED."
    )
    assert repeated_sentences("discharge summary", body) == (
        Repeat("discharge summary", "the patient improved.", 3),
    )


def test_distinct_sentences_and_titles_are_not_repeats():
    body = (
        "HOSPITAL COURSE\nSeen by Dr. Smith. Seen by Dr. Jones.\nFOLLOW-UP\nSee Dr. Smith."
        "\nHOSPITAL COURSE"
    )
    assert sentences_of(body) == ["Seen by Dr. Smith.", "Seen by Dr. Jones.", "See Dr. Smith."]
    assert repeated_sentences("discharge summary", body) == ()


# --- raw codes and units ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("WBC 16.8 10*3/uL on admission.", "10*3/uL"),
        ("Platelets 250 10*9/L.", "10*9/L"),
        ("Eosinophils 300 /uL.", "uL"),
        ("Temperature 38.9 Cel on day 1.", "Cel"),
        ("Sodium [Moles/volume] in Serum or Plasma was 136.", "[Moles/volume]"),
        ("Sodium [Moles/volume] in Serum or Plasma was 136.", "in Serum or Plasma"),
        ("Hemoglobin [Mass/volume] in Blood 13.1 g/dL.", "[Mass/volume]"),
        ("Leukocytes [#/volume] in Blood by Automated count.", "[#/volume]"),
        ("Leukocytes [#/volume] in Blood by Automated count.", "by Automated count"),
        ("PHQ-9 total [Score] was 4.", "[Score]"),
        ("Nitrite [Presence] in Urine by Test strip.", "[Presence]"),
        ("Temperature 101.2 [degF].", "[degF]"),
        ("Blood pressure 132/78 mm[Hg].", "mm[Hg]"),
        ("Arterial pH 7.31 [pH].", "[pH]"),
        ("Weight 182 [lb_av].", "[lb_av]"),
        ("eGFR 58 mL/min/{1.73_m2}.", "{1.73_m2}"),
        ("Body surface area 1.9 m_m2.", "m_m2"),
        ("Casts 2 {casts}/[LPF].", "{casts}"),
        ("Type_and_crossmatch was sent.", "Type_and_crossmatch"),
        ("Status DISCHARGED_HOME.", "DISCHARGED_HOME"),
        ("Pneumonia (disorder) was treated.", "(disorder)"),
        ("Fever (finding) settled.", "(finding)"),
        ("Chest X-ray (procedure) was done.", "(procedure)"),
        ("Diagnosis: pneumonia (SNOMED CT 233604007).", "SNOMED CT 233604007"),
        ("Diagnosis: pneumonia (ICD-10-CM J18.9).", "ICD-10-CM J18.9"),
        ("Lisinopril (RxNorm 314076) continued.", "RxNorm 314076"),
    ],
)
def test_each_raw_code_or_unit_is_found(text, token):
    found = artefacts("discharge summary", f"HOSPITAL COURSE\n{text} [12]")
    assert token in [a.token for a in found], found


def test_clean_text_and_citation_marks_have_no_artefacts():
    body = (
        "HOSPITAL COURSE\n"
        "White cell count fell from 16.8 to 8.6 ×10⁹/L as the pneumonia settled. [12][13]\n"
        "Blood pressure 132/78 mmHg; temperature 38.9 °C; weight 71.2 kg. [1]\n"
        "Sodium 136 mmol/L and potassium 4.1 mmol/L were normal (see [2]). [2]\n"
        "Platelets were 250 per microlitre; no bacteria grew in blood cultures. [14]\n"
        "She was seen by Dr. Chen (cardiology) and by the team in follow-up. [3]"
    )
    assert artefacts("discharge summary", body) == ()


def test_an_artefact_is_reported_with_its_document_kind_and_times():
    body = "WBC 16.8 10*3/uL, then 8.6 10*3/uL. Temp 38 Cel."
    assert artefacts("patient instructions", body) == (
        Artefact("patient instructions", "10*3/uL", "UCUM power of ten", 2),
        Artefact("patient instructions", "Cel", "UCUM Celsius", 1),
    )


# --- the texts and body words -----------------------------------------------------------------


def _reference(loinc: str, text: str) -> dict:
    data = base64.b64encode(text.encode()).decode()
    return {
        "resource": {
            "resourceType": "DocumentReference",
            "type": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "data": data}}],
        }
    }


def _care_plan(div: str) -> dict:
    return {"resource": {"resourceType": "CarePlan", "text": {"status": "additional", "div": div}}}


def test_body_words_leave_out_the_header_the_sources_and_the_marks():
    body = document_body(_text("HOSPITAL COURSE\nThe patient did well, and went home. [1][2]"))
    assert body == "HOSPITAL COURSE\nThe patient did well, and went home. [1][2]"
    assert word_count(body) == 9


def test_documents_are_found_by_their_loinc_type():
    bundle = {
        "entry": [
            _reference(SUMMARY_LOINC, "summary"),
            _reference(PATIENT_INSTRUCTIONS_LOINC, "instructions"),
        ]
    }
    assert document_text(bundle, SUMMARY_LOINC) == "summary"
    assert document_text(bundle, PATIENT_INSTRUCTIONS_LOINC) == "instructions"
    assert document_text({"entry": bundle["entry"][:1]}, PATIENT_INSTRUCTIONS_LOINC) == ""


def test_the_care_plan_narrative_is_read_as_text_without_its_sources():
    div = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><h3>Care plan</h3><p>AI draft.</p>'
        "<p>Stay: 1 to 2</p><h4>Activities</h4><p>Check the BP &amp; 10*3/uL.<sup>"
        '<a href="#src-1">[1]</a></sup></p><h4>Sources</h4><ol><li>Cel (Observation/1)</li>'
        "</ol></div>"
    )
    body = document_body(care_plan_text({"entry": [_care_plan(div)]}))
    assert body == "Activities\nCheck the BP & 10*3/uL.[1]"
    assert [a.token for a in artefacts("care plan", body)] == ["10*3/uL"]


# --- trend words the numbers contradict -------------------------------------------------------


def _result(fact_id, name, values, unit, threshold, kind=FactKind.VITAL):
    return Fact(
        fact_id,
        kind,
        f"{name}: first {values[0]} {unit}, last {values[-1]} {unit}",
        (f"Observation/{fact_id}",),
        names=(name,),
        values=tuple(Value("result", v, unit) for v in values),
        attrs=(("threshold", threshold),),
    )


WEIGHT = _result("vital-1", "Weight", ("88.4", "84.5"), "kg", "2")
CREATININE = _result("lab-1", "Creatinine", ("1.0", "1.6"), "mg/dL", "0.3", FactKind.LAB)
RESULTS = FactSet("Encounter/e1", (WEIGHT, CREATININE))


def _one_section(*sentences: Sentence, kind: str = "discharge-summary") -> dict[str, Draft]:
    section = Section("hospital_course", "Hospital course", sentences)
    return {kind: Draft(kind, "Discharge summary", (section,), "test", "test")}


def test_result_series_reads_the_numbers_in_order():
    fact = Fact(
        "lab-2",
        FactKind.LAB,
        "x",
        (),
        values=(
            Value("result", "<5", "ng/mL"),
            Value("result", "132/78", "mmHg"),
            Value("first", "7", "ng/mL"),
            Value("result", "Not detected"),
            Value("result", ">= 1,200", "ng/mL"),
            Value("result", "6.5", "ng/mL"),
        ),
    )
    assert result_series(fact) == (5.0, 1200.0, 6.5)
    assert result_series(WEIGHT) == (88.4, 84.5)


def test_a_trend_word_the_numbers_contradict_is_found():
    drafts = _one_section(Sentence("Weight rose during the stay.", (WEIGHT.id,)))
    (found,) = trend_contradictions(drafts, RESULTS)
    assert (found.document, found.text, found.fact) == (
        "discharge-summary",
        "Weight rose during the stay.",
        "Weight",
    )
    assert found.reason


def test_a_trend_word_the_numbers_support_is_not_found():
    drafts = _one_section(
        Sentence("Weight fell from 88.4 to 84.5 kg with diuresis.", (WEIGHT.id,)),
        Sentence("Weight rose during the stay.", ()),  # cites no result: nothing to check
        kind="patient-instructions",
    )
    assert trend_contradictions(drafts, RESULTS) == ()


def test_the_threshold_and_range_of_the_fact_are_used():
    slight = _result("vital-2", "Weight", ("88.4", "87.9"), "kg", "2")
    drafts = _one_section(Sentence("Weight fell with diuresis.", (slight.id,)))
    (found,) = trend_contradictions(drafts, FactSet("Encounter/e1", (slight,)))
    assert "2" in found.reason  # 0.5 kg is less than the 2 kg that matters
    sodium = Fact(
        "lab-3",
        FactKind.LAB,
        "Sodium",
        (),
        names=("Sodium",),
        values=(Value("result", "128", "mmol/L"), Value("result", "131", "mmol/L")),
        attrs=(("threshold", "5"), ("low", "135"), ("high", "145")),
    )
    drafts = _one_section(Sentence("Sodium returned to normal.", (sodium.id,)))
    (found,) = trend_contradictions(drafts, FactSet("Encounter/e1", (sodium,)))
    assert "131" in found.reason


def test_a_sentence_citing_several_results_is_checked_clause_by_clause():
    text = "Creatinine rose from 1.0 to 1.6 mg/dL; weight rose, as did appetite."
    drafts = _one_section(Sentence(text, (CREATININE.id, WEIGHT.id)))
    (found,) = trend_contradictions(drafts, RESULTS)
    assert (found.text, found.fact) == ("weight rose", "Weight")
    supported = "Creatinine rose from 1.0 to 1.6 mg/dL, and weight fell."
    drafts = _one_section(Sentence(supported, (CREATININE.id, WEIGHT.id)))
    assert trend_contradictions(drafts, RESULTS) == ()


# --- reading ease -----------------------------------------------------------------------------


def test_reading_ease_counts_medicine_names_as_plain_words():
    medicine = Fact(
        "med-1",
        FactKind.MEDICATION,
        "x",
        (),
        names=("amoxicillin-clavulanate 875-125 mg tablet",),
    )
    facts = FactSet("Encounter/e1", (medicine,))
    plain = "YOUR MEDICINES\nTake amoxicillin-clavulanate 875-125 mg tablet two times a day. [1]"
    assert reading_ease(plain, facts) >= MIN_READING_EASE
    dense = (
        "Pharmacological antimicrobial administration necessitates comprehensive adherence "
        "to prescribed intervals, notwithstanding gastrointestinal intolerance."
    )
    assert reading_ease(dense, facts) < MIN_READING_EASE


# --- what passes ------------------------------------------------------------------------------


def _evaluation(**changes) -> StayEvaluation:
    fields = dict(
        encounter_id="e1",
        valid=True,
        validation_errors=(),
        sections_expected=1,
        sections_missing=(),
        sentences=1,
        uncited_sentences=0,
        unknown_citations=0,
        coverage={"diagnoses": Coverage(1, ())},
        dropped_by_verifier=0,
        milliseconds=1.0,
        body_words=300,
        has_patient_instructions=True,
        reading_ease=72.0,
    )
    fields.update(changes)
    return StayEvaluation(**fields)


@pytest.mark.parametrize(
    "changes",
    [
        {"repeated_sentences": (Repeat("discharge summary", "it rained.", 2),)},
        {"artefacts": (Artefact("care plan", "Cel", "UCUM Celsius", 1),)},
        {"trend_contradictions": (Contradiction("discharge-summary", "w rose", "W", "fell"),)},
        {"reading_ease": 59.9},
        {"reading_ease": None},  # an instructions document with no words
        {"coverage": {"diagnoses": Coverage(1, ("Pneumonia",))}},
    ],
)
def test_a_stay_fails_on_each_measure(changes):
    assert _evaluation().passed
    assert not _evaluation(**changes).passed


def test_a_stay_without_patient_instructions_passes_alone_but_not_beside_one_with_them():
    without = _evaluation(has_patient_instructions=False, reading_ease=None)
    assert without.passed
    totals = EvaluationTotals()
    totals.add(without)
    assert totals.ok and totals.as_dict()["reading_ease_min"] is None
    totals.add(_evaluation(reading_ease=64.0))
    assert not totals.ok
    assert totals.run_failures() == ["1 stays have no patient instructions"]
    assert (totals.as_dict()["reading_ease_min"], totals.as_dict()["reading_ease_median"]) == (
        64.0,
        64.0,
    )


def test_the_run_fails_on_median_or_p95_body_words():
    def totals_of(*words: int) -> EvaluationTotals:
        totals = EvaluationTotals()
        for n in words:
            totals.add(_evaluation(body_words=n))
        return totals

    assert totals_of(MAX_MEDIAN_BODY_WORDS, MAX_MEDIAN_BODY_WORDS, MAX_P95_BODY_WORDS).ok
    long_median = totals_of(MAX_MEDIAN_BODY_WORDS + 1, MAX_MEDIAN_BODY_WORDS + 1, 10)
    assert long_median.run_failures() == [f"median body words 701 > {MAX_MEDIAN_BODY_WORDS}"]
    long_tail = totals_of(*([100] * 18), MAX_P95_BODY_WORDS + 1, MAX_P95_BODY_WORDS + 1)
    assert long_tail.run_failures() == [f"p95 body words 1001 > {MAX_P95_BODY_WORDS}"]
    assert not long_tail.ok and long_tail.passed == long_tail.stays


def test_totals_sum_the_measures():
    totals = EvaluationTotals()
    totals.add(_evaluation(artefacts=(Artefact("care plan", "Cel", "UCUM Celsius", 3),)))
    totals.add(_evaluation(repeated_sentences=(Repeat("discharge summary", "x.", 2),) * 2))
    summary = totals.as_dict()
    assert (summary["raw_codes"], summary["repeated_sentences"]) == (3, 2)
    assert (summary["body_words_median"], summary["body_words_p95"]) == (300, 300)
    assert summary["trend_contradictions"] == 0 and summary["passed"] == 0


# --- a whole stay, from a StayDraft built by hand ----------------------------------------------


def test_evaluate_stay_measures_a_hand_made_stay():
    record = PatientRecord("p1", small_stay())
    context = build_context(record, record.get("Encounter/e1"))
    summary = _text(
        "HOSPITAL COURSE\nWeight rose to 84.5 kg. [1]\nTemperature 38.9 Cel. [2]\n"
        "Weight rose to 84.5 kg. [1]"
    )
    instructions = _text("YOUR MEDICINES\nTake one pill a day. [1]\nTake one pill a day. [1]")
    div = "<div><h3>Care plan</h3><p>x</p><p>y</p><h4>Goals</h4><p>Sodium_low.</p></div>"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _reference(SUMMARY_LOINC, summary),
            _reference(PATIENT_INSTRUCTIONS_LOINC, instructions),
            _care_plan(div),
        ],
    }
    drafts = _one_section(Sentence("Weight rose to 84.5 kg.", (WEIGHT.id,)))
    stay = StayDraft(context, RESULTS, drafts, {}, bundle, {"draft": 1.0})
    evaluation = evaluate_stay(stay)
    assert not evaluation.passed
    assert evaluation.body_words == 15
    assert [(r.document, r.times) for r in evaluation.repeated_sentences] == [
        ("discharge summary", 2),
        ("patient instructions", 2),
    ]
    assert [(a.document, a.token) for a in evaluation.artefacts] == [
        ("discharge summary", "Cel"),
        ("care plan", "Sodium_low"),
    ]
    assert [c.fact for c in evaluation.trend_contradictions] == ["Weight"]
    assert evaluation.has_patient_instructions and evaluation.reading_ease >= MIN_READING_EASE
    report = evaluation.as_dict()
    assert report["artefacts"][0]["token"] == "Cel"
    assert report["repeated_sentences"][0]["sentence"] == "weight rose to 84.5 kg."
    json.dumps(report)


# --- the command ------------------------------------------------------------------------------

_ORGANS = ("liver", "kidney", "lung", "heart", "spleen", "bladder", "stomach", "colon", "brain",
           "skin", "bone", "eye", "ear")  # fmt: skip
_FINDINGS = ("Cyst", "Scar", "Strain", "Bruise", "Tear", "Swelling", "Stone", "Spasm", "Ulcer",
             "Polyp")  # fmt: skip


def _many_diagnoses() -> list[dict]:
    """130 encounter diagnoses: the summary must name them all, so it runs past 1,000 words."""
    encounter_diagnosis = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                    "code": "encounter-diagnosis",
                }
            ]
        }
    ]
    conditions = []
    for i, (organ, finding) in enumerate((o, f) for o in _ORGANS for f in _FINDINGS):
        conditions.append(
            {
                "resourceType": "Condition",
                "id": f"many{i}",
                "category": encounter_diagnosis,
                "code": concept(
                    f"9{i:05d}", f"{finding} of the {organ} after a fall at home", SNOMED
                ),
                "subject": {"reference": "Patient/p1"},
                "encounter": {"reference": "Encounter/e1"},
            }
        )
    return conditions


def test_eval_exits_non_zero_when_the_body_runs_too_long(tmp_path, run_cli):
    source = write_json(tmp_path / "record.json", as_collection(small_stay() + _many_diagnoses()))
    result = run_cli("eval", source, "--json")
    assert result.code == 1, result.stderr
    overall = json.loads(result.stdout)["overall"]
    assert overall["body_words_median"] > MAX_P95_BODY_WORDS
    assert overall["run_failures"][:2] == [
        f"median body words {overall['body_words_median']} > {MAX_MEDIAN_BODY_WORDS}",
        f"p95 body words {overall['body_words_p95']} > {MAX_P95_BODY_WORDS}",
    ]
    table = run_cli("eval", source)
    assert table.code == 1
    assert "FAIL run: median body words" in table.stdout
    assert "body words (median / p95)" in table.stdout
