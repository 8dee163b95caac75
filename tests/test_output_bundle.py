"""The transaction Bundle: what the EHR receives, as FHIR.md specifies it."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qs

import pytest

from fhirgen.fhir.validation import validation_errors
from tests.records import as_collection, small_stay, write_json

AIAST = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "AIAST")
SUMMARY, INSTRUCTIONS = "18842-5", "8653-8"  # LOINC types of the two DocumentReferences


@pytest.fixture
def bundle(tmp_path, run_cli):
    source = write_json(tmp_path / "record.json", as_collection(small_stay()))
    result = run_cli("generate", source, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    return json.loads((tmp_path / "out" / "e1.json").read_text())


def _resource(bundle, rtype):
    (found,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]
    return found


def _document(bundle, loinc):
    """The DocumentReference entry of this LOINC type (exactly one)."""
    (found,) = [
        e
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
        and e["resource"]["type"]["coding"][0]["code"] == loinc
    ]
    return found


def _plain(document):
    return base64.b64decode(document["content"][0]["attachment"]["data"]).decode()


def _ai_asserted(resource):
    return any((s["system"], s["code"]) == AIAST for s in resource["meta"]["security"])


def test_a_valid_transaction_of_device_documents_care_plan_and_provenance(bundle):
    assert bundle["type"] == "transaction"
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == [
        "Device",
        "DocumentReference",  # the discharge summary
        "CarePlan",
        "DocumentReference",  # the patient instructions
        "Provenance",
    ]
    assert [e["resource"]["type"]["coding"][0]["code"] for e in bundle["entry"][1:4:2]] == [
        SUMMARY,
        INSTRUCTIONS,
    ]
    assert validation_errors(bundle) == []
    for entry in bundle["entry"]:
        assert validation_errors(entry["resource"]) == []


def test_generated_resources_are_labelled_ai_asserted(bundle):
    for rtype in ("CarePlan", "Provenance"):
        assert _ai_asserted(_resource(bundle, rtype)["resource"]), rtype
    for loinc in (SUMMARY, INSTRUCTIONS):
        assert _ai_asserted(_document(bundle, loinc)["resource"]), loinc


def test_document_reference_is_a_preliminary_us_core_discharge_summary(bundle):
    entry = _document(bundle, SUMMARY)
    document = entry["resource"]
    assert (document["status"], document["docStatus"]) == ("current", "preliminary")
    assert document["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "18842-5",
        "display": "Discharge summary",
    }
    assert document["category"][0]["coding"][0]["code"] == "clinical-note"
    assert document["subject"] == {"reference": "Patient/p1"}
    assert document["context"]["encounter"] == [{"reference": "Encounter/e1"}]
    assert document["context"]["period"] == {
        "start": "2026-03-02T14:05:00-05:00",
        "end": "2026-03-06T11:30:00-05:00",
    }
    device_url = _resource(bundle, "Device")["fullUrl"]
    assert document["author"] == [{"reference": device_url}]
    types = [c["attachment"]["contentType"] for c in document["content"]]
    assert types == ["text/plain; charset=utf-8", "text/html; charset=utf-8"]
    plain = base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
    html = base64.b64decode(document["content"][1]["attachment"]["data"]).decode()
    assert "DISCHARGE MEDICATIONS\nNew at discharge: Amoxicillin 500 mg oral capsule" in plain
    assert "<h2>Discharge medications</h2>" in html
    assert document["content"][0]["attachment"]["size"] == len(plain.encode())


def test_patient_instructions_are_their_own_preliminary_document(bundle):
    entry = _document(bundle, INSTRUCTIONS)
    document = entry["resource"]
    assert (document["status"], document["docStatus"]) == ("current", "preliminary")
    assert document["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "8653-8",
        "display": "Hospital discharge instructions",
    }
    assert document["meta"]["profile"] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference"
    ]
    assert document["category"][0]["coding"][0]["code"] == "clinical-note"
    assert "AI-generated" in document["description"]
    assert "instructions" in document["description"]
    assert document["subject"] == {"reference": "Patient/p1"}
    assert document["context"]["encounter"] == [{"reference": "Encounter/e1"}]
    assert document["author"] == [{"reference": _resource(bundle, "Device")["fullUrl"]}]
    assert document["date"] == _document(bundle, SUMMARY)["resource"]["date"]
    types = [c["attachment"]["contentType"] for c in document["content"]]
    assert types == ["text/plain; charset=utf-8", "text/html; charset=utf-8"]
    plain = _plain(document)
    html = base64.b64decode(document["content"][1]["attachment"]["data"]).decode()
    assert plain.startswith("PATIENT INSTRUCTIONS - AI-GENERATED DRAFT\n")
    assert (
        "YOUR MEDICINES\n"
        "Start taking amoxicillin 500 mg oral capsule. [1]\n"
        "How to take amoxicillin: 500 mg by mouth three times daily for 5 days. [1]\n"
        "Keep taking lisinopril 10 mg oral tablet as before. [2]\n"
        "Tell everyone who treats you that you are allergic to penicillin. [3]\n"
    ) in plain
    assert (
        "APPOINTMENTS AND TESTS\n"
        "Go to your appointment: Primary care follow-up on 13 Mar 2026 at 10:00. [4]\n"
    ) in plain
    # The pneumonia's warning signs, citing the diagnosis, then the general line.
    assert (
        "WARNING SIGNS\nCall your doctor if your fever comes back, your cough gets worse, or you "
        "find it hard to breathe. [5]\nIf you feel worse" in plain
    )
    assert "YOUR GOALS\nYour care team did not write down goals for you. [7]\n" in plain
    assert "<h2>Your medicines</h2>" in html and 'id="src-7"' in html


def test_care_plan_is_a_draft_assess_plan_linked_to_its_sources(bundle):
    plan = _resource(bundle, "CarePlan")["resource"]
    assert (plan["status"], plan["intent"]) == ("draft", "plan")
    assert plan["category"][0]["coding"][0]["code"] == "assess-plan"
    assert plan["text"]["status"] == "additional"
    div = plan["text"]["div"]
    assert div.startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
    # The narrative: the care plan, then the patient instructions under their own heading,
    # then one source list numbered across both (each id once).
    assert div.index("<h3>Care plan after discharge</h3>") < div.index(
        "<h3>Patient instructions</h3>"
    )
    assert div.index("<h3>Patient instructions</h3>") < div.index("<h4>Your medicines</h4>")
    assert div.count("<h4>Sources</h4>") == 1 and div.count("AI-generated draft") == 1
    anchors = re.findall(r'<li id="(src-\d+)">', div)
    assert anchors == [f"src-{n}" for n in range(1, len(anchors) + 1)]
    assert set(re.findall(r'href="#(src-\d+)"', div)) == set(anchors)
    assert plan["addresses"] == [{"reference": "Condition/c1"}]
    targets = [a["reference"]["reference"] for a in plan["activity"] if "reference" in a]
    assert targets == ["Appointment/ap1", "MedicationRequest/mr2"]


def test_provenance_names_the_ai_device_and_the_cited_chart_resources(bundle):
    entry = _resource(bundle, "Provenance")
    provenance = entry["resource"]
    document_url = _document(bundle, SUMMARY)["fullUrl"]
    plan_url = _resource(bundle, "CarePlan")["fullUrl"]
    instructions_url = _document(bundle, INSTRUCTIONS)["fullUrl"]
    assert len({document_url, plan_url, instructions_url}) == 3
    assert provenance["target"] == [
        {"reference": document_url},
        {"reference": plan_url},
        {"reference": instructions_url},
    ]
    assert provenance["agent"][0]["who"] == {"reference": _resource(bundle, "Device")["fullUrl"]}
    cited = [e["what"]["reference"] for e in provenance["entity"]]
    assert cited == [
        "AllergyIntolerance/a1",
        "Appointment/ap1",
        "Condition/c1",
        "Condition/c2",
        "Encounter/e1",
        "MedicationRequest/mr1",
        "MedicationRequest/mr2",
        "MedicationRequest/mr3",
        "MedicationStatement/ms1",
        "Observation/o1",
        "Observation/o2",
        "Observation/o3",
        "Patient/p1",  # "No care goals are recorded" rests on the patient's record
        "Procedure/pr1",
    ]
    assert all(e["role"] == "source" for e in provenance["entity"])
    assert provenance["recorded"] == "2026-03-06T11:30:00-05:00"


def test_creates_are_conditional_and_the_provenance_is_put_to_a_stable_id(bundle):
    expected = {  # each generated resource's identifier, and the If-None-Exist on it
        SUMMARY: "e1.v3.discharge-summary",
        INSTRUCTIONS: "e1.v3.patient-instructions",
    }
    for loinc, value in expected.items():
        entry = _document(bundle, loinc)
        (identifier,) = entry["resource"]["identifier"]
        assert identifier == {"system": "urn:fhirgen:draft", "value": value}
        assert (entry["request"]["method"], entry["request"]["url"]) == (
            "POST",
            "DocumentReference",
        )
        assert parse_qs(entry["request"]["ifNoneExist"]) == {
            "identifier": [f"urn:fhirgen:draft|{value}"]
        }
    plan = _resource(bundle, "CarePlan")
    assert parse_qs(plan["request"]["ifNoneExist"]) == {
        "identifier": ["urn:fhirgen:draft|e1.v3.care-plan"]
    }
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls)
    entry = _resource(bundle, "Provenance")
    provenance = entry["resource"]
    assert entry["request"] == {"method": "PUT", "url": f"Provenance/{provenance['id']}"}


def test_same_input_gives_byte_identical_output(tmp_path, run_cli):
    source = write_json(tmp_path / "record.json", as_collection(small_stay()))
    run_cli("generate", source, "--out", tmp_path / "a")
    run_cli("generate", source, "--out", tmp_path / "b")
    assert (tmp_path / "a" / "e1.json").read_bytes() == (tmp_path / "b" / "e1.json").read_bytes()


def test_injected_timestamp_dates_the_drafts(tmp_path, run_cli):
    source = write_json(tmp_path / "record.json", as_collection(small_stay()))
    result = run_cli(
        "generate", source, "--out", tmp_path / "o", "--timestamp", "2026-03-06T12:00:00Z"
    )
    assert result.code == 0
    bundle = json.loads((tmp_path / "o" / "e1.json").read_text())
    assert _resource(bundle, "Provenance")["resource"]["recorded"] == "2026-03-06T12:00:00Z"
    assert _document(bundle, SUMMARY)["resource"]["date"] == "2026-03-06T12:00:00Z"
    assert _document(bundle, INSTRUCTIONS)["resource"]["date"] == "2026-03-06T12:00:00Z"
    bad = run_cli("generate", source, "--out", tmp_path / "o", "--timestamp", "yesterday")
    assert bad.code == 2 and "not an ISO date-time" in bad.stderr


def test_new_encounter_version_gets_new_identifiers(tmp_path, run_cli):
    resources = small_stay()
    next(r for r in resources if r["id"] == "e1")["meta"]["versionId"] = "4"
    source = write_json(tmp_path / "record.json", as_collection(resources))
    run_cli("generate", source, "--out", tmp_path / "o")
    bundle = json.loads((tmp_path / "o" / "e1.json").read_text())
    document = _document(bundle, SUMMARY)["resource"]
    assert document["identifier"][0]["value"] == "e1.v4.discharge-summary"
    instructions = _document(bundle, INSTRUCTIONS)["resource"]
    assert instructions["identifier"][0]["value"] == "e1.v4.patient-instructions"


def test_regenerated_draft_replaces_the_earlier_one():
    from fhirgen.drafting.generation import get_generator
    from fhirgen.drafting.pipeline import draft_stay
    from fhirgen.fhir.record import PatientRecord

    record = PatientRecord("p1", small_stay())
    result = draft_stay(
        record,
        record.get("Encounter/e1"),
        get_generator("template"),
        identifier_system="urn:fhirgen:draft",
        replaces="DocumentReference/earlier",
    )
    document = _document(result.bundle, SUMMARY)["resource"]
    assert document["relatesTo"] == [
        {"code": "replaces", "target": {"reference": "DocumentReference/earlier"}}
    ]
    # What it replaces is the earlier summary; the instructions do not claim to replace it.
    assert "relatesTo" not in _document(result.bundle, INSTRUCTIONS)["resource"]


# -- the text of a document: paragraphs, and a compact source list ------------------------------


def _context_and_facts():
    from fhirgen.clinical.facts import extract_facts
    from fhirgen.clinical.stay import build_context
    from fhirgen.fhir.record import PatientRecord

    record = PatientRecord("p1", small_stay())
    context = build_context(record, record.get("Encounter/e1"))
    return context, extract_facts(context)


def _one_section_draft(*sentences):
    from fhirgen.drafting.documents.base import Draft, Section

    section = Section("course", "Hospital course", tuple(sentences))
    return Draft("discharge-summary", "Discharge summary", (section,), "template", "t")


def test_sentences_of_one_topic_render_as_one_paragraph():
    from fhirgen.drafting.documents.base import Sentence
    from fhirgen.drafting.render import document_html, document_text

    context, facts = _context_and_facts()
    a, b, c = (f.id for f in list(facts)[:3])
    draft = _one_section_draft(
        Sentence("Treated with antibiotics.", (a,), "Pneumonia"),
        Sentence("Improved & went home.", (b, c), "Pneumonia"),
        Sentence("No procedures.", (c,)),
        Sentence("Kept on lisinopril.", (a,), "Hypertension"),
        Sentence("Stay ended.", (b,)),
        Sentence("Nothing else.", (c,)),
    )
    plain = document_text(facts, draft, context)
    assert (
        "HOSPITAL COURSE\n"
        "Pneumonia: Treated with antibiotics. [1] Improved & went home. [2][3]\n"
        "\n"
        "No procedures. [3]\n"
        "\n"
        "Hypertension: Kept on lisinopril. [1]\n"
        "\n"
        "Stay ended. [2]\n"
        "Nothing else. [3]\n"
        "\n"
        "SOURCES\n"
    ) in plain
    html = document_html(facts, draft, context)
    mark = '<sup><a href="#src-{0}">[{0}]</a></sup>'.format
    assert (
        "<h2>Hospital course</h2>"
        f"<p><b>Pneumonia:</b> Treated with antibiotics.{mark(1)} "
        f"Improved &amp; went home.{mark(2)}{mark(3)}</p>"
        f"<p>No procedures.{mark(3)}</p>"
        f"<p><b>Hypertension:</b> Kept on lisinopril.{mark(1)}</p>"
        f"<p>Stay ended.{mark(2)}</p><p>Nothing else.{mark(3)}</p>"
    ) in html


def test_the_plain_source_list_is_compact_and_the_html_keeps_every_resource():
    from fhirgen.clinical.facts import Fact, FactKind, FactSet
    from fhirgen.drafting.documents.base import Sentence
    from fhirgen.drafting.render import SOURCE_TEXT_CHARS, document_html, document_text, source_line

    context, _ = _context_and_facts()
    words = " ".join(f"reading{n} 37.{n} °C" for n in range(40))
    series = Fact(
        id="vital-1",
        kind=FactKind.VITAL,
        text=f"Temperature: {words}",
        sources=(*(f"Observation/M-{n}" for n in range(1, 8)), "Encounter/e1"),
    )
    short = Fact(
        id="lab-1", kind=FactKind.LAB, text="Sodium 138 mmol/L", sources=("Observation/o3",)
    )
    facts = FactSet("Encounter/e1", (series, short))
    draft = _one_section_draft(Sentence("Temperatures were taken.", ("vital-1", "lab-1")))
    plain = document_text(facts, draft, context)
    sources = plain.split("\nSOURCES\n", 1)[1].splitlines()
    assert sources[1] == "[2] Sodium 138 mmol/L (Observation/o3)"
    assert sources[0].endswith("… (Observation/M-1, M-2, M-3 +4 more; Encounter/e1)")
    shown = sources[0].removeprefix("[1] ").split("… (")[0]
    assert len(shown) < SOURCE_TEXT_CHARS and series.text.startswith(shown)
    assert series.text[len(shown)] == " "  # cut on a word boundary
    assert source_line(2, short) == sources[1]
    html = document_html(facts, draft, context)
    assert f'<li id="src-1">{series.text} ({", ".join(series.sources)})</li>' in html
    assert all(source in html for source in series.sources)


def test_the_job_records_the_summary_not_the_instructions():
    """The transaction answers one location per entry; the summary is the first
    DocumentReference, and the one a job records (and a regenerated draft replaces)."""
    from fhirgen.drafting.generation import get_generator
    from fhirgen.drafting.pipeline import draft_stay
    from fhirgen.fhir.record import PatientRecord
    from fhirgen.service.jobs import _locations

    record = PatientRecord("p1", small_stay())
    result = draft_stay(
        record,
        record.get("Encounter/e1"),
        get_generator("template"),
        identifier_system="urn:fhirgen:draft",
    )
    response = {
        "entry": [
            {"response": {"location": f"{e['resource']['resourceType']}/{n}/_history/1"}}
            for n, e in enumerate(result.bundle["entry"], start=1)
        ]
    }
    assert _locations(result.bundle, response) == {
        "Device": "Device/1",
        "DocumentReference": "DocumentReference/2",
        "CarePlan": "CarePlan/3",
        "Provenance": "Provenance/5",
    }
