"""Nothing distinct is merged away: items sharing a code or an ingredient stay apart in the draft.

A hospitalist reading the summary must see every drug, dose, route and time the chart holds:
two nebulised drugs under one procedure code, two active orders of one drug at two doses, two
drugs of one class at discharge. Grouping may shorten the text; it may never drop one of them.
"""

from __future__ import annotations

from fhirgen.clinical.facts import FactKind, extract_facts
from fhirgen.clinical.stay import build_context
from fhirgen.drafting.documents import discharge_summary
from fhirgen.drafting.generation.template import TemplateGenerator
from fhirgen.drafting.pipeline import draft_stay
from fhirgen.fhir.record import PatientRecord
from tests.records import SNOMED, discharge_order, small_stay


def _facts(resources):
    record = PatientRecord("p1", resources)
    return extract_facts(build_context(record, record.get("Encounter/e1")))


def _summary_text(resources) -> str:
    record = PatientRecord("p1", resources)
    result = draft_stay(
        record, record.get("Encounter/e1"), TemplateGenerator(), identifier_system="urn:x"
    )
    draft = result.drafts[discharge_summary.KIND.key]
    return "\n".join(s.text for _, s in draft.sentences())


def _nebuliser(rid: str, drug: str, when: str) -> dict:
    """A procedure with the generic SNOMED code for nebulised bronchodilator therapy."""
    return {
        "resourceType": "Procedure",
        "id": rid,
        "status": "completed",
        "code": {
            "coding": [
                {
                    "system": SNOMED,
                    "code": "56251003",
                    "display": "Nebulizer therapy",
                }
            ],
            "text": f"{drug} nebuliser",
        },
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "performedDateTime": when,
    }


def test_two_nebulised_drugs_under_one_code_stay_two_procedures():
    resources = [
        *small_stay(),
        _nebuliser("neb1", "Salbutamol 2.5 mg", "2026-03-03T08:00:00-05:00"),
        _nebuliser("neb2", "Ipratropium 500 micrograms", "2026-03-03T08:05:00-05:00"),
    ]
    procedures = [f.name for f in _facts(resources).of_kind(FactKind.PROCEDURE)]
    assert "Salbutamol 2.5 mg nebuliser" in procedures
    assert "Ipratropium 500 micrograms nebuliser" in procedures
    text = _summary_text(resources)
    assert "Salbutamol 2.5 mg nebuliser" in text and "Ipratropium 500 micrograms nebuliser" in text


def test_two_active_discharge_orders_for_one_drug_are_both_stated_and_flagged():
    resources = [
        *small_stay(),
        discharge_order(
            "mr-l20", "Lisinopril 20 MG Oral Tablet", "314077", "20 mg daily", 20, "mg"
        ),
    ]
    facts = _facts(resources)
    lisinopril = next(
        f for f in facts.of_kind(FactKind.MEDICATION) if "lisinopril" in f.name.lower()
    )
    assert "10 mg" in lisinopril.text.lower() and "20 mg" in lisinopril.text.lower()
    (check,) = facts.of_kind(FactKind.MEDICATION_CHECK)
    assert check.text.startswith("Two active discharge orders for lisinopril")
    assert check.text.endswith("confirm which continues")
    assert "MedicationRequest/mr-l20" in check.sources
    text = _summary_text(resources)
    assert "Check: Two active discharge orders for lisinopril" in text
    assert "20 mg daily" in text and "10 mg" in text.lower()


def test_two_drugs_of_one_class_at_discharge_are_flagged():
    resources = [
        *small_stay(),
        discharge_order("mr-los", "Losartan 50 MG Oral Tablet", "979485", "50 mg daily", 50, "mg"),
    ]
    checks = [f.text for f in _facts(resources).of_kind(FactKind.MEDICATION_CHECK)]
    assert checks == [
        "Two renin-angiotensin blockers at discharge (Lisinopril 10 mg oral tablet and "
        "Losartan 50 mg oral tablet): confirm both are intended"
    ]


def test_one_drug_at_one_dose_is_not_flagged():
    assert _facts(small_stay()).of_kind(FactKind.MEDICATION_CHECK) == ()


def test_a_combination_product_is_not_merged_with_one_of_its_parts():
    def given(rid: str, name: str) -> dict:
        return {
            "resourceType": "MedicationAdministration",
            "id": rid,
            "status": "completed",
            "medicationCodeableConcept": {"text": name},
            "subject": {"reference": "Patient/p1"},
            "context": {"reference": "Encounter/e1"},
            "effectiveDateTime": "2026-03-03T08:00:00-05:00",
        }

    resources = [
        *small_stay(),
        given("a1", "Acetaminophen 325 MG Oral Tablet"),
        given("a2", "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet"),
    ]
    given_facts = _facts(resources).of_kind(FactKind.INPATIENT_MEDICATION)
    texts = " | ".join(f.text for f in given_facts)
    assert "Oxycodone" in texts
    assert len([f for f in given_facts if "acetaminophen" in f.text.lower()]) == 2
