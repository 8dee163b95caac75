"""The stay's context and its facts: what belongs to the stay, what is left out, how it reads."""

from __future__ import annotations

import base64

import pytest

from fhirgen.clinical.facts import FactKind, extract_facts
from fhirgen.clinical.stay import build_context, find_stays, html_to_text
from fhirgen.fhir.record import PatientRecord
from tests.records import DISCHARGED, LOINC, concept, lab, note, small_stay


def _context(resources):
    record = PatientRecord("p1", resources)
    return build_context(record, record.get("Encounter/e1"))


def _facts(resources):
    return extract_facts(_context(resources))


def test_only_finished_inpatient_encounters_are_stays():
    resources = small_stay()
    in_progress = {
        **next(r for r in resources if r["id"] == "e1"),
        "id": "e2",
        "status": "in-progress",
    }
    record = PatientRecord("p1", [*resources, in_progress])
    assert [e["id"] for e in find_stays(record, ["IMP"])] == ["e1"]
    assert find_stays(record, ["OBSENC"]) == []


def test_existing_discharge_summaries_are_never_read():
    summary = note(
        "ds", "Patient was started on lithium.", loinc="18842-5", title="Discharge summary"
    )
    nursing = note(
        "nds", "Lithium teaching done.", loinc="34745-0", title="Nurse Discharge summary"
    )
    ours = note("ai", "Earlier AI draft.", title="Clinical note")
    ours["meta"] = {
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "AIAST"}
        ]
    }
    context = _context([*small_stay(), summary, nursing, ours])
    assert context.excluded_documents == (
        "DocumentReference/ai",
        "DocumentReference/ds",
        "DocumentReference/nds",
    )
    assert [n.source for n in context.notes] == ["DocumentReference/d1"]
    facts = extract_facts(context)
    assert not any(
        "lithium" in f.text.lower() or "lithium" in f.attr("excerpt").lower() for f in facts
    )


def test_notes_are_read_as_plain_text_and_notes_after_discharge_are_left_out():
    html = note(
        "h",
        "<p>Assessment &amp; plan:</p><ul><li>Continue <b>ceftriaxone</b></li></ul><script>x()</script>",
        html=True,
    )
    late = note("late", "Written after discharge.", date="2026-03-08T09:00:00-05:00")
    context = _context([*small_stay(), html, late])
    texts = {n.source: n.text for n in context.notes}
    assert texts["DocumentReference/h"] == "Assessment & plan:\n\n- Continue ceftriaxone"
    assert "DocumentReference/late" not in texts


def test_html_to_text():
    assert html_to_text("<div><p>a&nbsp;b</p><br/>c &lt; d</div>") == "a b\n\nc < d"


def test_resources_of_other_encounters_are_not_in_the_stay():
    other = lab("x", "2951-2", "Sodium", 120, "mmol/L", "2026-03-03T10:00:00-05:00")
    other["encounter"] = {"reference": "Encounter/e0"}
    unlinked_inside = lab(
        "y", "2823-3", "Potassium", 3.1, "mmol/L", "2026-03-03T10:00:00-05:00", low=3.5, high=5.1
    )
    del unlinked_inside["encounter"]
    unlinked_outside = lab("z", "2823-3", "Potassium", 5.9, "mmol/L", "2026-04-01T10:00:00-05:00")
    del unlinked_outside["encounter"]
    context = _context([*small_stay(), other, unlinked_inside, unlinked_outside])
    ids = {o["id"] for o in context.observations}
    assert ids == {"o1", "o2", "o3", "y"}


def test_lab_facts_give_first_last_extremes_flags_and_trend():
    resources = [
        *small_stay(),
        lab(
            "k1",
            "2160-0",
            "Creatinine",
            1.31,
            "mg/dL",
            "2026-03-02T16:00:00-05:00",
            high=1.1,
            flag="H",
        ),
        lab("k2", "2160-0", "Creatinine", 1.84, "mg/dL", "2026-03-03T06:00:00-05:00", high=1.1),
        lab("k3", "2160-0", "Creatinine", 1.02, "mg/dL", "2026-03-05T06:00:00-05:00", high=1.1),
    ]
    creatinine = next(f for f in _facts(resources) if f.name == "creatinine")
    assert creatinine.kind is FactKind.LAB
    assert creatinine.text == (
        "Creatinine rose from 1.31 to a peak of 1.84 mg/dL on 3 Mar 2026, then fell to "
        "1.02 mg/dL, returning to normal (3 results, 2–5 Mar 2026)"
    )
    assert creatinine.attr("abnormal") == "high"
    assert creatinine.attr("threshold") == "0.3"  # KDIGO's 0.3 mg/dL
    assert creatinine.attr("direction") == "peaked"
    assert creatinine.sources == ("Observation/k1", "Observation/k2", "Observation/k3")
    assert [v.value for v in creatinine.values if v.label == "result"] == ["1.31", "1.84", "1.02"]


@pytest.mark.parametrize(
    ("code", "name", "unit", "values", "low", "high", "course"),
    [
        # The cases a hospitalist objected to: large changes once called "stable".
        (
            "8310-5",
            "Body temperature",
            "Cel",
            [38.9, 38.1, 37.2, 36.9],
            36.1,
            37.8,
            "fell from 38.9 to 36.9 °C, returning to normal",
        ),
        (
            "2708-6",
            "Oxygen saturation",
            "%",
            [88, 91, 95],
            94,
            100,
            "rose from 88% to 95%, returning to normal",
        ),
        (
            "29463-7",
            "Body weight",
            "kg",
            [88.4, 87.1, 86.0, 85.2, 84.5],
            None,
            None,
            "fell from 88.4 to 84.5 kg",
        ),
        # Inside the change that matters: stable, with the range of values.
        (
            "2951-2",
            "Sodium",
            "mmol/L",
            [140, 139, 141],
            135,
            145,
            "stable at 138 to 141 mmol/L",
        ),  # with the stay's own 138
        # A falling haemoglobin in a bleed is never "stable".
        (
            "718-7",
            "Hemoglobin",
            "g/dL",
            [10.0, 8.9, 7.9, 8.8],
            13.5,
            17.5,
            "fell from 10 to a low of 7.9 g/dL on 4 Mar 2026, then rose to 8.8 g/dL, still low",
        ),
    ],
)
def test_trend_words_follow_clinically_meaningful_change(
    code, name, unit, values, low, high, course
):
    results = [
        lab(f"t{i}", code, name, v, unit, f"2026-03-0{2 + i}T08:00:00-05:00", low=low, high=high)
        for i, v in enumerate(values)
    ]
    (fact,) = [f for f in _facts([*small_stay(), *results]) if "Observation/t0" in f.sources]
    assert fact.attr("course") == course
    assert "stable" not in fact.text or course.startswith("stable")


def test_pending_results_and_follow_ups():
    resources = small_stay()
    culture = lab(
        "bc", "600-7", "Blood culture", 0, "", "2026-03-04T09:00:00-05:00", status="preliminary"
    )
    del culture["valueQuantity"]
    culture["valueString"] = "No growth at 2 days"
    later_lab = {
        "resourceType": "ServiceRequest",
        "id": "sr-bmp",
        "status": "active",
        "intent": "order",
        "code": concept("24320-4", "Basic metabolic panel", LOINC),
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "authoredOn": "2026-03-06T08:00:00-05:00",
        "occurrenceDateTime": "2026-03-09",
    }
    unresulted = {**later_lab, "id": "sr-mg", "code": concept("19123-9", "Magnesium", LOINC)}
    del unresulted["occurrenceDateTime"]
    facts = _facts([*resources, culture, later_lab, unresulted])
    pending = [f.text for f in facts.of_kind(FactKind.PENDING)]
    assert pending == [
        "Blood culture: result not final at discharge (status preliminary, so far: No growth at 2 days)",
        "Magnesium: ordered on 6 Mar 2026, no result recorded by discharge",
    ]
    follow_ups = [f.text for f in facts.of_kind(FactKind.FOLLOW_UP)]
    assert follow_ups == [
        "Basic metabolic panel, due 9 Mar 2026",
        "Primary care follow-up on 13 Mar 2026 at 10:00",
    ]


def test_empty_categories_become_absence_facts_citing_the_encounter():
    bare = [r for r in small_stay() if r["resourceType"] in {"Patient", "Encounter"}]
    facts = _facts(bare)
    absent = {f.attr("about"): f for f in facts.of_kind(FactKind.ABSENT)}
    assert set(absent) == {
        "reason",
        "diagnoses",
        "procedures",
        "inpatient-medications",
        "discharge-medications",
        "labs",
        "allergies",
        "pending",
        "follow-up",
        "goals",
    }
    assert absent["procedures"].text == "No procedures are recorded for this stay."
    assert absent["procedures"].sources == ("Encounter/e1",)
    assert absent["allergies"].sources == ("Patient/p1",)


def test_fact_ids_are_stable_and_unique():
    first, second = _facts(small_stay()), _facts(small_stay())
    assert [f.id for f in first] == [f.id for f in second]
    assert len(first.ids) == len(first)


def test_stay_fact():
    stay = _facts(small_stay()).of_kind(FactKind.STAY)[0]
    assert stay.text == "Hospital admission from 2 Mar 2026 to 6 Mar 2026 (4 days)"
    assert DISCHARGED in {v.when for v in stay.values}


@pytest.mark.parametrize(
    ("code", "expected"),
    [("91936005", "Allergy to penicillin: hives (moderate); criticality high")],
)
def test_allergy_fact_names_the_substance_once(code, expected):
    (allergy,) = _facts(small_stay()).of_kind(FactKind.ALLERGY)
    assert allergy.text == expected


def test_no_known_allergy_is_stated_as_recorded():
    resources = [r for r in small_stay() if r["resourceType"] != "AllergyIntolerance"]
    resources.append(
        {
            "resourceType": "AllergyIntolerance",
            "id": "nka",
            "verificationStatus": concept("confirmed", "Confirmed"),
            "code": concept("716186003", "No known allergy"),
            "patient": {"reference": "Patient/p1"},
        }
    )
    facts = _facts(resources)
    assert [f.text for f in facts.of_kind(FactKind.NO_KNOWN_ALLERGY)] == ["No known allergies"]
    assert facts.absent("allergies") is None


def test_note_text_decodes_declared_charset():
    latin = note("l", "")
    latin["content"][0]["attachment"] = {
        "contentType": "text/plain; charset=iso-8859-1",
        "data": base64.b64encode("Température normale".encode("latin-1")).decode(),
    }
    context = _context([*small_stay(), latin])
    assert any(n.text == "Température normale" for n in context.notes)


def test_the_fingerprint_ignores_what_no_fact_says_and_follows_what_one_does():
    """A new version of a finished Encounter for coding or billing is drafted alike; a new
    discharge disposition is not."""
    resources = small_stay()
    first = _facts(resources).fingerprint()
    assert len(first) == 64 and first == _facts(small_stay()).fingerprint()
    encounter = next(r for r in resources if r["resourceType"] == "Encounter" and r["id"] == "e1")
    encounter["meta"] = {"versionId": "7", "lastUpdated": "2026-03-09T08:00:00Z"}
    encounter["account"] = [{"reference": "Account/billing-1"}]  # billing attached later
    assert _facts(resources).fingerprint() == first
    encounter["hospitalization"]["dischargeDisposition"] = concept(
        "snf",
        "Skilled nursing facility",
        "http://terminology.hl7.org/CodeSystem/discharge-disposition",
    )
    assert _facts(resources).fingerprint() != first
