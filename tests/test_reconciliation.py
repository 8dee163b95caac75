"""Medication reconciliation: new, dose changed, stopped, continued — before admission vs discharge."""

from __future__ import annotations

import pytest

from fhirgen.clinical.medications import dosage_text, ingredient_key, reconcile
from fhirgen.clinical.stay import build_context
from fhirgen.fhir.record import PatientRecord
from tests.records import (
    category,
    discharge_order,
    dosage,
    home_statement,
    med_concept,
    small_stay,
)


def _changes(resources):
    record = PatientRecord("p1", resources)
    context = build_context(record, record.get("Encounter/e1"))
    return {c.name: c for c in reconcile(context)}


def _without_meds():
    return [
        r
        for r in small_stay()
        if r["resourceType"] not in {"MedicationStatement", "MedicationRequest"}
    ]


def test_same_drug_and_dose_is_continued():
    changes = _changes(small_stay())
    lisinopril = changes["Lisinopril 10 MG Oral Tablet"]
    assert lisinopril.change == "continued"
    assert lisinopril.sources == ("MedicationStatement/ms1", "MedicationRequest/mr1")


def test_discharge_order_without_home_medication_is_new():
    amoxicillin = _changes(small_stay())["Amoxicillin 500 MG Oral Capsule"]
    assert amoxicillin.change == "new"
    assert amoxicillin.after_dose == "500 mg by mouth three times daily for 5 days"
    assert amoxicillin.before == ()


def test_inpatient_orders_are_not_discharge_medications():
    assert "Ceftriaxone 1000 MG Injection" not in _changes(small_stay())


def test_higher_strength_at_discharge_is_a_dose_change():
    resources = [
        *_without_meds(),
        home_statement(
            "h",
            "Metoprolol succinate 25 MG Extended Release Oral Tablet",
            "866427",
            "25 mg daily",
            25,
            "mg",
        ),
        discharge_order(
            "d",
            "metoprolol succinate 50 MG Extended Release Oral Tablet",
            "866436",
            "50 mg daily",
            50,
            "mg",
        ),
    ]
    (change,) = _changes(resources).values()
    assert change.change == "changed"
    assert (change.before_dose, change.after_dose) == ("25 mg daily", "50 mg daily")


def test_same_tablet_more_often_is_a_dose_change():
    resources = [
        *_without_meds(),
        home_statement("h", "Furosemide 20 MG Oral Tablet", "310429", "20 mg daily", 20, "mg"),
        discharge_order(
            "d", "Furosemide 20 MG Oral Tablet", "310429", "20 mg twice daily", 20, "mg", per_day=2
        ),
    ]
    (change,) = _changes(resources).values()
    assert change.change == "changed"


def test_home_medication_recorded_stopped_during_the_stay_is_stopped():
    stopped = home_statement(
        "h",
        "Ibuprofen 400 MG Oral Tablet",
        "197806",
        "400 mg as needed",
        400,
        "mg",
        status="stopped",
        effectivePeriod={"start": "2025-06-01", "end": "2026-03-03T10:00:00-05:00"},
        statusReason=[{"text": "Worsens heart failure"}],
    )
    (change,) = _changes([*_without_meds(), stopped]).values()
    assert change.change == "stopped"
    assert change.reason == "Worsens heart failure"


def test_home_medication_still_active_without_discharge_order_is_continued():
    active = home_statement(
        "h", "Atorvastatin 40 MG Oral Tablet", "617311", "40 mg at night", 40, "mg"
    )
    (change,) = _changes([*_without_meds(), active]).values()
    assert change.change == "continued"
    assert change.after == ()


def test_medication_stopped_before_admission_is_not_a_home_medication():
    old = home_statement(
        "h",
        "Prednisone 20 MG Oral Tablet",
        "312615",
        "20 mg daily",
        20,
        "mg",
        status="completed",
        effectivePeriod={"start": "2025-01-01", "end": "2025-01-10"},
    )
    assert _changes([*_without_meds(), old]) == {}


def test_community_prescription_from_before_admission_is_a_home_medication():
    prescription = {
        "resourceType": "MedicationRequest",
        "id": "rx",
        "status": "active",
        "intent": "order",
        "category": category("community"),
        "medicationCodeableConcept": med_concept("197361", "Amlodipine 5 MG Oral Tablet"),
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2025-11-01",
        "dosageInstruction": dosage("5 mg daily", 5, "mg"),
    }
    (change,) = _changes([*_without_meds(), prescription]).values()
    assert (change.change, change.before[0]["id"]) == ("continued", "rx")


def test_medication_reference_is_named_from_the_medication_resource():
    order = discharge_order("d", "x", "0", "875 mg twice daily", 875, "mg", per_day=2)
    del order["medicationCodeableConcept"]
    order["medicationReference"] = {"reference": "Medication/m1"}
    medication = {
        "resourceType": "Medication",
        "id": "m1",
        "code": med_concept("617296", "Amoxicillin 875 MG / Clavulanate 125 MG Oral Tablet"),
    }
    record = PatientRecord(
        "p1", [*_without_meds(), order], lookup={"Medication/m1": medication}.get
    )
    context = build_context(record, record.get("Encounter/e1"))
    (change,) = reconcile(context)
    assert change.name == "Amoxicillin 875 MG / Clavulanate 125 MG Oral Tablet"
    assert change.change == "new"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("10 ML Furosemide 10 MG/ML Injection", "furosemide"),
        ("Metoprolol succinate 25 MG Extended Release Oral Tablet", "metoprolol succinate"),
        ("metoprolol succinate ER 50 mg tablet", "metoprolol succinate"),
        ("Amoxicillin 875 MG / Clavulanate 125 MG Oral Tablet", "amoxicillin / clavulanate"),
        (
            "Acetaminophen 300 MG / HYDROcodone Bitartrate 5 MG [Vicodin]",
            "acetaminophen / hydrocodone bitartrate",
        ),
        ("Docusate sodium 100 MG Oral Capsule", "docusate sodium"),
        ("Insulin glargine 100 UNT/ML Injectable Solution", "insulin glargine"),
    ],
)
def test_ingredient_key(name, key):
    assert ingredient_key(name) == key


def test_dosage_text_is_built_when_the_order_has_no_text():
    order = {
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
                "asNeededBoolean": True,
                "route": {"text": "Oral"},
                "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg"}}],
            }
        ]
    }
    assert dosage_text(order) == "5 mg oral every 6 hours as needed"
