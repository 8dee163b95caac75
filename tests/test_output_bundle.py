"""The transaction Bundle: what the EHR receives, as FHIR.md specifies it."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import pytest

from fhirgen.fhir.validation import validation_errors
from tests.records import as_collection, small_stay, write_json

AIAST = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "AIAST")


@pytest.fixture
def bundle(tmp_path, run_cli):
    source = write_json(tmp_path / "record.json", as_collection(small_stay()))
    result = run_cli("generate", source, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    return json.loads((tmp_path / "out" / "e1.json").read_text())


def _resource(bundle, rtype):
    (found,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]
    return found


def _ai_asserted(resource):
    return any((s["system"], s["code"]) == AIAST for s in resource["meta"]["security"])


def test_a_valid_transaction_of_device_document_care_plan_and_provenance(bundle):
    assert bundle["type"] == "transaction"
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == [
        "Device",
        "DocumentReference",
        "CarePlan",
        "Provenance",
    ]
    assert validation_errors(bundle) == []
    for entry in bundle["entry"]:
        assert validation_errors(entry["resource"]) == []


def test_generated_resources_are_labelled_ai_asserted(bundle):
    for rtype in ("DocumentReference", "CarePlan", "Provenance"):
        assert _ai_asserted(_resource(bundle, rtype)["resource"]), rtype


def test_document_reference_is_a_preliminary_us_core_discharge_summary(bundle):
    entry = _resource(bundle, "DocumentReference")
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
    assert "DISCHARGE MEDICATIONS\nNew at discharge: Amoxicillin 500 MG Oral Capsule" in plain
    assert "<h2>Discharge medications</h2>" in html
    assert document["content"][0]["attachment"]["size"] == len(plain.encode())


def test_care_plan_is_a_draft_assess_plan_linked_to_its_sources(bundle):
    plan = _resource(bundle, "CarePlan")["resource"]
    assert (plan["status"], plan["intent"]) == ("draft", "plan")
    assert plan["category"][0]["coding"][0]["code"] == "assess-plan"
    assert plan["text"]["status"] == "additional"
    assert plan["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
    assert plan["addresses"] == [{"reference": "Condition/c1"}]
    targets = [a["reference"]["reference"] for a in plan["activity"] if "reference" in a]
    assert targets == ["Appointment/ap1", "MedicationRequest/mr2"]


def test_provenance_names_the_ai_device_and_the_cited_chart_resources(bundle):
    entry = _resource(bundle, "Provenance")
    provenance = entry["resource"]
    document_url = _resource(bundle, "DocumentReference")["fullUrl"]
    plan_url = _resource(bundle, "CarePlan")["fullUrl"]
    assert provenance["target"] == [{"reference": document_url}, {"reference": plan_url}]
    assert provenance["agent"][0]["who"] == {"reference": _resource(bundle, "Device")["fullUrl"]}
    cited = [e["what"]["reference"] for e in provenance["entity"]]
    assert cited == [
        "AllergyIntolerance/a1",
        "Appointment/ap1",
        "Condition/c1",
        "Condition/c2",
        "DocumentReference/d1",
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
    requests = {e["resource"]["resourceType"]: e["request"] for e in bundle["entry"]}
    document = _resource(bundle, "DocumentReference")["resource"]
    (identifier,) = document["identifier"]
    assert identifier == {"system": "urn:fhirgen:draft", "value": "e1.v3.discharge-summary"}
    assert requests["DocumentReference"]["method"] == "POST"
    assert parse_qs(requests["DocumentReference"]["ifNoneExist"]) == {
        "identifier": ["urn:fhirgen:draft|e1.v3.discharge-summary"]
    }
    assert parse_qs(requests["CarePlan"]["ifNoneExist"]) == {
        "identifier": ["urn:fhirgen:draft|e1.v3.care-plan"]
    }
    provenance = _resource(bundle, "Provenance")["resource"]
    assert requests["Provenance"] == {"method": "PUT", "url": f"Provenance/{provenance['id']}"}


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
    assert _resource(bundle, "DocumentReference")["resource"]["date"] == "2026-03-06T12:00:00Z"
    bad = run_cli("generate", source, "--out", tmp_path / "o", "--timestamp", "yesterday")
    assert bad.code == 2 and "not an ISO date-time" in bad.stderr


def test_new_encounter_version_gets_new_identifiers(tmp_path, run_cli):
    resources = small_stay()
    next(r for r in resources if r["id"] == "e1")["meta"]["versionId"] = "4"
    source = write_json(tmp_path / "record.json", as_collection(resources))
    run_cli("generate", source, "--out", tmp_path / "o")
    bundle = json.loads((tmp_path / "o" / "e1.json").read_text())
    document = _resource(bundle, "DocumentReference")["resource"]
    assert document["identifier"][0]["value"] == "e1.v4.discharge-summary"


def test_regenerated_draft_replaces_the_earlier_one():
    from fhirgen.fhir.record import PatientRecord
    from fhirgen.generation import get_generator
    from fhirgen.pipeline import draft_stay

    record = PatientRecord("p1", small_stay())
    result = draft_stay(
        record,
        record.get("Encounter/e1"),
        get_generator("template"),
        identifier_system="urn:fhirgen:draft",
        replaces="DocumentReference/earlier",
    )
    document = result.bundle["entry"][1]["resource"]
    assert document["relatesTo"] == [
        {"code": "replaces", "target": {"reference": "DocumentReference/earlier"}}
    ]
